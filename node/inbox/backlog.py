"""The receiving connection's DATA waiting for the workers: its byte count with the marks that
stop and resume reading (back-pressure), and the batches in which one worker hop writes all
the large frames of a transfer that wait for it.

Both are shared between the reactor thread (which adds frames as they arrive) and a worker
thread (which writes them), so each holds a lock: the worker tells the reactor only when the
count falls below the low mark while reading is stopped, not once per frame
(docs/benchmarks.md, "Large after History 46").
"""
from __future__ import annotations

import threading
from collections import deque


class Backlog:
    """Bytes received but not yet written for one connection. Reading stops above ``limit``
    and resumes at or below half of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._bytes = 0
        self._paused = False

    @property
    def paused(self) -> bool:
        """Whether reading is (to be) stopped."""
        with self._lock:
            return self._paused

    @property
    def waiting(self) -> int:
        """Bytes received and not yet written."""
        with self._lock:
            return self._bytes

    def add(self, size: int) -> bool:
        """``size`` more bytes wait; True when that crosses the limit (stop reading now)."""
        with self._lock:
            self._bytes += size
            if self._bytes > self.limit and not self._paused:
                self._paused = True
                return True
            return False

    def done(self, size: int) -> bool:
        """``size`` bytes were written (or dropped); True when reading may resume (from any
        thread: the caller passes that on to the reactor)."""
        with self._lock:
            self._bytes -= size
            if self._paused and self._bytes <= self.limit // 2:
                self._paused = False
                return True
            return False


class FrameBatch:
    """The large DATA frames of one transfer that one worker hop writes, in order.

    The reactor adds frames while the hop runs; the worker takes them one at a time and, when
    it finds none left, closes the batch, after which :meth:`add` refuses (the reactor then
    starts a new batch, chained behind this one). The lock makes "none left" and "closed" one
    step, so no frame is added to a batch nobody will write."""

    def __init__(self, first: bytes | memoryview) -> None:
        self._lock = threading.Lock()
        self._frames: deque[bytes | memoryview] = deque((first,))
        self._closed = False

    def add(self, frame: bytes | memoryview) -> bool:
        """Queue ``frame`` behind the others; False once the worker has finished the batch."""
        with self._lock:
            if self._closed:
                return False
            self._frames.append(frame)
            return True

    def take(self) -> bytes | memoryview | None:
        """The next frame to write, or None (and the batch closed) when there is none."""
        with self._lock:
            if self._frames:
                return self._frames.popleft()
            self._closed = True
            return None

    def close(self) -> int:
        """Close the batch and drop the frames nobody took; returns their bytes (the batch was
        skipped, or its transfer failed)."""
        with self._lock:
            self._closed = True
            left = sum(len(frame) for frame in self._frames)
            self._frames.clear()
            return left
