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
    kernel after every 1 MiB piece and fault it back in on the next (0.7 s per GiB of page
    faults, about 40 % of sealing: docs/benchmarks.md, issue 2).
    """

    __slots__ = ("_buffer", "_first", "_size")

    def __init__(self, buffer: bytearray) -> None:
        self._buffer = buffer
        self._first: bytes | None = None
        self._size = 0

    def add(self, piece: bytes) -> None:
        if not self._size:
            self._first = piece
        else:
            if self._first is not None:
                self._buffer[:self._size] = self._first
                self._first = None
            self._buffer[self._size:self._size + len(piece)] = piece
        self._size += len(piece)

    def result(self) -> bytes:
        if self._first is not None or not self._size:
            return self._first or b""
        with memoryview(self._buffer) as view:
            out = bytes(view[:self._size])
        if len(self._buffer) > _GATHER_MAX:   # a whole document fed at once: do not keep it
            del self._buffer[:]
        return out
