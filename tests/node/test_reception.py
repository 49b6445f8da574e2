"""IncomingStream (node/reception.py): decrypting while receiving, resuming, and refusing.

Real keys, real sealing, real files; no network. The stream must leave a proven, fsynced
staging file only at ``finish``, rebuild the staging file from the ciphertext partial when a
transfer resumes, and start over from byte 0 when that partial does not decrypt.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.reception import IncomingStream
from protocol.envelope import new_message_id, seal_all, verify_header
from protocol.errors import DecryptError, Truncated
from tests.vectors.make_vectors import party

ALICE, BOB = party("alice"), party("bob")
CS = 16384  # above the write buffer, so staged plaintext is on disk at once
PLAIN = os.urandom(10 * CS + 123)


def _sealed():  # type: ignore[no-untyped-def]
    envelope, ciphertext = seal_all(
        PLAIN, identity=ALICE.identity, sender=ALICE.node_id, sender_key=ALICE.sealing_key,
        recipients={BOB.node_id: BOB.sealing_key}, name="so-lieu.bin",
        message_id=new_message_id(), created="2026-11-25T22:00:00Z", chunk_size=CS)
    header = verify_header(envelope.header_token, ALICE.identity.verify_key)
    return header, ciphertext


def _open(tmp_path: Path, header, offset: int = 0) -> IncomingStream:  # type: ignore[no-untyped-def]
    return IncomingStream.open(tmp_path / "x.part", tmp_path / "staging" / "x", header,
                               offset=offset, node_id=BOB.node_id,
                               encryption_keys={BOB.kid: BOB.encryption})


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
    assert stream.partial.read_bytes() == ciphertext


def test_resume_rebuilds_the_staging_file_from_the_partial(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    cut = len(ciphertext) // 2 + 7   # not on a chunk boundary
    first = _open(tmp_path, header)
    first.write(ciphertext[:cut])
    first.close()
    assert not first.staging.exists(), "an unfinished staging file must not outlive its stream"
    assert first.partial.stat().st_size == cut
    second = _open(tmp_path, header, offset=cut)
    assert second.offset == cut
    second.write(ciphertext[cut:])
    second.finish()
    assert second.staging.read_bytes() == PLAIN


def test_a_partial_that_does_not_decrypt_restarts_at_zero(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    cut = 3 * CS
    (tmp_path / "x.part").write_bytes(b"\0" * cut)   # what a power cut can leave
    stream = _open(tmp_path, header, offset=cut)
    assert stream.offset == 0
    assert stream.partial.stat().st_size == 0
    stream.write(ciphertext)
    stream.finish()
    assert stream.staging.read_bytes() == PLAIN


def test_a_damaged_frame_fails_when_it_arrives(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    damaged = bytearray(ciphertext)
    damaged[2 * CS] ^= 1
    stream = _open(tmp_path, header)
    with pytest.raises(DecryptError):
        for frame in _frames(bytes(damaged)):
            stream.write(frame)
    stream.discard()
    assert not stream.partial.exists() and not stream.staging.exists()


def test_a_stream_cut_short_is_never_finished(tmp_path: Path) -> None:
    header, ciphertext = _sealed()
    stream = _open(tmp_path, header)
    stream.write(ciphertext[:-CS])
    with pytest.raises(Truncated):
        stream.finish()
