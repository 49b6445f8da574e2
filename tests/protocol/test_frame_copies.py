"""How many times a DATA frame's bytes are copied between the wire and the cipher (issue 6).

The decoder keeps the pieces it is fed and copies a payload once, when its frame is complete;
a DATA payload inside one piece is not copied at all. The encoder hands a DATA frame out as
header and ciphertext, so the transport can write them without joining them. These tests pin
both, and that neither changes what is decoded or sent.
"""
from __future__ import annotations

import pytest

from lienthong.protocol.errors import LocalProtocolError, MessageError
from lienthong.protocol.events import (
    Accept,
    Data,
    End,
    Offer,
    decode_event,
    encode_event,
    encode_event_parts,
)
from lienthong.protocol.frames import MAX_DATA, FrameDecoder, FrameKind
from tests.protocol.test_connection import Pair, ready
from tests.protocol.test_frames import MID, SAMPLES, TOKEN


def accepted(size: int) -> Pair:
    """Two connections with transfer MID offered and accepted from byte 0."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, size, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    return pair


def test_data_payload_in_one_piece_is_not_copied() -> None:
    """A DATA frame fed in one piece comes out as a view of that very piece."""
    event = Data(MID, 0, b"c" * 100_000)
    piece = encode_event(event)
    decoder = FrameDecoder()
    decoder.feed(piece)
    frame = decoder.next_frame()
    assert isinstance(frame.payload, memoryview) and frame.payload.obj is piece
    decoded = decode_event(frame)
    assert decoded == event and decoded.data.obj is piece   # the ciphertext: a view too


def test_small_frames_in_a_large_piece_are_copied_out() -> None:
    """A control frame, or a DATA frame less than half of its piece, is copied, so a small
    event never keeps a large received piece alive."""
    big = Data(MID, 0, b"x" * 10_000)
    small = Data(MID, 10_000, b"y" * 100)
    piece = encode_event(End(MID)) + encode_event(small) + encode_event(big)
    decoder = FrameDecoder()
    decoder.feed(piece)
    end, data, rest = decoder.next_frame(), decoder.next_frame(), decoder.next_frame()
    assert type(end.payload) is bytes and type(data.payload) is bytes
    assert type(rest.payload) is memoryview   # 10 KiB of a ~10.2 KiB piece: shared
    assert [decode_event(f) for f in (end, data, rest)] == [End(MID), small, big]


def test_frame_across_pieces_is_one_bytes() -> None:
    """A frame spread over many pieces is joined once into ``bytes``."""
    event = Data(MID, 5, bytes(range(256)) * 300)
    wire = encode_event(event)
    decoder = FrameDecoder()
    for start in range(0, len(wire), 1000):
        decoder.feed(wire[start:start + 1000])
    frame = decoder.next_frame()
    assert type(frame.payload) is bytes and decode_event(frame) == event
    assert decoder.buffered == 0


def test_fed_buffer_may_be_reused_by_the_caller() -> None:
    """Bytes fed as a bytearray are copied at once: changing it afterwards changes nothing."""
    wire = bytearray(encode_event(Data(MID, 0, b"a" * 50)))
    decoder = FrameDecoder()
    decoder.feed(wire)
    wire[:] = b"z" * len(wire)
    assert decode_event(decoder.next_frame()) == Data(MID, 0, b"a" * 50)


def test_data_accepts_only_read_only_views() -> None:
    """A DATA event may hold a view of ``bytes``, or a read-only view of a bytearray (the
    decoder's buffer of one frame), not a view through which it could change."""
    assert Data(MID, 0, memoryview(b"abc")[1:]).to_payload().endswith(b"bc")
    assert Data(MID, 0, memoryview(bytearray(b"abc")).toreadonly()).to_payload().endswith(b"c")
    with pytest.raises(MessageError):
        Data(MID, 0, memoryview(bytearray(b"abc")))
    with pytest.raises(MessageError):
        Data(MID, 0, memoryview(b"abcd").cast("H"))
    with pytest.raises(MessageError):
        Data(MID, 0, memoryview(b""))


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_parts_are_the_frame(event) -> None:
    """The pieces joined are exactly the frame; a DATA frame's ciphertext is its own piece."""
    parts = encode_event_parts(event)
    assert b"".join(parts) == encode_event(event)
    if isinstance(event, Data):
        assert len(parts) == 2 and parts[1] is event.data
    else:
        assert len(parts) == 1


def test_largest_data_parts() -> None:
    """The largest DATA frame splits into its 30-byte header and prefix and the ciphertext."""
    data = b"\xff" * MAX_DATA
    head, body = encode_event_parts(Data(MID, 7, data))
    assert len(head) == 30 and head[1] == FrameKind.DATA and body is data


def test_send_parts_checks_like_send() -> None:
    """``send_parts`` applies the same rules as ``send``: a DATA frame out of order is refused
    and changes nothing; one in order is accepted, and the peer decodes it."""
    pair = accepted(100)
    with pytest.raises(LocalProtocolError):
        pair.sender.send_parts(Data(MID, 50, b"x" * 50))
    parts = pair.sender.send_parts(Data(MID, 0, b"x" * 60))
    assert len(parts) == 2
    assert pair.receiver.receive_data(b"".join(parts)) == [Data(MID, 0, b"x" * 60)]
    assert pair.sender.send(Data(MID, 60, b"y" * 40)).endswith(b"y" * 40)


def test_connection_decodes_a_view() -> None:
    """A whole DATA frame in one read reaches the caller without being copied."""
    pair = accepted(1000)
    wire = pair.sender.send(Data(MID, 0, b"q" * 1000))
    (event,) = pair.receiver.receive_data(wire)
    assert event.data.obj is wire
