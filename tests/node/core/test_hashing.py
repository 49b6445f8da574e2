"""The background SHA-256 (node/core/hashing.py): same digest as hashlib, safe buffers, bounded
queue, worker failures surfaced, no thread left behind; and the envelope codecs using it."""
from __future__ import annotations

import gc
import hashlib
import os
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.node.core.hashing import BackgroundDigest
from lienthong.protocol.envelope import verify_header
from lienthong.protocol.sealing import Opener, Sealer, open_all, seal_all
from tests.vectors.make_vectors import party

DATA = os.urandom(300_001)
ALICE, BOB = party("alice"), party("bob")


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sha256-worker" and t.is_alive()]


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("start_after", [0, 1000, 10**9])
@pytest.mark.parametrize("cuts", [[], [0], [1], [0, 0, 1, 2047, 2048, 2049], [150_000],
                                  [7, 65_537, 65_537, 299_999, 300_000, 300_001]])
def test_digest_equals_hashlib_for_splits(start_after: int, cuts: list[int]) -> None:
    """Any split of the data, with empty and odd-sized pieces, inline or threaded, gives
    hashlib's SHA-256."""
    hasher = BackgroundDigest(start_after=start_after, max_pending=100_000)
    for piece in _pieces(DATA, cuts):
        hasher.update(piece)
    assert hasher.digest() == hashlib.sha256(DATA).digest()
    assert hasher.hexdigest() == hashlib.sha256(DATA).hexdigest()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(DATA)), max_size=12),
       st.integers(min_value=1, max_value=200_000))
def test_digest_equals_hashlib_for_any_split_and_bound(cuts: list[int], limit: int) -> None:
    """Whatever the split and the queue bound, the digest is hashlib's."""
    hasher = BackgroundDigest(start_after=0, max_pending=limit)
    for piece in _pieces(DATA, cuts):
        hasher.update(memoryview(piece))
    assert hasher.digest() == hashlib.sha256(DATA).digest()


def test_empty_input_digest() -> None:
    """No data at all, or only empty pieces, is the SHA-256 of nothing."""
    assert BackgroundDigest().digest() == hashlib.sha256().digest()
    hasher = BackgroundDigest(start_after=0)
    hasher.update(b"")
    hasher.update(bytearray())
    assert hasher.digest() == hashlib.sha256().digest()


@pytest.mark.parametrize("kind", ["bytearray", "writable view"])
def test_reused_buffer_does_not_corrupt_the_digest(kind: str) -> None:
    """A caller may overwrite its buffer as soon as update returns (it is copied)."""
    gate = threading.Event()

    class Slow:
        """hashlib, but each update waits until the test has overwritten the buffer."""
        def __init__(self) -> None:
            self.inner = hashlib.sha256()

        def update(self, data: Any) -> None:
            gate.wait(5)
            self.inner.update(data)

        def digest(self) -> bytes:
            return self.inner.digest()

    hasher = BackgroundDigest(Slow(), start_after=0)
    buffer = bytearray(5000)
    for letter in b"abc":
        buffer[:] = bytes([letter]) * 5000
        hasher.update(buffer if kind == "bytearray" else memoryview(buffer))
        buffer[:] = b"z" * 5000         # the worker has not hashed it yet
    gate.set()
    assert hasher.digest() == hashlib.sha256(b"a" * 5000 + b"b" * 5000 + b"c" * 5000).digest()


def test_worker_exception_surfaces_at_digest_and_thread_ends() -> None:
    """A failure on the worker thread is raised by digest(), every time, and the thread ends."""
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        def update(self, data: Any) -> None:
            self.calls += 1
            if self.calls == 2:
                raise MemoryError("simulated")

        def digest(self) -> bytes:
            return b"never"

    before = len(_workers())
    hasher = BackgroundDigest(Failing(), start_after=0)
    for _ in range(5):
        hasher.update(b"x" * 4096)     # later updates are dropped, not blocked on
    with pytest.raises(MemoryError, match="simulated"):
        hasher.digest()
    with pytest.raises(MemoryError):
        hasher.digest()
    assert len(_workers()) == before


def test_thread_starts_only_for_large_input_and_ends_at_digest() -> None:
    """Small data is hashed inline (no thread); large data starts one, which digest() ends."""
    before = len(_workers())
    small = BackgroundDigest(start_after=1000)
    small.update(b"x" * 1000)
    assert not small.threaded and len(_workers()) == before
    small.digest()
    large = BackgroundDigest(start_after=1000)
    large.update(b"x" * 1000)
    large.update(b"y")
    assert large.threaded and len(_workers()) == before + 1
    assert large.digest() == hashlib.sha256(b"x" * 1000 + b"y").digest()
    assert len(_workers()) == before
    with pytest.raises(ValueError):
        large.update(b"more")


def test_close_and_garbage_collection_end_the_thread() -> None:
    """An abandoned hash ends its thread on close() or when collected; its digest is refused."""
    before = len(_workers())
    closed = BackgroundDigest(start_after=0)
    closed.update(DATA)
    closed.close()
    closed.close()
    assert len(_workers()) == before
    with pytest.raises(ValueError):
        closed.digest()
    dropped = BackgroundDigest(start_after=0)
    dropped.update(DATA)
    thread = _workers()[-1]
    del dropped
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_queue_is_bounded() -> None:
    """update blocks while max_pending bytes wait for a stalled worker, then carries on."""
    gate = threading.Event()

    class Stalled:
        def __init__(self) -> None:
            self.inner = hashlib.sha256()

        def update(self, data: Any) -> None:
            gate.wait(10)
            self.inner.update(data)

        def digest(self) -> bytes:
            return self.inner.digest()

    hasher = BackgroundDigest(Stalled(), start_after=0, max_pending=10_000)
    fed: list[int] = []

    def feed() -> None:
        for i in range(5):
            hasher.update(bytes([i]) * 4000)
            fed.append(i)

    producer = threading.Thread(target=feed)
    producer.start()
    producer.join(0.5)
    assert producer.is_alive() and fed == [0, 1]   # 8,000 bytes queued; 12,000 would not fit
    gate.set()
    producer.join(10)
    assert fed == [0, 1, 2, 3, 4]
    assert hasher.digest() == hashlib.sha256(b"".join(bytes([i]) * 4000
                                                     for i in range(5))).digest()


def test_flush_waits_until_everything_queued_is_hashed() -> None:
    """After flush() nothing is pending, and the hash can still be continued."""
    hashed: list[int] = []

    class Counting:
        def __init__(self) -> None:
            self.inner = hashlib.sha256()

        def update(self, data: Any) -> None:
            self.inner.update(data)
            hashed.append(len(data))

        def digest(self) -> bytes:
            return self.inner.digest()

    hasher = BackgroundDigest(Counting(), start_after=0)
    for _ in range(20):
        hasher.update(b"q" * 50_000)
    hasher.flush()
    assert sum(hashed) == 1_000_000
    hasher.update(b"r")
    assert hasher.digest() == hashlib.sha256(b"q" * 1_000_000 + b"r").digest()


def _sealer_args(**extra: Any) -> dict[str, Any]:
    draws = iter(hashlib.sha256(bytes([i])).digest() for i in range(64))
    return dict(identity=ALICE.identity, sender=ALICE.node_id, sender_key=ALICE.sealing_key,
                recipients={BOB.node_id: BOB.sealing_key}, name="a.bin",
                message_id="0" * 32, created="2026-11-25T22:00:00Z", chunk_size=4096,
                random_bytes=lambda n: next(draws)[:n], **extra)


@pytest.mark.parametrize("piece", [4096, 10_000, len(DATA)])
def test_envelope_with_background_digest_is_byte_identical(piece: int) -> None:
    """Sealing and opening with the background hash give the same token and ciphertext as
    hashlib, and the opener checks the signed digest through it."""
    expected_env, expected_ct = seal_all(DATA, **_sealer_args())
    sealer = Sealer(size=len(DATA), **_sealer_args(plaintext_digest=BackgroundDigest(
        start_after=0)))
    ciphertext = b"".join(sealer.feed(DATA[i:i + piece]) for i in range(0, len(DATA), piece))
    envelope = sealer.finish()
    assert envelope.header_token == expected_env.header_token
    assert ciphertext + envelope.tail == expected_ct
    header = verify_header(envelope.header_token, ALICE.identity.verify_key)
    opener = Opener(header, node_id=BOB.node_id, encryption_keys={BOB.kid: BOB.encryption},
                    plaintext_digest=BackgroundDigest(start_after=0))
    plain = b"".join(opener.feed(ciphertext[i:i + piece])
                     for i in range(0, len(ciphertext), piece))
    opener.finish()
    assert plain == DATA == open_all(header, expected_ct, node_id=BOB.node_id,
                                     encryption_keys={BOB.kid: BOB.encryption})


def test_digest_only_sealing_with_background_digest() -> None:
    """Sealer.digest (the node's hash-only sealing) signs the same SHA-256 through it."""
    plain = Sealer(size=len(DATA), **_sealer_args())
    threaded = Sealer(size=len(DATA), **_sealer_args(plaintext_digest=BackgroundDigest(
        start_after=0)))
    for sealer in (plain, threaded):
        for start in range(0, len(DATA), 65_536):
            sealer.digest(DATA[start:start + 65_536])
    assert threaded.finish().header_token == plain.finish().header_token
