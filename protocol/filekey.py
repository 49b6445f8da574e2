"""The per-document file key, wrapped for each reader with a sealed box.

The wrap is built by hand from ``crypto_box`` so that tests can inject randomness; the result is
byte-for-byte the format of libsodium's ``crypto_box_seal`` and opens with
``crypto_box_seal_open``. Split from protocol/payload.py (which re-exports it) to keep that
module about the chunk codec.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from lienthong.protocol.errors import DecryptError

KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES          # 32
SEALED_KEY_BYTES = KEY_BYTES + sodium.crypto_box_SEALBYTES               # 80


def seal_file_key(file_key: bytes, recipient_public_key: bytes, *,
                  random_bytes: Callable[[int], bytes] = nacl.utils.random) -> bytes:
    """Wrap ``file_key`` for one reader: ``epk || crypto_box(key, blake2b(epk||pk), pk, esk)``.

    This is libsodium's sealed-box format, built from its parts so that the ephemeral key comes
    from ``random_bytes`` (32 bytes of seed) and known-answer vectors are reproducible.
    """
    if len(file_key) != KEY_BYTES or len(recipient_public_key) != 32:
        raise ValueError("file key and X25519 public key are 32 bytes each")
    seed = random_bytes(32)
    if len(seed) != 32:
        raise ValueError("random_bytes(32) returned the wrong length")
    epk, esk = sodium.crypto_box_seed_keypair(seed)
    nonce = hashlib.blake2b(epk + recipient_public_key, digest_size=24).digest()
    return epk + sodium.crypto_box(file_key, nonce, recipient_public_key, esk)


def open_file_key(sealed: bytes, public_key: bytes, secret_key: bytes) -> bytes:
    """Unwrap a sealed file key with our X25519 key pair; DecryptError if it does not open."""
    if len(sealed) != SEALED_KEY_BYTES:
        raise DecryptError(f"a sealed file key is {SEALED_KEY_BYTES} bytes, not {len(sealed)}")
    try:
        key = sodium.crypto_box_seal_open(sealed, public_key, secret_key)
    except nacl.exceptions.CryptoError as exc:
        raise DecryptError("the sealed file key does not open with our encryption key") from exc
    if len(key) != KEY_BYTES:  # unreachable given the length check; kept as a fail-closed guard
        raise DecryptError("the sealed file key has the wrong length")
    return key
