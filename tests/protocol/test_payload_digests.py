"""The codecs' hash objects (protocol/payload.py): injected, or none at all."""
from __future__ import annotations

import hashlib
import os
from typing import Any

from lienthong.protocol.payload import PayloadDecryptor, PayloadEncryptor

KEY, AD, CS = bytes(range(32)), bytes(16), 4096
PLAIN = os.urandom(3 * CS + 5)


class Recording:
    """A digest with only update() and digest() (no hexdigest), recording what it was fed."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    def update(self, data: Any) -> None:
        self.fed.append(bytes(data))

    def digest(self) -> bytes:
        return hashlib.sha256(b"".join(self.fed)).digest()


def _encrypt(**kwargs: Any) -> tuple[bytes, Any]:
    enc = PayloadEncryptor(KEY, ad=AD, size=len(PLAIN), chunk_size=CS,
                           random_bytes=lambda n: bytes(n), **kwargs)
    head = enc.feed(PLAIN[:5000]) + enc.feed(PLAIN[5000:])
    tail, summary = enc.finish()
    return head + tail, summary


def test_injected_digest_hashes_the_plaintext_both_ways() -> None:
    """The injected object receives exactly the plaintext, and its digest is the summary's."""
    sealing = Recording()
    ciphertext, summary = _encrypt(plaintext_digest=sealing)
    assert b"".join(sealing.fed) == PLAIN
    assert summary.sha256 == hashlib.sha256(PLAIN).hexdigest()
    assert (ciphertext, summary) == _encrypt()
    opening = Recording()
    dec = PayloadDecryptor(KEY, ad=AD, size=len(PLAIN), chunk_size=CS, plaintext_digest=opening)
    dec.feed(ciphertext)
    assert b"".join(opening.fed) == PLAIN
    assert dec.finish().sha256 == summary.sha256


def test_no_digests_gives_the_same_ciphertext_and_empty_digests() -> None:
    """digests=False (the sender re-creating a stream) keeps the bytes and leaves digests empty."""
    ciphertext, summary = _encrypt(digests=False)
    assert ciphertext == _encrypt()[0]
    assert summary.sha256 == "" and summary.ciphertext_sha256 == ""
