"""Frame codec and event payloads: round trips, incremental decoding, limits, hostile bytes."""
from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.keys.jws import canonical_json
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.connection import Connection, Role, State
from lienthong.protocol.errors import (
    FrameError,
    FrameTooLarge,
    LocalProtocolError,
    MessageError,
    ProtocolError,
    UnsupportedVersion,
)
from lienthong.protocol.events import (
    EVENT_TYPES,
    MAX_CODE,
    MAX_ENVELOPE,
    MAX_REASON,
    MAX_RECEIPT,
    MAX_SOFTWARE,
    MAX_U64,
    Accept,
    Data,
    End,
    Error,
    Event,
    Have,
    Hello,
    Offer,
    Ping,
    Pong,
    Priority,
    Receipt,
    Reject,
    clean_text,
    decode_event,
    encode_event,
)
from lienthong.protocol.frames import (
    HEADER_SIZE,
    MAX_DATA,
    MAX_FRAME_SIZE,
    MAX_PAYLOAD,
    MAX_PAYLOAD_BY_KIND,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    FrameKind,
    encode_frame,
)

NODE_A = node_id_from_public_key(b"\x01" * 32)
NODE_B = node_id_from_public_key(b"\x02" * 32)
MID = "0123456789abcdef0123456789abcdef"
MID2 = "fedcba9876543210fedcba9876543210"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJ4IjoxfQ.c2lnbmF0dXJl"

#: One valid event of every kind.
SAMPLES: tuple[Event, ...] = (
    Hello(NODE_A, "lienthong 0.1 (Hà Nội)"),
    Offer(MID, TOKEN, 123456, Priority.FLASH),
    Accept(MID, 1000),
    Have(MID, TOKEN),
    Reject(MID, "not-addressed-to-us", "Văn bản không gửi cho đơn vị này"),
    Data(MID, 2 ** 40, b"\x00ciphertext\xff"),
    End(MID),
    Receipt(MID, TOKEN),
    Error("bad-frame", "frame kind 77"),
    Ping(MAX_U64),
    Pong(0),
)

#: The largest valid event of every kind (astral characters: 4 bytes each in UTF-8).
LARGEST: tuple[Event, ...] = (
    Hello(NODE_A, "\U0001F4DC" * MAX_SOFTWARE, 255),
    Offer(MID, "a" * MAX_ENVELOPE, MAX_U64, Priority.NORMAL),
    Accept(MID, MAX_U64),
    Have(MID, "a" * MAX_RECEIPT),
    Reject(MID, "a" * MAX_CODE, "\U0001F4DC" * MAX_REASON),
    Data(MID, MAX_U64 - MAX_DATA, b"\xff" * MAX_DATA),
    End(MID),
    Receipt(MID, "a" * MAX_RECEIPT),
    Error("a" * MAX_CODE, '"' * MAX_REASON),
    Ping(MAX_U64),
    Pong(MAX_U64),
)


def stream() -> bytes:
    return b"".join(encode_event(event) for event in SAMPLES)


def drain(decoder: FrameDecoder) -> list[Frame]:
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames


def decode_all(pieces: list[bytes]) -> list[Event]:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for piece in pieces:
        decoder.feed(piece)
        frames.extend(drain(decoder))
    assert decoder.buffered == 0
    return [decode_event(frame) for frame in frames]


def header(kind: int, length: int, version: int = PROTOCOL_VERSION) -> bytes:
    return struct.pack(">BBI", version, kind, length)


# -- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip_each_kind(event: Event) -> None:
    """Every kind of event survives encode -> decode unchanged."""
    assert decode_all([encode_event(event)]) == [event]


def test_samples_cover_every_kind() -> None:
    """The samples (and so the round-trip test) include one event of every frame kind."""
    assert {type(event).KIND for event in SAMPLES} == set(FrameKind)
    assert set(EVENT_TYPES) == set(FrameKind)


@pytest.mark.parametrize("event", LARGEST, ids=lambda e: type(e).__name__)
def test_largest_event_fits_its_kind(event: Event) -> None:
    """The largest valid event of each kind fits under that kind's frame limit."""
    payload = event.to_payload()
    assert len(payload) <= MAX_PAYLOAD_BY_KIND[event.KIND] <= MAX_PAYLOAD
    assert decode_all([encode_event(event)]) == [event]


def test_control_payload_is_canonical_json() -> None:
    """Control payloads are the canonical JSON of exactly the event's fields."""
    offer = SAMPLES[1]
    assert offer.to_payload() == canonical_json(
        {"message_id": MID, "envelope": TOKEN, "ciphertext_size": 123456, "priority": 0})


def test_data_layout() -> None:
    """DATA is message ID (16 raw bytes) | offset u64 BE | ciphertext."""
    frame = encode_event(Data(MID, 258, b"xyz"))
    assert frame == (header(FrameKind.DATA, 27) + bytes.fromhex(MID) +
                     (258).to_bytes(8, "big") + b"xyz")


def test_header_layout() -> None:
    """A frame is version u8, kind u8, length u32 BE, then the payload."""
    assert encode_frame(FrameKind.END, b"{}") == b"\x01\x07\x00\x00\x00\x02{}"
    assert HEADER_SIZE == 6 and PROTOCOL_VERSION == 1 and MAX_PAYLOAD == 1024 * 1024 + 64


# -- incremental decoding -------------------------------------------------------------------

def test_decoder_whole() -> None:
    """A stream of every kind fed in one piece decodes to the same events."""
    assert decode_all([stream()]) == list(SAMPLES)


def test_decoder_byte_by_byte() -> None:
    """The same stream fed one byte at a time decodes identically."""
    data = stream()
    assert decode_all([data[i:i + 1] for i in range(len(data))]) == list(SAMPLES)


def test_decoder_every_split_point() -> None:
    """Cutting the stream in two at any byte gives the same events."""
    data = stream()
    for cut in range(len(data) + 1):
        assert decode_all([data[:cut], data[cut:]]) == list(SAMPLES), cut


def test_decoder_trailing_junk() -> None:
    """Frames before trailing junk are returned; the junk then raises a protocol error."""
    decoder = FrameDecoder()
    decoder.feed(stream() + b"GET / HTTP/1.1\r\n")
    frames = [decoder.next_frame() for _ in SAMPLES]
    assert [decode_event(f) for f in frames] == list(SAMPLES)
    with pytest.raises(UnsupportedVersion):
        decoder.next_frame()


def test_decoder_incomplete_trailer_waits() -> None:
    """A partial header after complete frames just means 'need more bytes'."""
    decoder = FrameDecoder()
    decoder.feed(encode_event(End(MID)) + b"\x01\x07\x00")
    assert decode_event(decoder.next_frame()) == End(MID)
    assert decoder.next_frame() is None
    assert decoder.buffered == 3


def test_large_frames_in_small_pieces() -> None:
    """Maximal DATA frames fed in 16 KiB pieces decode, with the buffer never above one frame."""
    events = [Data(MID, i * MAX_DATA, bytes([i]) * MAX_DATA) for i in range(4)]
    data = b"".join(encode_event(e) for e in events)
    decoder = FrameDecoder()
    out: list[Event] = []
    for start in range(0, len(data), 16 * 1024):
        decoder.feed(data[start:start + 16 * 1024])
        assert decoder.buffered < MAX_FRAME_SIZE + 16 * 1024
        out.extend(decode_event(f) for f in drain(decoder))
        assert decoder.buffered < MAX_FRAME_SIZE
    assert out == events


# -- limits and bad headers -----------------------------------------------------------------

def test_oversize_refused_at_header() -> None:
    """A header announcing MAX_PAYLOAD+1 bytes is refused at once, before any payload."""
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(header(FrameKind.DATA, MAX_PAYLOAD + 1))
    assert decoder.buffered == 0


def test_oversize_refused_for_every_kind() -> None:
    """Each kind's ceiling is enforced from its header alone, however the header arrives."""
    for kind, limit in MAX_PAYLOAD_BY_KIND.items():
        decoder = FrameDecoder()
        for byte in header(kind, limit + 1)[:-1]:
            decoder.feed(bytes([byte]))
        with pytest.raises(FrameTooLarge):
            decoder.feed(header(kind, limit + 1)[-1:])


def test_huge_length_refused() -> None:
    """A length of 2**32-1 is refused (and nothing allocated for it)."""
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(header(FrameKind.OFFER, 2 ** 32 - 1))
    assert info.value.code == "frame-too-large"


def test_caller_limit_applies() -> None:
    """Lowering max_payload refuses frames the per-kind limit alone would allow."""
    decoder = FrameDecoder(max_payload=100)
    with pytest.raises(FrameTooLarge):
        decoder.feed(header(FrameKind.OFFER, 101))


def test_zero_length_frame_is_a_frame() -> None:
    """A zero-length frame decodes to a frame, whose empty payload is then a bad message."""
    decoder = FrameDecoder()
    decoder.feed(header(FrameKind.END, 0))
    frame = decoder.next_frame()
    assert frame == Frame(FrameKind.END, b"")
    with pytest.raises(MessageError):
        decode_event(frame)


@pytest.mark.parametrize("version", [0, 2, 0x16, 255])
def test_wrong_version(version: int) -> None:
    """Any version byte other than 1 is refused at the first byte."""
    decoder = FrameDecoder()
    with pytest.raises(UnsupportedVersion) as info:
        decoder.feed(bytes([version]))
    assert info.value.code == "unsupported-version"


@pytest.mark.parametrize("kind", [0, 12, 99, 255])
def test_unknown_kind(kind: int) -> None:
    """An unknown kind byte is refused as soon as it arrives."""
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(bytes([1, kind]))
    assert info.value.code == "bad-frame"


def test_decoder_stays_dead() -> None:
    """After an error every later call raises the same error."""
    decoder = FrameDecoder()
    with pytest.raises(UnsupportedVersion) as first:
        decoder.feed(b"\x09")
    with pytest.raises(UnsupportedVersion) as again:
        decoder.feed(encode_event(End(MID)))
    assert again.value is first.value
    with pytest.raises(UnsupportedVersion):
        decoder.next_frame()


def test_feeding_without_draining_is_refused() -> None:
    """A caller that never drains is stopped once a whole maximal frame is waiting."""
    decoder = FrameDecoder()
    decoder.feed(encode_event(LARGEST[5]) * 2)
    with pytest.raises(LocalProtocolError):
        decoder.feed(b"\x01")
    assert [decode_event(f) for f in drain(decoder)] == [LARGEST[5]] * 2
    decoder.feed(b"\x01")
    assert decoder.buffered == 1


def test_encode_refuses_oversize() -> None:
    """We never produce a frame a peer would refuse."""
    with pytest.raises(FrameTooLarge):
        encode_frame(FrameKind.PING, b"x" * 257)
    with pytest.raises(LocalProtocolError):
        encode_frame(42, b"")  # type: ignore[arg-type]


# -- payload validation ---------------------------------------------------------------------

BAD_PAYLOADS = [
    (FrameKind.END, b"not json"),
    (FrameKind.END, b"[]"),
    (FrameKind.END, b'{"message_id":"%s","message_id":"%s"}' % (MID.encode(), MID.encode())),
    (FrameKind.END, b"{}"),
    (FrameKind.END, b'{"message_id":"%s","extra":1}' % MID.encode()),
    (FrameKind.END, b'{"message_id":"%s"}' % MID.upper().encode()),
    (FrameKind.END, b'{"message_id":"\xff"}'),
    (FrameKind.ACCEPT, b'{"message_id":"%s","offset":true}' % MID.encode()),
    (FrameKind.ACCEPT, b'{"message_id":"%s","offset":1.0}' % MID.encode()),
    (FrameKind.ACCEPT, b'{"message_id":"%s","offset":-1}' % MID.encode()),
    (FrameKind.ACCEPT, b'{"message_id":"%s","offset":18446744073709551616}' % MID.encode()),
    (FrameKind.PING, b'{"nonce":NaN}'),
    (FrameKind.PING, b'{"nonce":' + b"9" * 5000 + b"}"),
    (FrameKind.ERROR, b'{"code":"x","reason":"\\ud800"}'),
    (FrameKind.ERROR, b'{"code":"x","reason":"line\\nbreak"}'),
    (FrameKind.ERROR, b'{"code":"x","reason":"\\u202eevil"}'),
    (FrameKind.ERROR, b'{"code":"Bad Code","reason":""}'),
    (FrameKind.ERROR, b'{"code":"","reason":""}'),
    (FrameKind.HELLO, b'{"node_id":"%s","software":"x","protocol":1}' % NODE_A.lower().encode()),
    (FrameKind.HELLO, b'{"node_id":"AAAAAAA","software":"x","protocol":1}'),
    (FrameKind.HELLO, b'{"node_id":"%s","software":"","protocol":1}' % NODE_A.encode()),
    (FrameKind.HELLO, b'{"node_id":"%s","software":"x","protocol":0}' % NODE_A.encode()),
    (FrameKind.OFFER, b'{"message_id":"%s","envelope":"a b","ciphertext_size":1,'
                      b'"priority":0}' % MID.encode()),
    (FrameKind.OFFER, b'{"message_id":"%s","envelope":"a","ciphertext_size":1,'
                      b'"priority":4}' % MID.encode()),
    (FrameKind.DATA, bytes.fromhex(MID) + bytes(8)),
    (FrameKind.DATA, b"short"),
    (FrameKind.DATA, bytes.fromhex(MID) + b"\xff" * 8 + b"x"),
]


@pytest.mark.parametrize("kind,payload", BAD_PAYLOADS)
def test_bad_payload(kind: FrameKind, payload: bytes) -> None:
    """Each malformed payload is refused with MessageError, never another exception."""
    with pytest.raises(MessageError) as info:
        decode_event(Frame(kind, payload))
    assert info.value.code == "bad-message"


def test_json_whitespace_and_escapes_accepted() -> None:
    """Non-canonical but valid JSON from another implementation is accepted."""
    payload = b'{ "reason" : "\\u0056\\u0103n", "code" : "x" }'
    assert decode_event(Frame(FrameKind.ERROR, payload)) == Error("x", "Văn")


BAD_CONSTRUCTIONS = [
    lambda: Accept(MID, -1),
    lambda: Accept(MID, True),
    lambda: Accept("0" * 31, 0),
    lambda: Data(MID, 0, b""),
    lambda: Data(MID, 0, bytearray(b"x")),
    lambda: Data(MID, 0, b"x" * (MAX_DATA + 1)),
    lambda: Data(MID, MAX_U64, b"xx"),
    lambda: Offer(MID, TOKEN, 1, 5),
    lambda: Offer(MID, "x" * (MAX_ENVELOPE + 1), 1, 0),
    lambda: Reject(MID, "code", "x" * (MAX_REASON + 1)),
    lambda: Error("c" * (MAX_CODE + 1), ""),
    lambda: Error("c", "bell\a"),
    lambda: Hello("not a node", "x"),
    lambda: Hello(NODE_A, "x" * (MAX_SOFTWARE + 1)),
    lambda: Ping(MAX_U64 + 1),
]


@pytest.mark.parametrize("build", BAD_CONSTRUCTIONS)
def test_events_validate_at_construction(build) -> None:
    """Invalid field values are refused when the event is built."""
    with pytest.raises(MessageError):
        build()


def test_check_tables_name_every_field() -> None:
    """Each JSON event's check table lists exactly its dataclass fields."""
    for cls in EVENT_TYPES.values():
        if cls is not Data:
            assert set(cls._CHECKS) == {f.name for f in dataclasses.fields(cls)}, cls


def test_events_are_frozen() -> None:
    """Events cannot be changed after they are validated."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[2].offset = 5  # type: ignore[misc]


def test_clean_text() -> None:
    """clean_text turns any text into an acceptable reason."""
    cleaned = clean_text("disk\nfull\u202e" + "x" * 2000)
    assert cleaned.startswith("disk full\ufffd") and len(cleaned) == MAX_REASON
    assert Reject(MID, "io-error", cleaned).reason == cleaned


def test_big_data_repr_stays_short() -> None:
    """Logging a DATA event never dumps its ciphertext."""
    assert len(repr(LARGEST[5])) < 200


# -- hostile bytes: only ProtocolError ever escapes -----------------------------------------

@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_decoder_arbitrary_bytes(pieces: list[bytes]) -> None:
    """Arbitrary bytes into the decoder (and payload decoders) raise only ProtocolError."""
    decoder = FrameDecoder()
    try:
        for piece in pieces:
            decoder.feed(piece)
            for frame in drain(decoder):
                decode_event(frame)
    except ProtocolError:
        pass


@settings(max_examples=500)
@given(st.sampled_from(list(FrameKind)), st.binary(max_size=200))
def test_payload_decoders_arbitrary_payload(kind: FrameKind, payload: bytes) -> None:
    """A well-framed header with an arbitrary payload raises only MessageError."""
    try:
        event = decode_event(Frame(kind, payload))
    except MessageError:
        return
    assert type(event).KIND is kind


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) |
    st.text(max_size=40) | st.sampled_from([MID, NODE_A, TOKEN, "bad-frame"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)


@settings(max_examples=500)
@given(st.sampled_from([k for k in FrameKind if k is not FrameKind.DATA]),
       st.dictionaries(st.sampled_from(["message_id", "offset", "nonce", "code", "reason",
                                        "node_id", "software", "protocol", "envelope",
                                        "ciphertext_size", "priority", "receipt", "x"]),
                       _JSON_VALUES, max_size=5))
def test_payload_decoders_arbitrary_json(kind: FrameKind, members: dict) -> None:
    """JSON objects with plausible member names but arbitrary values raise only MessageError."""
    try:
        decode_event(Frame(kind, canonical_json(members)))
    except MessageError:
        pass


def connection_in(role: Role, state: State) -> Connection:
    """A connection of ``role`` brought to ``state`` (READY with two open transfers)."""
    sender, receiver = Connection(Role.SENDER), Connection(Role.RECEIVER)
    ours = sender if role is Role.SENDER else receiver
    if state is State.AWAIT_RECEIVER_HELLO:
        return ours
    sender.receive_data(receiver.send(Hello(NODE_B, "test")))
    if state is State.AWAIT_SENDER_HELLO:
        return ours
    receiver.receive_data(sender.send(Hello(NODE_A, "test")))
    receiver.receive_data(sender.send(Offer(MID, TOKEN, 100, 3)) +
                          sender.send(Offer(MID2, TOKEN, 100, 0)))
    sender.receive_data(receiver.send(Accept(MID, 10)))
    if state is State.CLOSED:
        ours.receive_eof()
    assert ours.state is state
    return ours


_LIVE_STATES = [State.AWAIT_RECEIVER_HELLO, State.AWAIT_SENDER_HELLO, State.READY,
                State.CLOSED]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(Role)), st.sampled_from(_LIVE_STATES),
       st.lists(st.binary(max_size=64), max_size=6))
def test_connection_arbitrary_bytes(role: Role, state: State, pieces: list[bytes]) -> None:
    """Arbitrary bytes into a connection of either role, in any state, raise only ProtocolError."""
    connection = connection_in(role, state)
    try:
        for piece in pieces:
            connection.receive_data(piece)
    except ProtocolError:
        assert connection.state is State.ERROR


_EVENTS = st.one_of(
    st.sampled_from(SAMPLES),
    st.builds(Offer, st.sampled_from([MID, MID2]), st.just(TOKEN),
              st.integers(0, 200), st.integers(0, 3)),
    st.builds(Accept, st.sampled_from([MID, MID2]), st.integers(0, 200)),
    st.builds(Data, st.sampled_from([MID, MID2]), st.integers(0, 200),
              st.binary(min_size=1, max_size=40)),
    st.builds(End, st.sampled_from([MID, MID2])),
    st.builds(Receipt, st.sampled_from([MID, MID2]), st.just(TOKEN)),
    st.builds(Reject, st.sampled_from([MID, MID2]), st.just("x"), st.just("")),
    st.builds(Ping, st.integers(0, 3)),
    st.builds(Pong, st.integers(0, 3)),
    st.builds(Hello, st.sampled_from([NODE_A, NODE_B]), st.just("x"), st.integers(1, 3)),
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(Role)), st.sampled_from(_LIVE_STATES), st.lists(_EVENTS, max_size=12),
       st.integers(1, 50))
def test_connection_arbitrary_events(role: Role, state: State, events: list[Event],
                                     piece: int) -> None:
    """Sequences of well-formed frames in any order, cut anywhere, raise only ProtocolError."""
    connection = connection_in(role, state)
    data = b"".join(encode_event(e) for e in events)
    try:
        for start in range(0, len(data), piece):
            connection.receive_data(data[start:start + piece])
    except ProtocolError:
        assert connection.state is State.ERROR
    for transfer in connection.transfers.values():
        assert transfer.start <= transfer.offset <= transfer.ciphertext_size
