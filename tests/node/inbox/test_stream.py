"""IncomingStream (node/inbox/stream.py): decrypting while receiving, resuming, and refusing.

Real keys, real sealing, real files; no network. The stream must leave a proven, fsynced
staging file only at ``finish``, write no ciphertext to disk, resume from the staged whole
chunks (rebuilding the decryptor's state and digest from them), and start over from byte 0
when the resume record is missing, stale or damaged.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.python.failure import Failure

from lienthong.node.core.access import AccessPolicy
from lienthong.node.inbox.finishing import finish_batch
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.stream import IncomingStream
from lienthong.protocol.envelope import open_header_key, verify_header
from lienthong.protocol.errors import DecryptError, Truncated
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.layout import CHUNK_OVERHEAD, HEADER_BYTES
from lienthong.protocol.sealing import seal_all
from tests.vectors.make_vectors import party

ALICE, BOB = party("alice"), party("bob")
CS = 16384  # above the write buffer, so staged plaintext is on disk at once
PLAIN = os.urandom(10 * CS + 123)


def _sealed(message_id: str | None = None, version: int = 2):  # type: ignore[no-untyped-def]
    envelope, ciphertext = seal_all(
        PLAIN, identity=ALICE.identity, sender=ALICE.node_id, sender_key=ALICE.sealing_key,
        recipients={BOB.node_id: BOB.sealing_key}, name="so-lieu.bin",
        message_id=message_id or new_message_id(), created="2026-11-25T22:00:00Z", chunk_size=CS,
        meta={"subject": "Số liệu nhân sự"}, version=version)
    header = verify_header(envelope.header_token, ALICE.identity.verify_key)
    return header, ciphertext


def _open(tmp_path: Path, header) -> IncomingStream:  # type: ignore[no-untyped-def]
    return IncomingStream.open(tmp_path / "staging" / "x", header, node_id=BOB.node_id,
                               encryption_keys={BOB.kid: BOB.encryption}, resumable_above=0)


def _at_chunk(k: int) -> int:
    """Ciphertext offset just after ``k`` whole chunks."""
    return HEADER_BYTES + k * (CS + CHUNK_OVERHEAD)


def _frames(data: bytes, size: int = 20000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_frames_are_decrypted_as_they_arrive_and_finish_proves_the_whole(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    stream = _open(tmp_path, header)
    frames = _frames(ciphertext)
    for frame in frames[:-1]:
        stream.write(frame)
    # Before the last frame, all but the last chunks are already plaintext on disk.
    assert PLAIN.startswith(stream.staging.read_bytes())
    assert stream.staging.stat().st_size >= len(PLAIN) - 2 * CS
    stream.write(frames[-1])
    stream.finish()
    assert stream.staging.read_bytes() == PLAIN
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == ["x", "x.resume"], \
        "only the staging file and its small resume record are written"
    assert stream.resume_record.stat().st_size < 200


def test_resume_continues_after_the_last_whole_staged_chunk(tmp_path: Path) -> None:
    """A cut mid-chunk resumes after the last whole chunk; the digest still proves the whole."""
    header, ciphertext = _sealed()
    cut = _at_chunk(5) + 7   # not on a chunk boundary
    first = _open(tmp_path, header)
    for frame in _frames(ciphertext[:cut]):
        first.write(frame)
    first.close()
    assert first.staging.stat().st_size == 5 * CS, "the staged chunks are kept for a resume"
    second = _open(tmp_path, header)
    assert second.offset == _at_chunk(5)
    for frame in _frames(ciphertext[second.offset:]):
        second.write(frame)
    second.finish()   # raises DigestMismatch unless the staged prefix was hashed again
    assert second.staging.read_bytes() == PLAIN


def test_a_fully_staged_document_resumes_before_its_final_chunk(tmp_path: Path) -> None:
    """Killed after every chunk was staged but before END: the final chunk is asked for again."""
    header, ciphertext = _sealed()
    first = _open(tmp_path, header)
    first.write(ciphertext)
    first.close()
    second = _open(tmp_path, header)
    assert second.offset == _at_chunk(10)   # 10 whole chunks, then the final 123 bytes
    assert second.staging.stat().st_size == 10 * CS
    second.write(ciphertext[second.offset:])
    second.finish()
    assert second.staging.read_bytes() == PLAIN


def test_a_resume_record_of_another_sealing_restarts_at_zero(tmp_path: Path) -> None:
    """Same message ID, new sealing (new key and stream header): nothing staged is kept."""
    header, ciphertext = _sealed()
    other, other_ciphertext = _sealed(header.message_id)
    first = _open(tmp_path, other)
    first.write(other_ciphertext[:_at_chunk(4)])
    first.close()
    stream = _open(tmp_path, header)
    assert stream.offset == 0
    assert stream.staging.stat().st_size == 0 and not stream.resume_record.exists()
    stream.write(ciphertext)
    stream.finish()
    assert stream.staging.read_bytes() == PLAIN


def test_a_damaged_resume_record_or_none_restarts_at_zero(tmp_path: Path) -> None:
    """A record cut short (or missing) is never trusted: the staged bytes are dropped."""
    header, ciphertext = _sealed()
    first = _open(tmp_path, header)
    first.write(ciphertext[:_at_chunk(4)])
    first.close()
    record = first.resume_record.read_bytes()
    first.resume_record.write_bytes(record[:-1])
    assert _open(tmp_path, header).offset == 0
    first = _open(tmp_path, header)
    first.write(ciphertext[:_at_chunk(4)])
    first.close()
    first.resume_record.unlink()
    stream = _open(tmp_path, header)
    assert stream.offset == 0 and stream.staging.stat().st_size == 0


def test_damaged_staged_chunks_are_caught_and_never_finished(tmp_path: Path) -> None:
    """Zeros where staged plaintext was (a power cut): the next chunk fails to authenticate."""
    header, ciphertext = _sealed()
    first = _open(tmp_path, header)
    first.write(ciphertext[:_at_chunk(4)])
    first.close()
    first.staging.write_bytes(b"\0" * (4 * CS))
    second = _open(tmp_path, header)
    assert second.offset == _at_chunk(4)
    with pytest.raises(DecryptError):
        second.write(ciphertext[second.offset:])
    second.discard()
    assert not second.staging.exists() and not second.resume_record.exists()


def test_a_small_document_keeps_no_resume_record(tmp_path: Path) -> None:
    """At or below the threshold no record is written; a cut transfer starts again at 0."""
    header, ciphertext = _sealed()
    stream = IncomingStream.open(tmp_path / "staging" / "x", header, node_id=BOB.node_id,
                                 encryption_keys={BOB.kid: BOB.encryption},
                                 resumable_above=len(ciphertext))
    stream.write(ciphertext[:_at_chunk(4)])
    stream.close()
    assert not stream.resume_record.exists()
    assert _open(tmp_path, header).offset == 0


def test_a_damaged_frame_fails_when_it_arrives(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    damaged = bytearray(ciphertext)
    damaged[2 * CS] ^= 1
    stream = _open(tmp_path, header)
    with pytest.raises(DecryptError):
        for frame in _frames(bytes(damaged)):
            stream.write(frame)
    stream.discard()
    assert not stream.resume_record.exists() and not stream.staging.exists()


def test_a_stream_cut_short_is_never_finished(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    stream = _open(tmp_path, header)
    stream.write(ciphertext[:-CS])
    with pytest.raises(Truncated):
        stream.finish()


@pytest.mark.parametrize("cut_chunks", [5, 10])
def test_a_v3_transfer_resumes_and_its_staging_area_names_nothing(tmp_path: Path,
                                                                   cut_chunks: int) -> None:
    """Envelope v3: a cut transfer resumes from the staged chunks (the trailer chunk still
    comes from the sender), and the resume record beside the staging file holds no name or
    metadata, only the header's digest and the stream header."""
    header, ciphertext = _sealed(version=3)
    first = _open(tmp_path, header)
    for frame in _frames(ciphertext[:_at_chunk(cut_chunks) + 7]):
        first.write(frame)
    first.close()
    record = first.resume_record.read_bytes()
    for secret in ("so-lieu", "Số liệu", "subject"):
        assert secret.encode() not in record
    second = _open(tmp_path, header)
    assert second.offset == _at_chunk(cut_chunks)
    for frame in _frames(ciphertext[second.offset:]):
        second.write(frame)
    proven = second.finish()
    assert second.staging.read_bytes() == PLAIN and proven.size == len(PLAIN)


def test_the_file_key_from_the_offer_opens_and_resumes_without_the_private_keys(
        tmp_path: Path) -> None:
    """The file key the offer's check opened (node/inbox/offer_checks.py) goes to the stream: it
    opens, resumes (re-encrypting the staged chunks) and finishes with no private key at
    all, so no second X25519 operation is made; and nothing of the key is written beside
    the staging file."""
    header, ciphertext = _sealed(version=3)
    opened, file_key = open_header_key(header, node_id=BOB.node_id,
                                       encryption_keys={BOB.kid: BOB.encryption})
    assert file_key is not None

    def keyed() -> IncomingStream:
        return IncomingStream.open(tmp_path / "staging" / "x", opened, node_id=BOB.node_id,
                                   encryption_keys={}, resumable_above=0, file_key=file_key)
    first = keyed()
    for frame in _frames(ciphertext[:_at_chunk(4) + 7]):
        first.write(frame)
    first.close()
    second = keyed()
    assert second.offset == _at_chunk(4)
    for frame in _frames(ciphertext[second.offset:]):
        second.write(frame)
    assert second.finish().sha256 is not None
    assert second.staging.read_bytes() == PLAIN
    assert file_key not in second.resume_record.read_bytes()


def test_a_batch_of_finishes_proves_all_then_fsyncs_each_and_fails_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``finish_batch`` (node/inbox/finishing.py): every staging file proven and its writeback
    started before the first fsync, a last frame that came with its END written first; a
    document cut short fails alone, unfinished."""
    names = InboxNames(lambda: 0.0, AccessPolicy())
    calls = []
    for n in range(3):
        header, ciphertext = _sealed()
        stream = IncomingStream.open(tmp_path / "staging" / f"x{n}", header,
                                     node_id=BOB.node_id,
                                     encryption_keys={BOB.kid: BOB.encryption})
        # The third's last frame came with its END: the batch writes it before the proofs.
        last = ciphertext[-CS:] if n == 2 else None
        stream.write(ciphertext[:-CS] if n else ciphertext)
        calls.append((stream, names, tmp_path / "inbox", f"so-lieu-{n}.bin", last))
    order: list[str] = []
    real_prove, real_sync = IncomingStream.prove, IncomingStream.sync
    monkeypatch.setattr(IncomingStream, "prove",
                        lambda self: (order.append("prove"), real_prove(self))[1])
    monkeypatch.setattr(IncomingStream, "sync",
                        lambda self: (order.append("sync"), real_sync(self))[1])
    results = finish_batch(None, calls)
    assert order == ["prove"] * 3 + ["sync"] * 2
    assert isinstance(results[1], Failure) and results[1].check(Truncated)
    for n in (0, 2):
        final, header = results[n]
        assert final == tmp_path / "inbox" / f"so-lieu-{n}.bin"
        assert header.sha256 is not None
        assert calls[n][0].staging.read_bytes() == PLAIN
