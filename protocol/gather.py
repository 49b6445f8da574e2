"""Making one ``bytes`` of a codec call's output pieces without a join of pieces all alive.

Split from protocol/payload.py, which uses it in ``feed``.
"""
from __future__ import annotations

#: Results larger than this are not gathered into the kept buffer (see :class:`Gather`).
_GATHER_MAX = 8 * 1024 * 1024


class Gather:
    """The output of one ``feed`` call, made into a single ``bytes``.

    One piece is returned as it is (no copy). Further pieces are copied into a bytearray kept
    for the codec's life as soon as each is made, so each piece is freed at once. A join of
    four 256 KiB pieces all alive together made glibc return the freed top of its heap to the
    kernel after every 1 MiB piece and fault it back in on the next: pushing 256 MiB through
    secretstream in 1 MiB pieces and joining each took ~123,000 minor page faults and 2.4x the
    CPU time of gathering them this way (issue 2).
    """

    # Not thread-safe, like the codec that owns the buffer.

    __slots__ = ("_buffer", "_first", "_size")

    def __init__(self, buffer: bytearray) -> None:
        self._buffer = buffer
        self._first: bytes | None = None
        self._size = 0

    def add(self, piece: bytes | memoryview) -> None:
        """Append ``piece`` (copied into the kept buffer unless it is the only one). A view
        is copied at once, whichever it is: its owner may rewrite the buffer it shows."""
        if not self._size:
            self._first = piece if type(piece) is bytes else bytes(piece)
        else:
            if self._first is not None:
                self._buffer[:self._size] = self._first
                self._first = None
            self._buffer[self._size:self._size + len(piece)] = piece
        self._size += len(piece)

    def result(self) -> bytes:
        """Everything added, as one ``bytes`` (the piece itself if there was one)."""
        if self._first is not None or not self._size:
            return self._first or b""
        with memoryview(self._buffer) as view:
            out = bytes(view[:self._size])
        if len(self._buffer) > _GATHER_MAX:   # a whole document fed at once: do not keep it
            del self._buffer[:]
        return out
