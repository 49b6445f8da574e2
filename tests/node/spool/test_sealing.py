"""Sealing without keeping the ciphertext, and re-creating it while sending (node/spool/sealing.py).

The sender no longer writes the envelope: ``EnvelopeSource`` must produce, from the spooled
plaintext, the stream header and the sender's own sealed file key, exactly the bytes whose
size and plaintext SHA-256 the header signed, from the start or from any resume offset.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from lienthong.node.spool import sealing as sealing_module
from lienthong.node.spool.kept_keys import KeptFileKeys
from lienthong.node.spool.sealing import (
    ENVELOPE,
    STREAM_ENDS,
    STREAM_HEADER,
    keep_stream_ends,
    open_envelope,
    read_signed_digest,
    seal_spooled,
)
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.sealing import Opener
from tests.node.runtimehelp import NOW, FakeReactor, enrol, make_office

PLAIN = os.urandom(3 * 1024 * 1024 + 4321)   # several chunks and a short last one


@pytest.fixture
def sealed(tmp_path: Path):  # type: ignore[no-untyped-def]
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    rt = alpha.runtime
    mid = new_message_id()
    folder = rt.config.spool / mid
    folder.mkdir(parents=True)
    (folder / "payload").write_bytes(PLAIN)
    envelope = seal_spooled(folder, node_keys=rt.keys,
                            recipients={beta.node_id: rt.directory.encryption_key_for(
                                beta.node_id)},
                            name="so-lieu.bin", message_id=mid, created=NOW)
    return alpha, beta, folder, envelope


def _read_all(source, frame: int = 1 << 20) -> bytes:  # type: ignore[no-untyped-def]
    out = []
    while piece := source.read(frame):
        out.append(piece)
    return b"".join(out)


def test_no_ciphertext_is_written_and_the_re_created_stream_is_the_signed_one(sealed) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, folder, envelope = sealed
    assert not (folder / ENVELOPE).exists()
    assert len((folder / STREAM_HEADER).read_bytes()) == 24
    source = open_envelope(folder, envelope.header_token, alpha.runtime.keys)
    ciphertext = _read_all(source)
    source.close()
    assert len(ciphertext) == envelope.header.ciphertext_size
    assert ciphertext[:24] == (folder / STREAM_HEADER).read_bytes()
    opener = Opener(envelope.header, node_id=beta.node_id,
                    encryption_keys=beta.runtime.keys.encryption_private_by_kid())
    assert opener.feed(ciphertext) == PLAIN
    opener.finish()


@pytest.mark.parametrize("offset", [0, 1, 24, 262144 + 41, 3 * 1024 * 1024, -1])
def test_seek_resumes_at_any_byte(sealed, offset: int) -> None:  # type: ignore[no-untyped-def]
    alpha, _, folder, envelope = sealed
    whole = _read_all(open_envelope(folder, envelope.header_token, alpha.runtime.keys))
    offset = offset if offset >= 0 else len(whole)
    source = open_envelope(folder, envelope.header_token, alpha.runtime.keys)
    source.read(100)
    source.seek(offset)          # backwards from 100, or forwards
    assert _read_all(source, frame=333_333) == whole[offset:]


def test_a_changed_payload_is_a_read_error_not_a_wrong_stream(sealed) -> None:  # type: ignore[no-untyped-def]
    alpha, _, folder, envelope = sealed
    with open(folder / "payload", "ab") as grow:
        grow.write(b"x" * 5000)
    source = open_envelope(folder, envelope.header_token, alpha.runtime.keys)
    with pytest.raises(OSError, match="changed after sealing"):
        _read_all(source)


def test_a_spool_folder_sealed_by_an_older_version_is_sent_from_its_envelope_file(sealed) -> None:  # type: ignore[no-untyped-def]
    alpha, _, folder, envelope = sealed
    whole = _read_all(open_envelope(folder, envelope.header_token, alpha.runtime.keys))
    (folder / STREAM_HEADER).unlink()
    (folder / ENVELOPE).write_bytes(whole)
    source = open_envelope(folder, envelope.header_token, alpha.runtime.keys)
    source.seek(5)
    assert _read_all(source) == whole[5:]
    source.close()


@pytest.fixture
def streamed(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A v3 document sealed the streamed way: offered before a byte of it is read."""
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    rt = alpha.runtime
    mid = new_message_id()
    folder = rt.config.spool / mid
    folder.mkdir(parents=True)
    (folder / "payload").write_bytes(PLAIN)
    envelope = seal_spooled(folder, node_keys=rt.keys,
                            recipients={beta.node_id: rt.directory.encryption_key_for(
                                beta.node_id)},
                            name="so-lieu.bin", message_id=mid, created=NOW, version=3,
                            streamed_above=1024)
    return alpha, beta, folder, envelope


def test_a_streamed_seal_signs_its_trailer_at_the_end_of_the_first_full_read(streamed) -> None:  # type: ignore[no-untyped-def]
    """Nothing is hashed at sealing; the first read to the end hashes, signs and keeps the
    trailer (before returning its chunk) and reports the digest; the stream opens and its
    trailer proves the plaintext's SHA-256."""
    alpha, beta, folder, envelope = streamed
    assert envelope.header.digest is None and envelope.trailer is None
    assert not (folder / STREAM_ENDS).exists()
    reported: list[tuple[int, str]] = []
    source = open_envelope(folder, envelope.header_token, alpha.runtime.keys,
                           on_trailer=lambda size, sha256: reported.append((size, sha256)))
    assert source.signs_trailer
    ciphertext = _read_all(source)
    source.close()
    digest = hashlib.sha256(PLAIN).hexdigest()
    assert reported == [(len(PLAIN), digest)]
    assert len(ciphertext) == envelope.header.ciphertext_size
    ends = (folder / STREAM_ENDS).read_bytes()
    assert ends[:24] == ciphertext[:24] and len(ends) == 24 + 104
    assert read_signed_digest(folder, envelope.header_token,
                              alpha.runtime.keys.identity.verify_key.encode()) == (
        len(PLAIN), digest)
    opener = Opener(envelope.header, node_id=beta.node_id,
                    encryption_keys=beta.runtime.keys.encryption_private_by_kid())
    assert opener.feed(ciphertext) == PLAIN
    assert opener.finish().sha256 == digest
    # Later reads (another recipient, a retry) send the kept trailer, the same bytes.
    again = open_envelope(folder, envelope.header_token, alpha.runtime.keys,
                          on_trailer=lambda *_: pytest.fail("signed twice"))
    assert not again.signs_trailer and _read_all(again) == ciphertext


@pytest.mark.parametrize("offset", [1, 262144 + 41, -1])
def test_a_streamed_seal_cut_before_its_end_derives_the_digest_again_on_resume(  # type: ignore[no-untyped-def]
        streamed, offset: int) -> None:
    """A read cut mid-way kept nothing; a resume at any offset re-reads from byte 0, so the
    digest is derived again and the bytes are those a whole read gives."""
    alpha, _, folder, envelope = streamed
    first = open_envelope(folder, envelope.header_token, alpha.runtime.keys)
    first.read(2 * 262144)
    first.close()   # the connection was lost, or the node killed
    assert not (folder / STREAM_ENDS).exists()
    assert read_signed_digest(folder, envelope.header_token, b"") is None
    size = envelope.header.ciphertext_size
    offset = offset if offset >= 0 else size
    reported: list[tuple[int, str]] = []
    resumed = open_envelope(folder, envelope.header_token, alpha.runtime.keys,
                            on_trailer=lambda *args: reported.append(args))
    resumed.seek(offset)
    tail = _read_all(resumed)
    assert reported == [(len(PLAIN), hashlib.sha256(PLAIN).hexdigest())]
    whole = _read_all(open_envelope(folder, envelope.header_token, alpha.runtime.keys))
    assert tail == whole[offset:] and len(whole) == size


def test_a_streamed_seal_whose_plaintext_changed_keeps_no_second_trailer(streamed) -> None:  # type: ignore[no-untyped-def]
    """The kept trailer is the one every later read sends: a plaintext that changed after it
    was signed is a read error, and the kept trailer is left as it was."""
    alpha, _, folder, envelope = streamed
    _read_all(open_envelope(folder, envelope.header_token, alpha.runtime.keys))
    kept = (folder / STREAM_ENDS).read_bytes()
    (folder / STREAM_ENDS).unlink()
    data = bytearray(PLAIN)
    data[7] ^= 1
    (folder / "payload").write_bytes(bytes(data))
    source = open_envelope(folder, envelope.header_token, alpha.runtime.keys)
    keep_stream_ends(folder, kept, envelope.header.message_id)   # another transfer, meanwhile
    with pytest.raises(OSError, match="changed after its trailer was signed"):
        _read_all(source)
    assert (folder / STREAM_ENDS).read_bytes() == kept


def test_a_streamed_seal_needs_the_identity_that_signed_its_header(streamed) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, folder, envelope = streamed
    with pytest.raises(OSError, match="no longer holds the identity"):
        open_envelope(folder, envelope.header_token, alpha.runtime.keys, signers={})


# -- the file key kept from sealing to offer (node/spool/kept_keys.py) -------------------------

@pytest.mark.parametrize("version", [2, 3])
def test_a_kept_key_re_creates_the_same_stream_without_any_x25519_or_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    rt = alpha.runtime
    mid = new_message_id()
    folder = rt.config.spool / mid
    folder.mkdir(parents=True)
    (folder / "payload").write_bytes(PLAIN)
    envelope = seal_spooled(folder, node_keys=rt.keys, version=version,
                            recipients={beta.node_id: rt.directory.encryption_key_for(
                                beta.node_id)},
                            name="so-lieu.bin", message_id=mid, created=NOW)
    assert len(envelope.file_key) == 32
    assert envelope.file_key.hex() not in repr(envelope) and "file_key" not in repr(envelope)
    from_token = _read_all(open_envelope(folder, envelope.header_token, rt.keys))
    kept = KeptFileKeys()
    kept.keep(mid, envelope)
    found = kept.get(mid, envelope.header_token)
    assert found is not None

    def no_x25519(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("an X25519 operation was made for a kept key")

    monkeypatch.setattr(sealing_module, "open_header_key", no_x25519)
    monkeypatch.setattr(sealing_module, "open_file_key", no_x25519)
    monkeypatch.setattr(sealing_module, "kept_stream_ends", no_x25519)   # nor any record read
    source = open_envelope(folder, envelope.header_token, rt.keys, kept=found)
    source.seek(1000)
    assert _read_all(source, frame=77_777) == from_token[1000:]
    source.close()
    with pytest.raises(AssertionError, match="X25519"):   # without it, opened from the token
        open_envelope(folder, envelope.header_token, rt.keys)
    opener = Opener(envelope.header, node_id=beta.node_id,
                    encryption_keys=beta.runtime.keys.encryption_private_by_kid())
    assert opener.feed(from_token) == PLAIN


def test_kept_keys_match_the_token_are_bounded_and_dropped(sealed) -> None:  # type: ignore[no-untyped-def]
    _, _, _, envelope = sealed
    mid = envelope.header.message_id
    kept = KeptFileKeys(max_kept=2)
    kept.keep(mid, envelope)
    assert kept.get(mid, envelope.header_token) == (
        envelope.header, envelope.file_key, envelope.stream_header)
    assert kept.get(mid, envelope.header_token + "x") is None   # a reseal's token: not this key
    assert envelope.file_key.hex() not in repr(kept) and str(envelope.file_key) not in repr(kept)
    others = [new_message_id() for _ in range(2)]
    for other in others:
        kept.keep(other, envelope)
    assert len(kept) == 2 and kept.get(mid, envelope.header_token) is None   # oldest out
    kept.drop(others[0])
    assert kept.get(others[0], envelope.header_token) is None
    kept.keep(new_message_id(), replace(envelope, file_key=b""))   # a streamed seal: no key
    assert len(kept) == 1
