"""Gathering a feed's output pieces into one bytes (protocol/gather.py)."""
from __future__ import annotations

import os

import pytest

from lienthong.protocol import gather
from lienthong.protocol.gather import Gather
from lienthong.protocol.payload import PayloadDecryptor, PayloadEncryptor

KEY, AD = bytes(range(32)), bytes(16)


@pytest.mark.parametrize("pieces", [[], [b""], [b"abc"], [b"", b"abc"], [b"abc", b""],
                                    [b"ab", b"cde", b"", b"f"], [os.urandom(70_000)] * 3])
def test_result_is_the_concatenation(pieces: list[bytes]) -> None:
    """Whatever the pieces (empty ones included), the result is their concatenation."""
    out = Gather(bytearray())
    for piece in pieces:
        out.add(piece)
    assert out.result() == b"".join(pieces)
    assert type(out.result()) is bytes


def test_a_single_piece_is_returned_without_a_copy() -> None:
    """One piece comes back as the same object: no copy for chunk-sized feeds."""
    piece = os.urandom(5000)
    out = Gather(bytearray())
    out.add(piece)
    assert out.result() is piece


def test_reusing_the_buffer_never_changes_earlier_results() -> None:
    """A result is a copy: the kept buffer is overwritten by the next feed, results are not."""
    buffer = bytearray()
    first = Gather(buffer)
    first.add(b"a" * 100)
    first.add(b"b" * 100)
    kept = first.result()
    second = Gather(buffer)
    second.add(b"c" * 10)
    second.add(b"d" * 10)
    assert second.result() == b"c" * 10 + b"d" * 10
    assert kept == b"a" * 100 + b"b" * 100 and len(buffer) == 200


def test_a_huge_result_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a result above the limit (a whole document fed at once) the buffer is emptied."""
    monkeypatch.setattr(gather, "_GATHER_MAX", 100)
    buffer = bytearray()
    out = Gather(buffer)
    out.add(b"x" * 80)
    out.add(b"y" * 80)
    assert out.result() == b"x" * 80 + b"y" * 80 and len(buffer) == 0


@pytest.mark.parametrize("piece", [4096, 4096 * 4, 4096 * 4 + 3, 100_000])
def test_multi_chunk_feeds_equal_one_chunk_feeds(piece: int) -> None:
    """Feeding several chunks at once gives the same bytes as feeding one chunk at a time,
    both ways, and every result keeps its value after later feeds."""
    plaintext = os.urandom(123_457)

    def encrypt(step: int) -> list[bytes]:
        enc = PayloadEncryptor(KEY, ad=AD, size=len(plaintext), chunk_size=4096,
                               random_bytes=lambda n: bytes(n))
        outs = [enc.feed(plaintext[i:i + step]) for i in range(0, len(plaintext), step)]
        return [*outs, enc.finish()[0]]

    outs = encrypt(piece)
    snapshot = [bytes(o) for o in outs]
    ciphertext = b"".join(outs)
    assert ciphertext == b"".join(encrypt(4096)) and outs == snapshot
    dec = PayloadDecryptor(KEY, ad=AD, size=len(plaintext), chunk_size=4096)
    plain = [dec.feed(ciphertext[i:i + piece]) for i in range(0, len(ciphertext), piece)]
    dec.finish()
    assert b"".join(plain) == plaintext
