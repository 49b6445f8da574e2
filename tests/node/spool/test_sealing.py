"""Sealing without keeping the ciphertext, and re-creating it while sending (node/spool/sealing.py).

The sender no longer writes the envelope: ``EnvelopeSource`` must produce, from the spooled
plaintext, the stream header and the sender's own sealed file key, exactly the bytes whose
size and plaintext SHA-256 the header signed, from the start or from any resume offset.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lienthong.node.spool.sealing import ENVELOPE, STREAM_HEADER, open_envelope, seal_spooled
from lienthong.protocol.envelope import Opener
from lienthong.protocol.fields import new_message_id
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
