"""Reading into the frame decoder (``read_buffer``/``bytes_read``, the receiver's TLS transport):
the same frames as feeding, checked as early, each DATA payload a read-only view of a buffer
of its frame alone, and a large frame's buffer reused only once no view of it is left."""
from __future__ import annotations

import pytest

from lienthong.protocol.connection import State
from lienthong.protocol.errors import FrameTooLarge, LocalProtocolError, UnsupportedVersion
from lienthong.protocol.events import Data, End, Ping, decode_event, encode_event
from lienthong.protocol.frames import MAX_DATA, POOL_SIZE, SCRATCH, FrameDecoder, FrameKind
from tests.protocol.test_frame_copies import accepted
from tests.protocol.test_frames import MID, SAMPLES


def read_in(decoder: FrameDecoder, wire: bytes, step: int) -> None:
    """Write ``wire`` where the decoder says, at most ``step`` bytes at a time."""
    at = 0
    while at < len(wire):
        view = decoder.read_buffer()
        count = min(len(view), step, len(wire) - at)
        view[:count] = wire[at:at + count]
        del view
        decoder.bytes_read(count)
        at += count


def drain(decoder: FrameDecoder) -> list:
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize("step", [1, 5, 6, 7, 4096, 1 << 30])
def test_reading_gives_the_frames_feeding_gives(step: int) -> None:
    wire = b"".join(encode_event(event) for event in SAMPLES)
    fed = FrameDecoder()
    fed.feed(wire)
    decoder = FrameDecoder()
    read_in(decoder, wire, step)
    assert [decode_event(f) for f in drain(decoder)] == [decode_event(f) for f in drain(fed)]


@pytest.mark.parametrize("step", [100, 1 << 30])
def test_large_data_is_a_read_only_view_of_its_own_buffer(step: int) -> None:
    """Small frames (many in one read) are copied out of the buffer between frames; a frame
    larger than it is read on in a buffer of its own, of which its DATA is a view."""
    size = SCRATCH + 1000
    wire = (encode_event(End(MID)) + encode_event(Data(MID, 0, b"s" * 50))
            + encode_event(Data(MID, 50, b"d" * size)) + encode_event(End(MID)))
    decoder = FrameDecoder()
    read_in(decoder, wire, step)
    end, small, data, last = drain(decoder)
    assert type(end.payload) is bytes and type(small.payload) is bytes
    assert type(data.payload) is memoryview and data.payload.readonly
    assert type(data.payload.obj) is bytearray and len(data.payload.obj) == 24 + size
    event = decode_event(data)
    assert event == Data(MID, 50, b"d" * size) and event.data.readonly
    assert decode_event(last) == End(MID) and decode_event(small) == Data(MID, 0, b"s" * 50)


def test_header_checked_before_any_payload_buffer() -> None:
    decoder = FrameDecoder()
    view = decoder.read_buffer()
    view[0] = 9
    del view
    with pytest.raises(UnsupportedVersion):
        decoder.bytes_read(1)
    with pytest.raises(UnsupportedVersion):   # dead from then on
        decoder.read_buffer()
    small = FrameDecoder(max_payload=4096)
    with pytest.raises(FrameTooLarge):
        read_in(small, encode_event(Data(MID, 0, b"x" * 5000))[:6], 6)


def test_large_buffers_reused_only_once_released() -> None:
    frames = [encode_event(Data(MID, i * MAX_DATA, bytes([i]) * MAX_DATA)) for i in range(3)]
    decoder = FrameDecoder()
    read_in(decoder, frames[0], 300_000)
    (first,) = drain(decoder)
    held = decode_event(first).data
    buffer = first.payload.obj
    del first
    read_in(decoder, frames[1], 300_000)
    (second,) = drain(decoder)
    assert second.payload.obj is not buffer          # still viewed: not written over
    assert held == bytes([0]) * MAX_DATA
    del held, second
    read_in(decoder, frames[2], 300_000)
    (third,) = drain(decoder)
    assert third.payload.obj is buffer or len(decoder._pool) == 2  # a released one again
    assert decode_event(third) == Data(MID, 2 * MAX_DATA, bytes([2]) * MAX_DATA)
    assert len(decoder._pool) <= POOL_SIZE


def test_pool_never_outgrows_its_size() -> None:
    decoder = FrameDecoder()
    kept = []
    for i in range(POOL_SIZE + 2):
        read_in(decoder, encode_event(Data(MID, i * MAX_DATA, b"p" * MAX_DATA)), 1 << 20)
        kept.extend(drain(decoder))
    assert len({id(f.payload.obj) for f in kept}) == POOL_SIZE + 2
    assert len(decoder._pool) == POOL_SIZE


def test_reading_and_feeding_do_not_mix() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_event(Ping(1))[:3])
    with pytest.raises(LocalProtocolError):
        decoder.read_buffer()
    other = FrameDecoder()
    read_in(other, encode_event(Ping(1))[:3], 3)
    with pytest.raises(LocalProtocolError):
        other.feed(b"x")


def test_reading_without_draining_is_refused() -> None:
    decoder = FrameDecoder()
    wire = encode_event(Data(MID, 0, b"z" * MAX_DATA))
    read_in(decoder, wire, 1 << 30)
    read_in(decoder, wire, 1 << 30)
    with pytest.raises(LocalProtocolError):
        decoder.read_buffer()
    assert decoder.next_frame().kind is FrameKind.DATA


def test_connection_reads_into_its_decoder() -> None:
    pair = accepted(1000)
    wire = pair.sender.send(Data(MID, 0, b"q" * 600)) + pair.sender.send(Data(MID, 600, b"r" * 400))
    receiver = pair.receiver
    at = 0
    while at < len(wire):
        view = receiver.receive_buffer()
        count = min(len(view), len(wire) - at)
        view[:count] = wire[at:at + count]
        del view
        receiver.received_into(count)
        at += count
    assert receiver.receive_pieces(()) == [Data(MID, 0, b"q" * 600), Data(MID, 600, b"r" * 400)]
    view = receiver.receive_buffer()
    view[0] = 2   # a frame version this node does not speak
    del view
    with pytest.raises(UnsupportedVersion):
        receiver.received_into(1)
    assert receiver.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        receiver.receive_buffer()
