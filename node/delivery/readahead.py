"""Read a large transfer's envelope ahead of the reactor, on a worker thread.

Reading an envelope means re-creating its ciphertext (spool/sealing.py's EnvelopeSource
encrypts the spooled plaintext as it is read), about a millisecond of CPU per MiB. Done on the
reactor thread, that work and the TLS encryption of the same bytes took turns on one core while the
other sat idle (py-spy on the large benchmark: a third of the sender's reactor time in
``crypto_secretstream_xchacha20poly1305_push``). ``ReadAhead`` keeps up to ``depth`` frames
ready, each read by one worker call (libsodium releases the GIL), so the reactor only frames
and writes. Memory stays bounded by ``depth`` frames per transfer.

The source is used by one thread at a time: at most one read is in flight, and a ``close``
that arrives while one runs is carried out when it returns.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="lienthong.readahead")

#: Frames kept ready per transfer (2 MiB of 1 MiB frames): enough to cover a worker hop, since
#: the worker starts the next frame as soon as one is taken; 4 held 2 MiB more at the sender's
#: peak (measured with the other memory changes of docs/benchmarks.md History 46, which left
#: the sender's CPU per GiB lower, not higher).
DEPTH = 2


class CiphertextSource(Protocol):
    """An envelope's ciphertext as the sender reads it: spool/sealing.py's ``EnvelopeSource``
    (re-created from the spooled plaintext) or, for an older spool, the stored file."""

    def seek(self, offset: int, /) -> object: ...

    def read(self, count: int, /) -> bytes: ...

    def close(self) -> None: ...


class ReadAhead:
    """Frames of ``source`` from ciphertext ``offset`` to ``size``, read in the background.

    ``run_in_thread(fn, *args)`` runs ``fn`` on a worker and returns a Deferred (the
    runtime's ``io``); ``on_ready()`` is called on the reactor whenever a frame becomes ready
    or the reading failed. The first read also seeks, which re-encrypts everything before a
    resume's offset: that too stays off the reactor.
    """

    def __init__(self, source: CiphertextSource, *, offset: int, size: int, frame: int,
                 run_in_thread: Callable[..., Deferred], on_ready: Callable[[], Any],
                 depth: int = DEPTH) -> None:
        self._source = source
        self._next = offset          # ciphertext offset of the next frame to read
        self._size = size
        self._frame = frame
        self._run = run_in_thread
        self._on_ready = on_ready
        self._depth = depth
        self._ready: deque[bytes] = deque()
        self._seeked = False
        self._busy = False
        self._closed = False
        #: Set when reading failed (the caller reports it and stops the transfer).
        self.error: OSError | None = None

    def start(self) -> None:
        """Begin reading (seek, then the first frames)."""
        self._fill()

    def take(self) -> bytes | None:
        """The next frame if one is ready, else None (``on_ready`` will say when)."""
        if not self._ready:
            return None
        data = self._ready.popleft()
        self._fill()
        return data

    def close(self) -> None:
        """Release the source now, or as soon as the read in flight returns."""
        self._closed = True
        self._ready.clear()
        if not self._busy:
            self._source.close()

    def _fill(self) -> None:
        if (self._busy or self._closed or self.error is not None
                or self._next >= self._size or len(self._ready) >= self._depth):
            return
        self._busy = True
        count = min(self._frame, self._size - self._next)
        self._run(self._read, count).addCallbacks(self._got, self._failed)

    def _read(self, count: int) -> bytes:
        """Worker thread: seek on the first call, then read one frame."""
        if not self._seeked:
            self._source.seek(self._next)
            self._seeked = True
        return self._source.read(count)

    def _got(self, data: bytes) -> None:
        self._busy = False
        if self._closed:
            self._source.close()
            return
        if not data:
            self.error = OSError("the envelope is shorter than its header says")
        else:
            self._next += len(data)
            self._ready.append(data)
        self._on_ready()
        self._fill()

    def _failed(self, failure: Failure) -> None:
        self._busy = False
        if self._closed:
            self._source.close()
            return
        exc = failure.value
        if not isinstance(exc, OSError):   # a bug, not a disk: keep its traceback
            log.failure("reading ahead failed", failure)
        self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
        self._on_ready()
