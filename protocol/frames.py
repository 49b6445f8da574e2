"""Frames: the unit that travels on a lienthong TLS connection.

Every frame is a 6-byte header followed by a payload::

    version:u8 (=1) | kind:u8 | length:u32 big-endian | payload (length bytes)

Why a version byte in every frame rather than only in HELLO: a node that meets an unknown
format notices at the first byte, before it interprets anything, and says
``unsupported-version`` instead of misreading the rest (docs/design.md §8).

Why the length is checked the moment the header is complete: a peer must not be able to make
us reserve memory by announcing a large frame (Twisted CVE-2022-21716, h11's
``max_incomplete_event_size``). Each kind has its own ceiling (a PING never needs a megabyte),
and the caller can lower the ceiling further, as the connection does until both sides have said
HELLO, so a stranger's garbage costs us at most a few kilobytes.

The decoder is incremental and O(bytes fed): feed it bytes as they arrive, in any pieces, and
pull whole frames out with :meth:`FrameDecoder.next_frame`. It copies each payload byte at most
once (a 1 MiB DATA frame used to be copied three times between the socket and the cipher,
issue 6), and the encoder can hand a DATA frame to the transport as header and ciphertext
without joining them (:func:`frame_header`).

A caller that reads from its source itself (the receiver's TLS transport) can skip even that
copy: :meth:`FrameDecoder.read_buffer` gives it the place the next bytes go, a buffer made for
the one frame being read, and :meth:`FrameDecoder.bytes_read` says how many it wrote there.
"""
from __future__ import annotations

import struct
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

from lienthong.protocol.errors import (
    FrameError,
    FrameTooLarge,
    LocalProtocolError,
    ProtocolError,
    UnsupportedVersion,
)

PROTOCOL_VERSION = 1

HEADER = struct.Struct(">BBI")
HEADER_SIZE = HEADER.size  # 6

#: Ciphertext bytes carried by one DATA frame, at most.
MAX_DATA = 1024 * 1024
#: DATA payload prefix: message ID (16 raw bytes) and offset (u64 big-endian).
DATA_PREFIX_SIZE = 24
#: The largest payload of any frame kind.
MAX_PAYLOAD = MAX_DATA + 64
MAX_FRAME_SIZE = HEADER_SIZE + MAX_PAYLOAD


#: DATA frames at least this large are read into buffers the decoder keeps and reuses once
#: nothing holds a view of them: a fresh 1 MiB buffer per frame was mapped, zeroed and
#: page-faulted in by the receiver's reactor, then unmapped (docs/benchmarks.md History 63).
POOLED_FRAME = 256 * 1024
#: Kept buffers per decoder, at most: the receiver's queue (4 MiB of frames being written,
#: node/inbox/connection.py), the frame being read and one waiting. Beyond them, fresh ones.
POOL_SIZE = 6
#: The buffer a reading caller writes into between frames: a frame that fits in it whole is
#: copied out of it (small ones, many in one read); a larger one goes on in its own buffer.
SCRATCH = 16 * 1024
#: ``sys.getrefcount`` of a kept buffer no one else holds, while the pool is searched: the
#: pool's list, the loop's name and the call's argument. A view of it (a frame handed out)
#: holds one more reference, until it is dropped.
_POOL_ONLY = 3


class FrameKind(IntEnum):
    HELLO = 1
    OFFER = 2
    ACCEPT = 3
    HAVE = 4
    REJECT = 5
    DATA = 6
    END = 7
    RECEIPT = 8
    ERROR = 9
    PING = 10
    PONG = 11


_KIND_BY_BYTE: Mapping[int, FrameKind] = MappingProxyType({k.value: k for k in FrameKind})

#: Per-kind payload ceilings. They are generous for what protocol/events.py can produce
#: (JSON written with \\uXXXX escapes or spaces by another implementation still fits), and each
#: is checked as soon as the header arrives. tests/protocol/test_frames.py proves that the
#: largest valid event of each kind fits under its ceiling.
MAX_PAYLOAD_BY_KIND: Mapping[FrameKind, int] = MappingProxyType({
    FrameKind.HELLO: 4 * 1024,
    FrameKind.OFFER: MAX_PAYLOAD,
    FrameKind.ACCEPT: 256,
    FrameKind.HAVE: 65 * 1024,
    FrameKind.REJECT: 16 * 1024,
    FrameKind.DATA: DATA_PREFIX_SIZE + MAX_DATA,
    FrameKind.END: 256,
    FrameKind.RECEIPT: 65 * 1024,
    FrameKind.ERROR: 16 * 1024,
    FrameKind.PING: 256,
    FrameKind.PONG: 256,
})


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its kind and raw payload (not yet interpreted).

    The payload is ``bytes``, or, for a DATA frame, a read-only ``memoryview`` of a buffer that
    cannot change: the piece fed to the decoder it arrived in (``bytes``), or the ``bytearray``
    the caller read it into (:meth:`FrameDecoder.read_buffer`), which the decoder made for this
    frame alone and never writes again. No copy is made of it."""

    kind: FrameKind
    payload: bytes | memoryview = field(repr=False)


def encode_frame(kind: FrameKind, payload: bytes) -> bytes:
    """Return header + payload. Refuses (FrameTooLarge) what a peer would refuse from us."""
    return encode_frame_parts(kind, payload)


def encode_frame_parts(kind: FrameKind, *parts: bytes | memoryview) -> bytes:
    """Like ``encode_frame`` for a payload given in pieces, joined with a single copy."""
    length = sum(len(part) for part in parts)
    return b"".join((frame_header(kind, length), *parts))


def frame_header(kind: FrameKind, length: int) -> bytes:
    """The 6-byte header of a ``kind`` frame whose payload is ``length`` bytes, for a caller
    that sends the payload after it without joining the two. Refuses (FrameTooLarge) what a
    peer would refuse from us."""
    if not isinstance(kind, FrameKind):
        raise LocalProtocolError(f"{kind!r} is not a FrameKind")
    limit = MAX_PAYLOAD_BY_KIND[kind]
    if length > limit:
        raise FrameTooLarge(f"{kind.name} payload of {length} bytes exceeds the "
                            f"{limit}-byte limit")
    return HEADER.pack(PROTOCOL_VERSION, kind, length)


class FrameDecoder:
    """Incremental frame decoder with a bounded buffer.

    ``feed`` bytes as they arrive, then call ``next_frame`` until it returns None. The header
    of the frame at the front of the buffer is checked as soon as its bytes are present
    (version at byte 1, kind at byte 2, length at byte 6), so a bad or oversized frame is
    refused before its payload is buffered.

    Memory: a caller that drains ``next_frame`` after each ``feed`` never has more than one
    incomplete frame buffered (< ``MAX_FRAME_SIZE`` bytes) plus the piece it is feeding. A
    caller that keeps feeding without draining is told so (LocalProtocolError) once a whole
    maximal frame is waiting, rather than letting the buffer grow without bound.

    Copies: the pieces fed are kept as they are (views of immutable ``bytes``), not appended to
    one growing buffer, so a payload is copied once, when its frame is complete, by joining
    the pieces it spans; a DATA payload that lies in one piece is not copied at all (it is
    returned as a view of it, when it is at least half of that piece, so a view never keeps
    alive more than twice its own size).

    Reading into the decoder (``read_buffer`` and ``bytes_read``, instead of ``feed``): between
    frames the caller writes into a small kept buffer (``SCRATCH``), from which whole frames
    that fit in it are copied out, as fed pieces would be (a small document's frames, many in
    one read); a frame too large for it continues in a ``bytearray`` of exactly the announced
    length, made once the header has passed its checks (so before HELLO, under the lowered
    ceiling, a stranger still reserves a few kilobytes at most; after it a peer reserves no
    more than the one frame it is sending), and what of it was in the small buffer is moved
    there (at most ``SCRATCH`` bytes of a 1 MiB frame). A DATA payload
    is then returned as a read-only view of that buffer, which nothing writes while any view
    of it lives, so the frame's bytes are copied only once, by the caller's read. A large
    DATA frame's buffer is kept (``POOL_SIZE``) and read into again once the last view of its
    frame is gone, so a steady stream of frames reuses the same memory. Frames
    completed this way wait in order for ``next_frame``; at most two large DATA frames' worth,
    then the caller is told to drain (LocalProtocolError). One decoder is fed one way only.

    After any error the decoder is dead: every later call raises the same error.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._pieces: deque[memoryview] = deque()
        self._buffered = 0
        self._header: tuple[FrameKind, int] | None = None
        self._failure: ProtocolError | None = None
        #: Ceiling applied on top of the per-kind ones; the connection lowers it before HELLO.
        self.max_payload = max_payload
        # Reading into the decoder: the bytes between frames (made at the first read), the
        # large frame being read, the frames read whole and not yet returned (and their bytes).
        self._scratch: memoryview | None = None
        self._scratch_filled = 0
        self._into: bytearray | None = None
        self._into_view: memoryview | None = None
        self._into_filled = 0
        self._ready: deque[Frame] = deque()
        self._pool: list[bytearray] = []
        self._ready_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes held that ``next_frame`` has not returned yet."""
        return self._buffered

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer; checks the pending header at once."""
        self._raise_if_failed()
        if self._scratch_filled or self._into is not None or self._ready:
            raise LocalProtocolError("feed() on a decoder that is being read into")
        if self._buffered >= MAX_FRAME_SIZE:
            raise LocalProtocolError("feed() called again without draining next_frame(); "
                                     "the buffer already holds a complete frame")
        if data:
            if type(data) is not bytes:
                data = bytes(data)   # it is kept, so it must be something that cannot change
            self._pieces.append(memoryview(data))
            self._buffered += len(data)
        if self._header is None:
            self._inspect_header()

    def read_buffer(self) -> memoryview:
        """Where the caller writes the next bytes it receives (a writable view, to be used
        before the next call here and not kept): the small buffer between frames, or the rest
        of a frame too large for it, in a buffer of that frame alone. Then :meth:`bytes_read`."""
        self._raise_if_failed()
        if self._buffered:
            raise LocalProtocolError("read_buffer() on a decoder that was fed pieces")
        if self._ready_bytes >= 2 * MAX_DATA:
            raise LocalProtocolError("read_buffer() called again without draining "
                                     "next_frame(); two large frames' worth already wait")
        if self._into_view is not None:
            return self._into_view[self._into_filled:]
        if self._scratch is None:
            self._scratch = memoryview(bytearray(SCRATCH))
        return self._scratch[self._scratch_filled:]

    def bytes_read(self, count: int) -> None:
        """``count`` bytes were written at the start of the last :meth:`read_buffer`: a header
        is checked as soon as its bytes are present, as with ``feed``."""
        self._raise_if_failed()
        into = self._into
        if into is None:
            self._scratch_read(count)
            return
        if self._header is None or self._into_view is None:   # a frame buffer needs its header
            raise LocalProtocolError("bytes_read() with no frame being read into")
        kind, length = self._header
        if not 0 < count <= length - self._into_filled:
            raise LocalProtocolError(f"bytes_read({count}) beyond the frame's buffer")
        self._into_filled += count
        if self._into_filled < length:
            return
        # The decoder's writable view goes with it; the caller kept none (``read_buffer``).
        payload = self._into_view.toreadonly() if kind is FrameKind.DATA else bytes(into)
        self._into = self._into_view = self._header = None
        self._into_filled = 0
        self._ready_frame(Frame(kind, payload))

    def _scratch_read(self, count: int) -> None:
        """Bytes arrived in the small buffer: copy out the whole frames there, start the
        frame that cannot fit in it in a buffer of its own, keep the rest at its start."""
        scratch = self._scratch
        if scratch is None or not 0 < count <= SCRATCH - self._scratch_filled:
            raise LocalProtocolError(f"bytes_read({count}) beyond the buffer read into")
        filled = self._scratch_filled + count
        at = 0
        while at < filled:
            header = self._checked_header(scratch[at:min(at + HEADER_SIZE, filled)].tobytes())
            if header is None:
                break
            kind, length = header
            start, end = at + HEADER_SIZE, at + HEADER_SIZE + length
            if end <= filled:
                self._ready_frame(Frame(kind, scratch[start:end].tobytes()))
                at = end
                continue
            if HEADER_SIZE + length > SCRATCH:
                self._into = self._pooled() if kind is FrameKind.DATA and \
                    length >= POOLED_FRAME else bytearray(length)
                self._into_view = memoryview(self._into)[:length]
                self._into_filled = filled - start
                self._into_view[:self._into_filled] = scratch[start:filled]
                self._header = header
                at = filled
            break
        left = filled - at
        if at and left:
            scratch[:left] = scratch[at:filled]
        self._scratch_filled = left

    def _pooled(self) -> bytearray:
        """A kept buffer of the largest DATA frame that no view holds any more (its old bytes
        are overwritten before a view of them is handed out), else a new one, kept while the
        pool has room."""
        for buffer in self._pool:
            if sys.getrefcount(buffer) == _POOL_ONLY:
                return buffer
        buffer = bytearray(MAX_PAYLOAD_BY_KIND[FrameKind.DATA])
        if len(self._pool) < POOL_SIZE:
            self._pool.append(buffer)
        return buffer

    def _ready_frame(self, frame: Frame) -> None:
        self._ready.append(frame)
        self._ready_bytes += len(frame.payload)

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None if more bytes are needed."""
        self._raise_if_failed()
        if self._ready:
            frame = self._ready.popleft()
            self._ready_bytes -= len(frame.payload)
            return frame
        if self._into is not None:
            return None
        if self._header is None:
            self._inspect_header()
            if self._header is None:
                return None
        kind, length = self._header
        if self._buffered < HEADER_SIZE + length:
            return None
        self._take(HEADER_SIZE, share=False)
        payload = self._take(length, share=kind is FrameKind.DATA)
        self._header = None
        return Frame(kind, payload)

    def _take(self, count: int, *, share: bool) -> bytes | memoryview:
        """Remove the next ``count`` buffered bytes (all present) and return them."""
        if not count:
            return b""
        pieces = self._pieces
        self._buffered -= count
        first = pieces[0]
        if len(first) >= count:
            part = first[:count]
            if len(first) == count:
                pieces.popleft()
            else:
                pieces[0] = first[count:]
            if share and 2 * count >= len(first.obj):  # type: ignore[arg-type]
                return part
            return part.tobytes()
        parts = []
        while count:
            first = pieces[0]
            if len(first) > count:
                parts.append(first[:count])
                pieces[0] = first[count:]
                break
            parts.append(pieces.popleft())
            count -= len(first)
        return b"".join(parts)

    def _peek(self, count: int) -> bytes:
        """Up to ``count`` bytes from the front of the buffer, not removed."""
        first = self._pieces[0]
        if len(first) >= count:
            return first[:count].tobytes()
        head = bytearray()
        for piece in self._pieces:
            head += piece[:count - len(head)]
            if len(head) >= count:
                break
        return bytes(head)

    def _inspect_header(self) -> None:
        if not self._buffered:
            return
        self._header = self._checked_header(self._peek(HEADER_SIZE))

    def _checked_header(self, head: bytes) -> tuple[FrameKind, int] | None:
        """The kind and length of a complete header, None while part of it is missing;
        raises (and kills the decoder) as soon as the bytes present are wrong."""
        try:
            if head[0] != PROTOCOL_VERSION:
                raise UnsupportedVersion(f"frame version {head[0]}; this node speaks "
                                         f"version {PROTOCOL_VERSION}")
            if len(head) < 2:
                return None
            kind = _KIND_BY_BYTE.get(head[1])
            if kind is None:
                raise FrameError(f"unknown frame kind {head[1]}")
            if len(head) < HEADER_SIZE:
                return None
            _, _, length = HEADER.unpack(head)
            limit = min(self.max_payload, MAX_PAYLOAD_BY_KIND[kind])
            if length > limit:
                raise FrameTooLarge(f"{kind.name} frame announces {length} bytes; the limit "
                                    f"here is {limit}")
        except ProtocolError as exc:
            self._failure = exc
            self._pieces.clear()  # release the memory; nothing more will be read
            self._buffered = 0
            self._ready.clear()
            self._ready_bytes = 0
            self._pool.clear()
            raise
        return kind, length

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure
