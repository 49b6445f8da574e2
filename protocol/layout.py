"""The ciphertext stream's layout: chunk sizes, document sizes and where every chunk lies.

Pure arithmetic, so the layout is a function of ``size`` and ``chunk_size`` alone (see
protocol/payload.py's theory of operation). Split from protocol/payload.py, which re-exports
all of it.
"""
from __future__ import annotations

from typing import TypeGuard

import nacl.bindings as sodium

HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES    # 24
CHUNK_OVERHEAD = sodium.crypto_secretstream_xchacha20poly1305_ABYTES       # 17

#: Plaintext bytes per chunk. 256 KiB: large enough that the per-chunk cost (a libsodium call,
#: 17 bytes, a Python loop turn) disappears in the cipher's cost, small enough that a stream in
#: flight holds well under a megabyte (bench/protocol_bench.py measured 64 KiB..4 MiB equal).
DEFAULT_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 4 * 1024
MAX_CHUNK_SIZE = 4 * 1024 * 1024
#: Largest document: keeps every size and offset an exact integer in any JSON reader (I-JSON,
#: 2**53 - 1) with room for the ciphertext overhead.
MAX_SIZE = 2 ** 52


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_chunk_size(chunk_size: object) -> int:
    """Return ``chunk_size`` if it is an allowed chunk size, else raise ValueError."""
    if not _is_int(chunk_size) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be an integer from {MIN_CHUNK_SIZE} to "
                         f"{MAX_CHUNK_SIZE}, not {chunk_size!r}")
    return chunk_size


def check_size(size: object) -> int:
    """Return ``size`` if it is an allowed document size, else raise ValueError."""
    if not _is_int(size) or not 0 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer from 0 to {MAX_SIZE}, not {size!r}")
    return size


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks of a ``size``-byte document: at least one, even when it is empty."""
    return max(1, -(-size // chunk_size))


def ciphertext_size(size: int, chunk_size: int = DEFAULT_CHUNK_SIZE, trailer: int = 0) -> int:
    """Exact length of the ciphertext stream (header and chunks) for ``size`` plaintext bytes;
    ``trailer``: the length of a signed trailer sealed as one more, final, chunk (envelope v3;
    protocol/envelope.py), or 0 for none."""
    check_size(size)
    check_chunk_size(chunk_size)
    extra = trailer + CHUNK_OVERHEAD if trailer else 0
    return HEADER_BYTES + size + CHUNK_OVERHEAD * chunk_count(size, chunk_size) + extra


def last_chunk_len(size: int, chunk_size: int) -> int:
    """Plaintext bytes in the final chunk (0 only for an empty document)."""
    return size - (chunk_count(size, chunk_size) - 1) * chunk_size
