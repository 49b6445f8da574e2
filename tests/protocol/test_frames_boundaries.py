"""Frame limits at their exact boundaries (issue 22): the largest payload each kind accepts,
one byte above it refused, and the feed-without-draining guard at the byte where it trips.

The ceilings are the documented ones (docs/protocol.md §2), written out here as numbers so a
change to the table in frames.py that the documentation does not share fails a test.
"""
from __future__ import annotations

import sys

import pytest

from lienthong.protocol.errors import (
    FrameError,
    FrameTooLarge,
    LocalProtocolError,
    UnsupportedVersion,
)
from lienthong.protocol.frames import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    MAX_PAYLOAD,
    MAX_PAYLOAD_BY_KIND,
    Frame,
    FrameDecoder,
    FrameKind,
    encode_frame,
    frame_header,
)
from tests.protocol.test_frames import drain, header

#: docs/protocol.md §2, "max payload (bytes)".
DOCUMENTED_CEILINGS = {
    FrameKind.HELLO: 4096, FrameKind.OFFER: 1_048_640, FrameKind.ACCEPT: 256,
    FrameKind.HAVE: 66_560, FrameKind.REJECT: 16_384, FrameKind.DATA: 1_048_600,
    FrameKind.END: 256, FrameKind.RECEIPT: 66_560, FrameKind.ERROR: 16_384,
    FrameKind.PING: 256, FrameKind.PONG: 256,
}


def test_the_ceilings_are_the_documented_ones() -> None:
    assert dict(MAX_PAYLOAD_BY_KIND) == DOCUMENTED_CEILINGS
    assert MAX_PAYLOAD == 1_048_640 and HEADER_SIZE == 6 and MAX_FRAME_SIZE == 1_048_646


@pytest.mark.parametrize("kind", list(FrameKind), ids=lambda k: k.name)
def test_largest_payload_of_each_kind_is_decoded(kind: FrameKind) -> None:
    """A frame of exactly the kind's ceiling passes the header check and decodes whole."""
    limit = DOCUMENTED_CEILINGS[kind]
    payload = bytes(range(256)) * (limit // 256) + b"\x07" * (limit % 256)
    decoder = FrameDecoder()
    decoder.feed(header(kind, limit))
    decoder.feed(payload)
    assert drain(decoder) == [Frame(kind, payload)]
    assert decoder.buffered == 0


@pytest.mark.parametrize("kind", list(FrameKind), ids=lambda k: k.name)
def test_one_byte_above_each_ceiling_is_refused_at_the_header(kind: FrameKind) -> None:
    limit = DOCUMENTED_CEILINGS[kind]
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge) as caught:
        decoder.feed(header(kind, limit + 1))
    assert str(caught.value) == (f"{kind.name} frame announces {limit + 1} bytes; the limit "
                                 f"here is {limit}")
    assert decoder.buffered == 0


@pytest.mark.parametrize("kind", list(FrameKind), ids=lambda k: k.name)
def test_encoder_allows_each_ceiling_and_refuses_one_above(kind: FrameKind) -> None:
    limit = DOCUMENTED_CEILINGS[kind]
    assert frame_header(kind, limit) == bytes([1, kind.value]) + limit.to_bytes(4, "big")
    with pytest.raises(FrameTooLarge) as caught:
        frame_header(kind, limit + 1)
    assert str(caught.value) == (f"{kind.name} payload of {limit + 1} bytes exceeds the "
                                 f"{limit}-byte limit")


def test_encode_frame_at_the_ceiling_is_header_then_payload() -> None:
    frame = encode_frame(FrameKind.PING, b"p" * 256)
    assert frame == b"\x01\x0a\x00\x00\x01\x00" + b"p" * 256


def test_caller_ceiling_is_inclusive() -> None:
    """max_payload=100: 100 bytes pass, 101 are refused; the per-kind ceiling still applies
    when it is the lower one."""
    decoder = FrameDecoder(max_payload=100)
    decoder.feed(header(FrameKind.OFFER, 100) + b"o" * 100)
    assert drain(decoder) == [Frame(FrameKind.OFFER, b"o" * 100)]
    with pytest.raises(FrameTooLarge, match="the limit here is 100$"):
        FrameDecoder(max_payload=100).feed(header(FrameKind.OFFER, 101))
    with pytest.raises(FrameTooLarge, match="the limit here is 256$"):
        FrameDecoder(max_payload=16 * 1024).feed(header(FrameKind.PING, 257))


def test_default_ceiling_is_max_payload() -> None:
    assert FrameDecoder().max_payload == MAX_PAYLOAD


def test_feed_guard_trips_exactly_at_a_whole_maximal_frame() -> None:
    """With MAX_FRAME_SIZE - 1 bytes waiting, one more byte may be fed; with MAX_FRAME_SIZE
    waiting, any further feed (even of nothing) is refused, and draining lets feeding go on."""
    decoder = FrameDecoder()
    decoder.feed(header(FrameKind.OFFER, MAX_PAYLOAD - 1) + b"x" * (MAX_PAYLOAD - 1))
    assert decoder.buffered == MAX_FRAME_SIZE - 1
    decoder.feed(b"\x01")
    assert decoder.buffered == MAX_FRAME_SIZE
    with pytest.raises(LocalProtocolError, match="without draining"):
        decoder.feed(b"")
    with pytest.raises(LocalProtocolError, match="without draining"):
        decoder.feed(b"\x0a")
    assert decoder.buffered == MAX_FRAME_SIZE
    assert drain(decoder) == [Frame(FrameKind.OFFER, b"x" * (MAX_PAYLOAD - 1))]
    assert decoder.buffered == 1
    decoder.feed(b"\x0a\x00\x00\x00\x00")
    assert drain(decoder) == [Frame(FrameKind.PING, b"")]
    assert decoder.buffered == 0


def test_header_errors_name_what_was_seen() -> None:
    with pytest.raises(UnsupportedVersion) as version:
        FrameDecoder().feed(b"\x02")
    assert str(version.value) == "frame version 2; this node speaks version 1"
    with pytest.raises(FrameError) as kind:
        FrameDecoder().feed(b"\x01\x0c")
    assert str(kind.value) == "unknown frame kind 12"


def test_a_refused_header_releases_what_was_buffered() -> None:
    """Bytes fed with a bad header are dropped at once, and the decoder stays dead."""
    decoder = FrameDecoder()
    decoder.feed(b"\x01\x01\x00")
    assert decoder.buffered == 3
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\x10\x01" + b"h" * 100)
    assert decoder.buffered == 0
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


def test_partial_header_waits_for_more() -> None:
    """One, two or five header bytes are not yet a frame and are not refused."""
    for cut in (1, 2, 5):
        decoder = FrameDecoder()
        decoder.feed(header(FrameKind.END, 3)[:cut])
        assert decoder.next_frame() is None and decoder.buffered == cut
        decoder.feed(header(FrameKind.END, 3)[cut:] + b"abc")
        assert drain(decoder) == [Frame(FrameKind.END, b"abc")]


def test_local_misuse_is_named() -> None:
    with pytest.raises(LocalProtocolError) as caught:
        frame_header(42, 0)  # type: ignore[arg-type]
    assert str(caught.value) == "42 is not a FrameKind"
    decoder = FrameDecoder()
    decoder.feed(header(FrameKind.OFFER, MAX_PAYLOAD) + bytes(MAX_PAYLOAD))
    with pytest.raises(LocalProtocolError) as full:
        decoder.feed(b"")
    assert str(full.value) == ("feed() called again without draining next_frame(); the buffer "
                               "already holds a complete frame")


def _data_frame_in_a_piece(piece_size: int, payload_size: int = 1000) -> tuple[bytes, Frame]:
    """A DATA frame of ``payload_size`` at the start of a piece of ``piece_size`` bytes."""
    frame = header(FrameKind.DATA, payload_size) + bytes(range(256)) * 3 + bytes(232)
    frame = frame[:HEADER_SIZE + payload_size]
    piece = frame + b"\x01" * (piece_size - len(frame))
    decoder = FrameDecoder()
    decoder.feed(piece)
    out = decoder.next_frame()
    assert out is not None and bytes(out.payload) == frame[HEADER_SIZE:]
    return piece, out


def test_a_data_payload_of_exactly_half_its_piece_is_shared() -> None:
    """A view never keeps alive more than twice its own size: half is shared, less is copied."""
    piece, half = _data_frame_in_a_piece(2000)
    assert isinstance(half.payload, memoryview) and half.payload.obj is piece
    _, less = _data_frame_in_a_piece(2002)
    assert type(less.payload) is bytes


def test_a_frame_that_ends_a_piece_leaves_no_view_of_it() -> None:
    """Once a frame spanning two pieces is taken, the decoder holds nothing of either, so a
    received piece is freed as soon as its frames are."""
    frame = header(FrameKind.END, 40) + b"e" * 40
    first, second = frame[:20], frame[20:]
    before = sys.getrefcount(second)
    decoder = FrameDecoder()
    decoder.feed(first)
    decoder.feed(second)
    assert sys.getrefcount(second) > before
    assert drain(decoder) == [Frame(FrameKind.END, b"e" * 40)]
    assert decoder.buffered == 0
    assert sys.getrefcount(second) == before
