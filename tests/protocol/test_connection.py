"""The connection state machine: two Connections wired back to back (h11 tests/helpers.py)."""
from __future__ import annotations

import pytest

from lienthong.protocol.connection import (
    CONNECTION_TRANSITIONS,
    HANDSHAKE_MAX_PAYLOAD,
    TRANSFER_TRANSITIONS,
    Connection,
    Role,
    State,
    TransferState,
)
from lienthong.protocol.errors import (
    DataBeyondSize,
    DuplicateOffer,
    FrameTooLarge,
    LocalProtocolError,
    OutOfOrder,
    PrematureEnd,
    ProtocolError,
    StateError,
    TooManyOffers,
    UnknownTransfer,
    UnsupportedVersion,
)
from lienthong.protocol.events import (
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
    Receipt,
    Reject,
    encode_event,
)
from lienthong.protocol.frames import FrameKind, encode_frame
from tests.protocol.test_frames import MID, MID2, NODE_A, NODE_B, TOKEN

MID3 = "33333333333333333333333333333333"


class Pair:
    """A sender and a receiver joined by an in-memory wire."""

    def __init__(self, max_in_flight: int = 32) -> None:
        self.sender = Connection(Role.SENDER, max_in_flight)
        self.receiver = Connection(Role.RECEIVER, max_in_flight)

    def say(self, by: Connection, *events: Event, byte_by_byte: bool = False) -> list[Event]:
        """``by`` sends ``events``; return what the other side received (checked equal)."""
        other = self.receiver if by is self.sender else self.sender
        data = b"".join(by.send(event) for event in events)
        if byte_by_byte:
            got = [e for i in range(len(data)) for e in other.receive_data(data[i:i + 1])]
        else:
            got = other.receive_data(data)
        assert got == list(events)
        return got

    def greet(self) -> Pair:
        self.say(self.receiver, Hello(NODE_B, "lienthong test"))
        self.say(self.sender, Hello(NODE_A, "lienthong test"))
        return self


def ready(max_in_flight: int = 32) -> Pair:
    return Pair(max_in_flight).greet()


def violate(target: Connection, data: bytes, error: type[ProtocolError], match: str) -> None:
    """Feed ``data`` to ``target``; it must raise exactly ``error`` and end in ERROR."""
    with pytest.raises(ProtocolError, match=match) as info:
        target.receive_data(data)
    assert type(info.value) is error
    assert target.state is State.ERROR and target.failure is info.value
    with pytest.raises(LocalProtocolError):
        target.receive_data(b"")


# -- complete exchanges ---------------------------------------------------------------------

def test_full_exchange() -> None:
    """Hello/hello, offer, accept at 0, data in chunks, end, receipt: both sides agree."""
    pair = Pair()
    s, r = pair.sender, pair.receiver
    assert s.state is r.state is State.AWAIT_RECEIVER_HELLO
    pair.say(r, Hello(NODE_B, "lienthong test"))
    assert s.state is r.state is State.AWAIT_SENDER_HELLO
    assert s.peer_hello == Hello(NODE_B, "lienthong test")
    pair.say(s, Hello(NODE_A, "lienthong test"))
    assert s.state is r.state is State.READY and r.peer_hello.node_id == NODE_A
    pair.say(s, Offer(MID, TOKEN, 10, 3))
    assert r.transfers[MID].state is s.transfers[MID].state is TransferState.OFFERED
    pair.say(r, Accept(MID, 0))
    pair.say(s, Data(MID, 0, b"abcd"), Data(MID, 4, b"efgh"), Data(MID, 8, b"ij"))
    assert r.transfers[MID].offset == s.transfers[MID].offset == 10
    pair.say(s, End(MID))
    assert r.transfers[MID].state is TransferState.ENDED
    pair.say(r, Receipt(MID, TOKEN))
    assert dict(s.transfers) == dict(r.transfers) == {}
    assert s.state is r.state is State.READY


def test_full_exchange_byte_by_byte() -> None:
    """The same exchange works when every frame arrives one byte at a time."""
    pair = Pair()
    pair.say(pair.receiver, Hello(NODE_B, "x"), byte_by_byte=True)
    pair.say(pair.sender, Hello(NODE_A, "x"), Offer(MID, TOKEN, 3, 0), byte_by_byte=True)
    pair.say(pair.receiver, Accept(MID, 0), byte_by_byte=True)
    pair.say(pair.sender, Data(MID, 0, b"abc"), End(MID), byte_by_byte=True)
    pair.say(pair.receiver, Receipt(MID, TOKEN), byte_by_byte=True)
    assert not pair.sender.transfers and not pair.receiver.transfers


def test_pieces_give_the_same_events_as_the_joined_bytes() -> None:
    """``receive_pieces`` (the TLS records of one read, node/transport/bulk.py) decodes the
    same events as the joined bytes, wherever the pieces cut the frames, 1 MiB DATA included."""
    pair = Pair()
    big = bytes(range(256)) * 4096
    events = [Hello(NODE_A, "x"), Offer(MID, TOKEN, len(big) + 3, 0)]
    pair.say(pair.receiver, Hello(NODE_B, "x"))
    wire = b"".join(pair.sender.send(event) for event in events)
    assert pair.receiver.receive_pieces([wire[:5], wire[5:6], wire[6:]]) == events
    pair.say(pair.receiver, Accept(MID, 0))
    data = [Data(MID, 0, big), Data(MID, len(big), b"abc"), End(MID)]
    wire = b"".join(pair.sender.send(event) for event in data)
    pieces = [wire[i:i + 16384] for i in range(0, len(wire), 16384)]
    assert len(pieces) > 64
    assert pair.receiver.receive_pieces(pieces) == data
    assert pair.receiver.transfers[MID].state is TransferState.ENDED


def test_pieces_after_an_error_frame_are_not_read() -> None:
    """An ERROR in an early piece closes the connection: later pieces (garbage) are ignored,
    as when they follow it in one piece."""
    pair = ready()
    error = pair.receiver.send(Error("disk-full", "stopping"))
    assert pair.sender.receive_pieces([error, b"\xff garbage", b"\xff" * 2_000_000]) == [
        Error("disk-full", "stopping")]
    assert pair.sender.state is State.CLOSED


def test_resume_from_offset() -> None:
    """An ACCEPT with offset > 0 resumes: DATA starts there and END comes at the size."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 100, 3))
    pair.say(pair.receiver, Accept(MID, 60))
    assert pair.sender.transfers[MID].start == 60
    pair.say(pair.sender, Data(MID, 60, b"x" * 40), End(MID))
    pair.say(pair.receiver, Receipt(MID, TOKEN))
    assert MID not in pair.receiver.transfers


def test_accept_at_size_then_end() -> None:
    """A receiver holding every byte accepts at the size; the sender just ends."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 5, 3))
    pair.say(pair.receiver, Accept(MID, 5))
    pair.say(pair.sender, End(MID))
    assert pair.receiver.transfers[MID].state is TransferState.ENDED


def test_have_finishes_transfer() -> None:
    """HAVE answers an OFFER with the stored receipt and finishes the transfer."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 5, 3))
    pair.say(pair.receiver, Have(MID, TOKEN))
    assert MID not in pair.sender.transfers and MID not in pair.receiver.transfers


@pytest.mark.parametrize("stage", ["offered", "accepted", "ended"])
def test_reject_at_each_stage(stage: str) -> None:
    """REJECT finishes a transfer from OFFERED, ACCEPTED or ENDED; the connection goes on."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 2, 3))
    if stage != "offered":
        pair.say(pair.receiver, Accept(MID, 0))
    if stage == "ended":
        pair.say(pair.sender, Data(MID, 0, b"ab"), End(MID))
    pair.say(pair.receiver, Reject(MID, "digest-mismatch", "sai mã băm"))
    assert not pair.sender.transfers and not pair.receiver.transfers
    pair.say(pair.sender, Offer(MID, TOKEN, 2, 3))  # a retry on the same connection
    assert pair.receiver.state is State.READY


def test_reject_races_with_data_in_flight() -> None:
    """DATA/END already on the wire when the receiver rejected are dropped, not errors."""
    pair = ready()
    s, r = pair.sender, pair.receiver
    pair.say(s, Offer(MID, TOKEN, 6, 3))
    pair.say(r, Accept(MID, 0))
    in_flight = s.send(Data(MID, 0, b"abc")) + s.send(Data(MID, 3, b"def")) + s.send(End(MID))
    reject = r.send(Reject(MID, "disk-full", "hết chỗ"))
    assert r.receive_data(in_flight) == []
    assert s.receive_data(reject) == [Reject(MID, "disk-full", "hết chỗ")]
    assert s.state is r.state is State.READY and not s.transfers and not r.transfers
    # END closed the drain: another DATA for that message is now an error.
    violate(r, encode_event(Data(MID, 6, b"x")), UnknownTransfer, "already finished")


def test_two_transfers_interleaved() -> None:
    """An urgent transfer runs between the DATA frames of a large one."""
    pair = ready()
    s, r = pair.sender, pair.receiver
    pair.say(s, Offer(MID, TOKEN, 8, 3))
    pair.say(r, Accept(MID, 0))
    pair.say(s, Data(MID, 0, b"big1"), Offer(MID2, TOKEN, 2, 0))
    pair.say(r, Accept(MID2, 0))
    pair.say(s, Data(MID2, 0, b"u1"), Data(MID, 4, b"big2"), End(MID2))
    pair.say(r, Receipt(MID2, TOKEN))
    assert set(r.transfers) == {MID} and r.transfers[MID].offset == 8
    pair.say(s, End(MID))
    pair.say(r, Receipt(MID, TOKEN))
    assert not s.transfers and not r.transfers


def test_ping_pong_both_ways() -> None:
    """PING is answered by a PONG with the same nonce, in either direction."""
    pair = ready()
    pair.say(pair.sender, Ping(7))
    pair.say(pair.receiver, Pong(7))
    pair.say(pair.receiver, Ping(8))
    pair.say(pair.sender, Pong(8))
    assert pair.sender.state is pair.receiver.state is State.READY


def test_error_closes_and_later_bytes_are_ignored() -> None:
    """A received ERROR closes the connection; anything after it is ignored."""
    pair = ready()
    data = pair.receiver.send(Error("disk-full", "stopping")) + b"\xff garbage"
    assert pair.sender.receive_data(data) == [Error("disk-full", "stopping")]
    assert pair.sender.state is pair.receiver.state is State.CLOSED
    assert pair.sender.receive_data(b"more") == []
    with pytest.raises(LocalProtocolError):
        pair.receiver.send(Ping(1))


def test_error_allowed_before_hello() -> None:
    """ERROR may be sent before any HELLO (a refused peer is told why)."""
    pair = Pair()
    pair.say(pair.receiver, Error("unknown-peer", "not in our directory"))
    assert pair.sender.state is State.CLOSED


def test_eof_keeps_open_transfers_visible() -> None:
    """After EOF the open transfers are still listed, so the node knows what to resume."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 8, 3))
    pair.sender.receive_eof()
    assert pair.sender.state is State.CLOSED and MID in pair.sender.transfers


def test_transfers_view_is_read_only() -> None:
    """The transfers view cannot be used to change the connection's state."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 8, 3))
    with pytest.raises(TypeError):
        pair.sender.transfers[MID2] = pair.sender.transfers[MID]  # type: ignore[index]


def test_tables_only_use_known_states() -> None:
    """The transition tables mention every state and every speaker role."""
    assert {key[1] for key in CONNECTION_TRANSITIONS} | set(CONNECTION_TRANSITIONS.values()) \
        == {State.AWAIT_RECEIVER_HELLO, State.AWAIT_SENDER_HELLO, State.READY, State.CLOSED}
    assert set(TRANSFER_TRANSITIONS.values()) == set(TransferState)


# -- violations by the peer: each has its own error -----------------------------------------

def test_data_before_accept() -> None:
    """DATA for an OFFERED transfer is refused."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 8, 3))
    violate(pair.receiver, encode_event(Data(MID, 0, b"x")), StateError, "before it was accepted")


@pytest.mark.parametrize("offset,what", [(3, "gap of 1"), (1, "overlap of 1")])
def test_out_of_order_offset(offset: int, what: str) -> None:
    """DATA that skips or repeats bytes is refused as out-of-order."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 8, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.say(pair.sender, Data(MID, 0, b"ab"))
    violate(pair.receiver, encode_event(Data(MID, offset, b"x")), OutOfOrder, what)
    assert pair.receiver.failure.code == "out-of-order"


def test_data_before_resume_offset() -> None:
    """After ACCEPT at 60, DATA from 0 is out of order."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 100, 3))
    pair.say(pair.receiver, Accept(MID, 60))
    violate(pair.receiver, encode_event(Data(MID, 0, b"x")), OutOfOrder, "expected offset 60")


def test_data_beyond_size() -> None:
    """DATA past the announced ciphertext size is refused."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    violate(pair.receiver, encode_event(Data(MID, 0, b"12345")), DataBeyondSize, "beyond")


def test_end_early() -> None:
    """END before every byte arrived is refused."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.say(pair.sender, Data(MID, 0, b"123"))
    violate(pair.receiver, encode_event(End(MID)), PrematureEnd, "at byte 3 of 4")


def test_duplicate_offer() -> None:
    """A second OFFER for a message already in flight is refused."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    violate(pair.receiver, encode_event(Offer(MID, TOKEN, 4, 3)), DuplicateOffer, "in flight")


def test_offer_flood() -> None:
    """More open OFFERs than max_in_flight is refused with code too-many-offers."""
    pair = ready(max_in_flight=2)
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3), Offer(MID2, TOKEN, 4, 3))
    violate(pair.receiver, encode_event(Offer(MID3, TOKEN, 4, 3)), TooManyOffers, "2 transfers")
    assert pair.receiver.failure.code == "too-many-offers"


def test_finished_transfers_free_their_slot() -> None:
    """A finished transfer no longer counts against max_in_flight."""
    pair = ready(max_in_flight=1)
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    pair.say(pair.receiver, Have(MID, TOKEN))
    pair.say(pair.sender, Offer(MID2, TOKEN, 4, 3))
    assert list(pair.receiver.transfers) == [MID2]


def test_receipt_before_end() -> None:
    """A RECEIPT for a transfer still receiving DATA is refused."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    violate(pair.sender, encode_event(Receipt(MID, TOKEN)), StateError, "before its END")


def test_offer_before_hello() -> None:
    """An OFFER before the HELLO exchange is refused, on both sides of it."""
    violate(Connection(Role.RECEIVER), encode_event(Offer(MID, TOKEN, 4, 3)), StateError,
            "before the receiver's HELLO")
    pair = Pair()
    pair.say(pair.receiver, Hello(NODE_B, "x"))
    violate(pair.receiver, encode_event(Offer(MID, TOKEN, 4, 3)), StateError,
            "before the sender's HELLO")


def test_sender_may_not_speak_first() -> None:
    """A sender's HELLO before the receiver's is refused."""
    violate(Connection(Role.RECEIVER), encode_event(Hello(NODE_A, "x")), StateError,
            "before the receiver's HELLO")


def test_second_hello() -> None:
    """HELLO is said once per side."""
    pair = ready()
    violate(pair.receiver, encode_event(Hello(NODE_A, "x")), StateError, "not allowed")


def test_wrong_role() -> None:
    """A sender never sends ACCEPT, and a receiver never sends DATA."""
    violate(ready().receiver, encode_event(Accept(MID, 0)), StateError, "sender never sends")
    violate(ready().sender, encode_event(Data(MID, 0, b"x")), StateError,
            "receiver never sends")


def test_wrong_frame_version() -> None:
    """A frame of another version is refused at its first byte."""
    pair = ready()
    violate(pair.receiver, b"\x02", UnsupportedVersion, "version 2")


def test_wrong_hello_protocol() -> None:
    """A HELLO announcing another protocol version is refused."""
    violate(Connection(Role.SENDER), encode_event(Hello(NODE_B, "x", 3)), UnsupportedVersion,
            "protocol 3")


def test_hello_protocol_is_the_one_agreed() -> None:
    """A side held to protocol 1 (ALPN agreed lienthong/1) refuses a HELLO naming 2; the
    sender's HELLO must name the protocol the receiver's named; both sides then know it."""
    held = Connection(Role.SENDER, protocols=(1,))
    violate(held, encode_event(Hello(NODE_B, "x", 2)), UnsupportedVersion, "protocol 2")
    receiver = Connection(Role.RECEIVER)
    receiver.send(Hello(NODE_B, "x", 2))
    violate(receiver, encode_event(Hello(NODE_A, "x", 1)), UnsupportedVersion,
            "receiver's named 2")
    pair = Pair(32)
    pair.say(pair.receiver, Hello(NODE_B, "x", 2))
    pair.say(pair.sender, Hello(NODE_A, "x", 2))
    assert pair.sender.protocol == pair.receiver.protocol == 2
    late = Connection(Role.SENDER)
    late.receive_data(encode_event(Hello(NODE_B, "x", 1)))
    with pytest.raises(LocalProtocolError):
        late.set_protocols((2,))


def test_unknown_transfer() -> None:
    """DATA or ACCEPT for a message never offered is refused."""
    pair = ready()
    violate(pair.receiver, encode_event(Data(MID, 0, b"x")), UnknownTransfer, "never offered")
    violate(ready().sender, encode_event(Accept(MID, 0)), UnknownTransfer, "never offered")


def test_late_data_after_receipt() -> None:
    """DATA for a transfer that already finished is refused, naming it as finished."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 1, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.say(pair.sender, Data(MID, 0, b"x"), End(MID))
    pair.say(pair.receiver, Receipt(MID, TOKEN))
    violate(pair.receiver, encode_event(Data(MID, 1, b"x")), UnknownTransfer,
            "already finished")


def test_accept_beyond_size() -> None:
    """An ACCEPT offset beyond the ciphertext size is refused."""
    pair = ready()
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    violate(pair.sender, encode_event(Accept(MID, 5)), StateError, "beyond the ciphertext")


def test_unsolicited_pong() -> None:
    """A PONG that answers no PING is refused."""
    violate(ready().sender, encode_event(Pong(3)), StateError, "no outstanding PING")


def test_ping_flood() -> None:
    """More unanswered PINGs than allowed are refused."""
    pair = ready()
    data = b"".join(encode_event(Ping(n)) for n in range(17))
    violate(pair.sender, data, StateError, "unanswered")


def test_big_frame_before_hello() -> None:
    """Before HELLO a frame above the handshake limit is refused at its header."""
    header = encode_frame(FrameKind.OFFER, b"x" * (HANDSHAKE_MAX_PAYLOAD + 1))[:6]
    violate(Connection(Role.RECEIVER), header, FrameTooLarge, "limit")


def test_big_offer_after_hello() -> None:
    """After HELLO the same size of frame is accepted."""
    pair = Pair()
    pair.say(pair.receiver, Hello(NODE_B, "x"))
    offer = Offer(MID, TOKEN + "A" * HANDSHAKE_MAX_PAYLOAD, 4, 3)
    data = pair.sender.send(Hello(NODE_A, "x")) + pair.sender.send(offer)
    assert pair.receiver.receive_data(data) == [Hello(NODE_A, "x"), offer]


def test_error_after_failure() -> None:
    """After a violation the node may still send one ERROR, then nothing."""
    pair = ready()
    violate(pair.receiver, encode_event(Data(MID, 0, b"x")), UnknownTransfer, "never offered")
    code = pair.receiver.failure.code
    data = pair.receiver.send(Error(code, "DATA for an unknown transfer"))
    assert pair.sender.receive_data(data) == [Error("unknown-transfer",
                                                    "DATA for an unknown transfer")]
    with pytest.raises(LocalProtocolError):
        pair.receiver.send(Error(code, "again"))


# -- local misuse ---------------------------------------------------------------------------

def test_local_misuse_raises_and_changes_nothing() -> None:
    """Sending what the tables forbid raises LocalProtocolError and leaves state unchanged."""
    sender = Connection(Role.SENDER)
    with pytest.raises(LocalProtocolError, match="before the receiver's HELLO"):
        sender.send(Offer(MID, TOKEN, 4, 3))
    with pytest.raises(LocalProtocolError, match="before the receiver's HELLO"):
        sender.send(Hello(NODE_A, "x"))
    assert sender.state is State.AWAIT_RECEIVER_HELLO
    pair = ready()
    with pytest.raises(LocalProtocolError, match="receiver never sends"):
        pair.receiver.send(Offer(MID, TOKEN, 4, 3))
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    with pytest.raises(LocalProtocolError, match="out-of-order"):
        pair.sender.send(Data(MID, 1, b"x"))
    with pytest.raises(LocalProtocolError, match="premature-end"):
        pair.sender.send(End(MID))
    with pytest.raises(LocalProtocolError, match="no outstanding PING"):
        pair.sender.send(Pong(1))
    with pytest.raises(LocalProtocolError):
        pair.sender.send("not an event")  # type: ignore[arg-type]
    assert pair.sender.transfers[MID].offset == 0 and pair.sender.state is State.READY
    pair.say(pair.sender, Data(MID, 0, b"abcd"), End(MID))  # still usable


def test_local_offer_limit() -> None:
    """Our own side refuses to open more transfers than max_in_flight."""
    pair = ready(max_in_flight=1)
    assert pair.sender.offer_room == 1
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    assert pair.sender.offer_room == 0   # what the node asks before offering
    with pytest.raises(LocalProtocolError, match="too-many-offers"):
        pair.sender.send(Offer(MID2, TOKEN, 4, 3))
    pair.say(pair.receiver, Have(MID, TOKEN))
    assert pair.sender.offer_room == 1


def test_constructor_checks_arguments() -> None:
    """A connection needs a Role and a positive max_in_flight."""
    with pytest.raises(TypeError):
        Connection("sender")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Connection(Role.SENDER, max_in_flight=0)
