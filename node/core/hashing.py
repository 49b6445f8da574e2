"""SHA-256 on a second thread, so that hashing a document overlaps encrypting, decrypting or
reading it.

Why: an envelope's SHA-256 costs about as much as its cipher (docs/benchmarks.md, issue 2), and
on the same thread the two add up. hashlib releases the GIL while it hashes a buffer of 2 KiB
or more, and PyNaCl's libsodium calls release it too, so on a machine with two cores a hash
fed from one thread and computed on another runs alongside the cipher. protocol/ must not start
threads, so its codecs take any object with ``update``/``digest`` (``protocol.payload.Digest``)
and the node hands them a :class:`BackgroundDigest`.

Theory of operation
-------------------
``update`` queues the buffer for one worker thread, which hashes the queue strictly in order
(woken once a megabyte is queued, not for every buffer).
Buffers that cannot change (``bytes``, or a read-only ``memoryview`` of ``bytes``) are queued
as they are; anything else (``bytearray``, a writable view, ``mmap``) is copied first, so a
caller may reuse its buffer as soon as ``update`` returns. At most ``max_pending`` bytes wait
in the queue (always at least one buffer): when the worker falls behind, ``update`` blocks.
``digest`` waits for the queue to drain, ends the thread and returns the digest; if the worker
failed, ``digest`` raises its exception (and raises it again on every later call). A small
document never starts a thread: the first ``start_after`` bytes are hashed inline, and only a
larger update hands work to the thread (order is kept, since the inline part is done first).
An abandoned hasher (never asked for its digest) ends its thread when it is closed or
garbage-collected.
"""
from __future__ import annotations

import collections
import hashlib
import threading
import weakref
from typing import Any

#: Bytes that may wait for the worker (at least one buffer always may: one 4 MiB read of
#: node/spool/sealing.py while the next is read, or 8 chunks of a received document). 8 MiB held
#: up to 6 MiB more at each node's peak, with no lower CPU (docs/benchmarks.md History 46).
MAX_PENDING = 2 * 1024 * 1024
#: Documents smaller than this are hashed inline: a thread costs more than it would save.
START_AFTER = 1024 * 1024
#: The idle worker is woken once this much is queued (or at flush/digest), not for every
#: buffer: a wake-up is a futex call and a cross-CPU interrupt (docs/benchmarks.md, History 29).
WAKE_AFTER = 1024 * 1024


class _Queue:
    """The buffers between the caller and the worker, with the state they share."""

    def __init__(self, limit: int) -> None:
        self.cond = threading.Condition()
        self.items: collections.deque[tuple[Any, int]] = collections.deque()
        self.pending = 0               # bytes queued and not yet hashed
        self.limit = limit
        self.wake_at = max(1, min(WAKE_AFTER, limit // 2))
        self.closed = False            # no more items will be queued
        self.error: BaseException | None = None

    def put(self, item: Any, size: int) -> None:
        with self.cond:
            while self.pending and self.pending + size > self.limit and self.error is None:
                self.cond.notify_all()  # the worker may be idle below wake_at
                self.cond.wait()
            if self.error is not None:  # the worker has stopped; digest() reports why
                return
            self.items.append((item, size))
            self.pending += size
            if self.pending >= self.wake_at:
                self.cond.notify_all()

    def drain(self) -> None:
        with self.cond:
            self.cond.notify_all()
            while self.pending and self.error is None:
                self.cond.wait()

    def close(self, *, drop: bool = False) -> None:
        with self.cond:
            self.closed = True
            if drop:
                self.items.clear()
                self.pending = 0
            self.cond.notify_all()


def _work(queue: _Queue, inner: Any) -> None:
    """The worker: hash queued buffers in order until the queue is closed and empty.

    It holds the queue and the inner hash, never the BackgroundDigest, so an abandoned hasher
    can be garbage-collected (and its finalizer closes the queue, which ends this thread)."""
    try:
        while True:
            with queue.cond:
                while not queue.items and not queue.closed:
                    queue.cond.wait()
                if not queue.items:
                    return
                item, size = queue.items[0]
            inner.update(item)          # outside the lock: the GIL is released meanwhile
            with queue.cond:
                if queue.items:         # close(drop=True) may have emptied it meanwhile
                    queue.items.popleft()
                    queue.pending -= size
                queue.cond.notify_all()
    except BaseException as exc:  # noqa: BLE001 - handed to digest(), which raises it
        with queue.cond:
            queue.error = exc
            queue.items.clear()
            queue.pending = 0
            queue.cond.notify_all()


def _immutable(data: Any, view: memoryview) -> Any:
    """``data`` itself if it can never change, else a copy that cannot."""
    if type(data) is bytes:
        return data
    if type(data) is memoryview and data.readonly and type(data.obj) is bytes:
        return data
    return view.tobytes()


class BackgroundDigest:
    """A SHA-256 (or the ``inner`` hash given) computed on one worker thread.

    Drop-in for the ``update``/``digest``/``hexdigest`` part of a hashlib object; not
    thread-safe itself (one caller feeds it, in order, as hashlib requires anyway).
    """

    def __init__(self, inner: Any = None, *, max_pending: int = MAX_PENDING,
                 start_after: int = START_AFTER) -> None:
        if max_pending < 1 or start_after < 0:
            raise ValueError("max_pending must be positive and start_after not negative")
        self._inner = hashlib.sha256() if inner is None else inner
        self._queue = _Queue(max_pending)
        self._start_after = start_after
        self._inline = 0
        self._thread: threading.Thread | None = None
        self._result: bytes | None = None
        self._abandoned = False
        weakref.finalize(self, self._queue.close, drop=True)

    @property
    def threaded(self) -> bool:
        """True once the worker thread was started (the document was not small)."""
        return self._thread is not None

    def update(self, data: Any) -> None:
        """Queue ``data`` (any buffer) to be hashed; the caller may reuse it at once."""
        if self._result is not None or self._queue.closed:
            raise ValueError("this hash was already finished or closed")
        view = memoryview(data)
        size = view.nbytes
        if self._thread is None:
            if self._inline + size <= self._start_after:
                self._inner.update(view)
                self._inline += size
                return
            self._thread = threading.Thread(target=_work, args=(self._queue, self._inner),
                                            name="sha256-worker", daemon=True)
            self._thread.start()
        if size:
            self._queue.put(_immutable(data, view), size)

    def digest(self) -> bytes:
        """Wait for every queued buffer to be hashed, end the thread, return the digest.

        Raises the worker's exception if it failed (on this and every later call)."""
        if self._result is None:
            if self._abandoned:
                raise ValueError("this hash was closed before its digest was taken")
            self._finish(drop=False)
            if self._queue.error is not None:
                raise self._queue.error
            self._result = self._inner.digest()
        return self._result

    def hexdigest(self) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest().hex()

    def flush(self) -> None:
        """Wait until every buffer queued so far has been hashed. For measurements: a
        benchmark that does untimed work between timed feeds calls it before stopping its clock,
        so hashing cannot hide in the untimed part. Worker errors are left to digest()."""
        self._queue.drain()

    def close(self) -> None:
        """Abandon the hash: drop what is queued and end the thread (idempotent; after
        :meth:`digest` it only confirms the thread has ended)."""
        if self._result is None:
            self._abandoned = True
        self._finish(drop=True)

    def _finish(self, *, drop: bool) -> None:
        self._queue.close(drop=drop)
        if self._thread is not None:
            self._thread.join()
