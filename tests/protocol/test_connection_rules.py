"""The connection state machine: each guard at its boundary and each refusal word for word.

A refusal's text goes into the ERROR frame sent to the peer and into the audit log
(docs/protocol.md Part B), so the texts are pinned.
"""
from __future__ import annotations

from typing import Any

import pytest

from lienthong.protocol.connection import (
    FINISHED_MEMORY,
    HANDSHAKE_MAX_PAYLOAD,
    MAX_OUTSTANDING_PINGS,
    Connection,
    Role,
    State,
    Transfer,
    TransferState,
    advance_transfer,
)
from lienthong.protocol.errors import (
    DataBeyondSize,
    DuplicateOffer,
    FrameTooLarge,
    LocalProtocolError,
    OutOfOrder,
    PrematureEnd,
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


def mid(n: int) -> str:
    return f"{n:032x}"


class Pair:
    def __init__(self, max_in_flight: int = 32, **kw: Any) -> None:
        self.sender = Connection(Role.SENDER, max_in_flight, **kw)
        self.receiver = Connection(Role.RECEIVER, max_in_flight, **kw)

    def say(self, by: Connection, *events: Event) -> list[Event]:
        other = self.receiver if by is self.sender else self.sender
        return other.receive_data(b"".join(by.send(event) for event in events))

    def greet(self, protocol: int = 1) -> Pair:
        self.say(self.receiver, Hello(NODE_B, "t", protocol))
        self.say(self.sender, Hello(NODE_A, "t", protocol))
        return self


def refused(error: type[Exception], call: Any, *args: Any) -> str:
    with pytest.raises(error) as caught:
        call(*args)
    assert type(caught.value) is error
    return str(caught.value)


def received(conn: Connection, *events: Event) -> list[Event]:
    return conn.receive_data(b"".join(encode_event(e) for e in events))


# -- construction and versions -----------------------------------------------------------------

def test_construction_rules() -> None:
    with pytest.raises(TypeError) as caught:
        Connection("sender")  # type: ignore[arg-type]
    assert str(caught.value) == "role must be a Role, not 'sender'"
    for protocols in ((), (3,), (1, 3)):
        with pytest.raises(ValueError) as value_error:
            Connection(Role.SENDER, protocols=protocols)
        assert str(value_error.value) == "protocols must be among (1, 2)"
    for limit in (0, -1, "2", 1.5):
        with pytest.raises(ValueError) as value_error:
            Connection(Role.SENDER, limit)  # type: ignore[arg-type]
        assert str(value_error.value) == "max_in_flight must be a positive integer"
    one = Connection(Role.SENDER, 1)
    assert (one.role, one.state, one.offer_room, one.protocol, one.peer_hello, one.failure) == \
        (Role.SENDER, State.AWAIT_RECEIVER_HELLO, 1, None, None, None)


def test_the_protocol_is_agreed_by_the_two_hellos() -> None:
    pair = Pair()
    assert pair.say(pair.receiver, Hello(NODE_B, "t", 2)) == [Hello(NODE_B, "t", 2)]
    assert pair.receiver.protocol == pair.sender.protocol == 2
    assert pair.receiver.peer_hello is None                  # its own HELLO is not the peer's
    assert pair.sender.peer_hello == Hello(NODE_B, "t", 2)
    assert refused(LocalProtocolError, pair.sender.send, Hello(NODE_A, "t", 1)) == \
        "we may not send this: the sender's HELLO names protocol 1; the receiver's named 2 " \
        "[unsupported-version]"
    receiver = Connection(Role.RECEIVER)
    receiver.send(Hello(NODE_B, "t", 2))
    assert refused(UnsupportedVersion, received, receiver, Hello(NODE_A, "t", 1)) == \
        "the sender's HELLO names protocol 1; the receiver's named 2"
    pair.say(pair.sender, Hello(NODE_A, "t", 2))
    assert pair.receiver.peer_hello == Hello(NODE_A, "t", 2)
    assert pair.sender.state is pair.receiver.state is State.READY


def test_a_narrowed_protocol_refuses_the_other() -> None:
    sender = Connection(Role.SENDER)
    sender.set_protocols((2,))
    assert refused(UnsupportedVersion, received, sender, Hello(NODE_B, "t", 1)) == \
        "HELLO names protocol 1; this connection speaks (2,)"
    sender = Connection(Role.SENDER, protocols=(1,))
    assert refused(UnsupportedVersion, received, sender, Hello(NODE_B, "t", 2)) == \
        "HELLO names protocol 2; this connection speaks (1,)"
    sender = Connection(Role.SENDER)
    sender.set_protocols((1, 2))
    assert received(sender, Hello(NODE_B, "t", 2)) == [Hello(NODE_B, "t", 2)]
    for protocols in ((), (3,), (1,)):
        with pytest.raises(LocalProtocolError) as caught:
            sender.set_protocols(protocols)                   # after the first HELLO
        assert str(caught.value) == "the protocol is fixed before the first HELLO"
    fresh = Connection(Role.SENDER)
    for protocols in ((), (0,)):
        with pytest.raises(LocalProtocolError):
            fresh.set_protocols(protocols)


def test_frames_are_small_until_both_hellos() -> None:
    big = encode_frame(FrameKind.OFFER, b"{" + b" " * HANDSHAKE_MAX_PAYLOAD)
    with pytest.raises(FrameTooLarge):
        Connection(Role.SENDER).receive_data(big)
    pair = Pair().greet()
    offer = Offer(MID, "e" * (HANDSHAKE_MAX_PAYLOAD + 10), 5, 3)
    assert pair.say(pair.sender, offer) == [offer]


# -- receiving after the end -------------------------------------------------------------------

def test_after_a_failure_only_one_error_may_be_sent() -> None:
    conn = Connection(Role.SENDER)
    with pytest.raises(StateError) as caught:
        received(conn, Offer(MID, TOKEN, 1, 3))
    assert conn.state is State.ERROR and conn.failure is caught.value
    assert refused(LocalProtocolError, conn.receive_data, b"") == \
        f"receive_data() after the connection failed ({caught.value!r})"
    conn.receive_eof()
    assert conn.state is State.ERROR                          # EOF does not hide the failure
    assert refused(LocalProtocolError, conn.send, Ping(1)) == \
        "the connection failed; only one ERROR may still be sent"
    assert conn.send(Error("x", "why")) == encode_event(Error("x", "why"))
    assert refused(LocalProtocolError, conn.send, Error("x", "again")) == \
        "the connection failed; only one ERROR may still be sent"


def test_an_error_closes_and_what_follows_it_is_ignored() -> None:
    pair = Pair().greet()
    data = encode_event(Error("bye", "done")) + encode_event(Ping(7))
    assert pair.sender.receive_data(data) == [Error("bye", "done")]
    assert pair.sender.state is State.CLOSED
    assert pair.sender.receive_data(encode_event(Ping(8))) == []
    assert refused(LocalProtocolError, pair.sender.send, Ping(1)) == \
        "we may not send this: PING after the connection closed [unexpected-message]"
    eof = Connection(Role.RECEIVER)
    eof.receive_eof()
    assert eof.state is State.CLOSED and eof.receive_data(b"junk") == []


def test_events_before_a_violation_in_the_same_bytes_are_not_returned() -> None:
    pair = Pair().greet()
    with pytest.raises(StateError):
        received(pair.receiver, Ping(1), Accept(MID, 0))
    assert pair.receiver.failure is not None


def test_send_parts_keeps_data_apart_from_its_header() -> None:
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 4, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    parts = pair.sender.send_parts(Data(MID, 0, b"abcd"))
    assert len(parts) == 2 and bytes(parts[1]) == b"abcd"
    assert pair.sender.send(End(MID)) == encode_event(End(MID))


# -- who may say what, when --------------------------------------------------------------------

def test_each_refusal_of_the_connection_table_is_worded() -> None:
    conn = Connection(Role.RECEIVER)
    assert refused(StateError, received, conn, Accept(MID, 0)) == "a sender never sends ACCEPT"
    assert refused(LocalProtocolError, Connection(Role.RECEIVER).send, Offer(MID, TOKEN, 1, 3)) \
        == "we may not send this: a receiver never sends OFFER [unexpected-message]"
    assert refused(StateError, received, Connection(Role.RECEIVER), Offer(MID, TOKEN, 1, 3)) \
        == "OFFER before the receiver's HELLO"
    waiting = Connection(Role.RECEIVER)
    waiting.send(Hello(NODE_B, "t"))
    assert refused(StateError, received, waiting, Ping(1)) == "PING before the sender's HELLO"
    pair = Pair().greet()
    assert refused(StateError, received, pair.sender, Hello(NODE_B, "t")) == \
        "HELLO is not allowed in state ready"


def test_pings_are_bounded_and_pongs_must_answer() -> None:
    pair = Pair().greet()
    for nonce in range(MAX_OUTSTANDING_PINGS):
        pair.say(pair.sender, Ping(nonce))
    assert refused(StateError, received, pair.receiver, Ping(99)) == \
        "more than 16 PINGs left unanswered"
    pair = Pair().greet()
    assert refused(StateError, received, pair.receiver, Pong(5)) == \
        "PONG 5 answers no outstanding PING"
    pair = Pair().greet()
    pair.say(pair.sender, Ping(5))
    assert refused(LocalProtocolError, pair.sender.send, Pong(5)) == \
        "we may not send this: PONG 5 answers no outstanding PING [unexpected-message]"
    assert pair.say(pair.receiver, Pong(5)) == [Pong(5)]
    assert refused(StateError, received, pair.sender, Pong(5)) == \
        "PONG 5 answers no outstanding PING"               # answered once only
    pair = Pair().greet()
    for nonce in range(MAX_OUTSTANDING_PINGS):
        pair.say(pair.receiver, Ping(nonce))
        pair.say(pair.sender, Pong(nonce))
    pair.say(pair.receiver, Ping(100))                      # answered ones do not count


# -- transfers ---------------------------------------------------------------------------------

def test_offers_are_bounded_and_unique() -> None:
    pair = Pair(max_in_flight=2).greet()
    pair.say(pair.sender, Offer(mid(1), TOKEN, 5, 3))
    assert pair.sender.offer_room == 1
    assert refused(DuplicateOffer, received, pair.receiver, Offer(mid(1), TOKEN, 5, 3)) == \
        f"transfer {mid(1)} is already in flight (offered)"
    pair = Pair(max_in_flight=2).greet()
    pair.say(pair.sender, Offer(mid(1), TOKEN, 5, 3), Offer(mid(2), TOKEN, 5, 3))
    assert pair.sender.offer_room == 0
    assert refused(TooManyOffers, received, pair.receiver, Offer(mid(3), TOKEN, 5, 3)) == \
        "OFFER beyond the 2 transfers allowed in flight"
    pair = Pair(max_in_flight=2).greet()
    pair.say(pair.sender, Offer(mid(1), TOKEN, 5, 3), Offer(mid(2), TOKEN, 5, 3))
    pair.say(pair.receiver, Have(mid(1), TOKEN))
    assert pair.sender.offer_room == 1 and set(pair.sender.transfers) == {mid(2)}
    pair.say(pair.sender, Offer(mid(3), TOKEN, 5, 3))


def test_frames_for_transfers_that_are_not_open() -> None:
    pair = Pair().greet()
    assert refused(UnknownTransfer, received, pair.sender, Accept(MID, 0)) == \
        f"ACCEPT for transfer {MID}, which was never offered"
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 5, 3))
    pair.say(pair.receiver, Have(MID, TOKEN))
    assert refused(UnknownTransfer, received, pair.sender, Receipt(MID, TOKEN)) == \
        f"RECEIPT for transfer {MID}, which already finished (done)"
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 5, 3))
    pair.say(pair.receiver, Reject(MID, "no", "no"))
    assert refused(UnknownTransfer, received, pair.receiver, Data(MID, 0, b"a")) == \
        f"DATA for transfer {MID}, which already finished (rejected)"


def test_the_finished_memory_is_bounded() -> None:
    pair = Pair().greet()
    for n in range(FINISHED_MEMORY + 1):
        pair.say(pair.sender, Offer(mid(n), TOKEN, 5, 3))
        pair.say(pair.receiver, Have(mid(n), TOKEN))
    assert refused(UnknownTransfer, received, Pair().greet().sender, Have(mid(0), TOKEN)) == \
        f"HAVE for transfer {mid(0)}, which was never offered"
    assert refused(UnknownTransfer, received, pair.sender, Have(mid(1), TOKEN)) == \
        f"HAVE for transfer {mid(1)}, which already finished (done)"
    assert refused(UnknownTransfer, received, pair.receiver, End(mid(0))) == \
        f"END for transfer {mid(0)}, which was never offered"    # forgotten: the oldest


def test_frames_in_flight_after_a_reject_are_dropped_until_end() -> None:
    pair = Pair(max_in_flight=2).greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 10, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.receiver.send(Reject(MID, "disk-full", "full"))      # crosses DATA on the wire
    assert received(pair.receiver, Data(MID, 0, b"abc"), Data(MID, 3, b"def"), End(MID)) == []
    assert refused(UnknownTransfer, received, pair.receiver, Data(MID, 6, b"g")) == \
        f"DATA for transfer {MID}, which already finished (rejected)"


def test_a_reject_before_accept_or_by_the_peer_leaves_nothing_to_drain() -> None:
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 10, 3))
    pair.receiver.send(Reject(MID, "no", "no"))                # never accepted: nothing in flight
    with pytest.raises(UnknownTransfer):
        received(pair.receiver, Data(MID, 0, b"abc"))
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 10, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.say(pair.receiver, Reject(MID, "no", "no"))           # the sender only hears it
    with pytest.raises(LocalProtocolError):
        pair.sender.send(Data(MID, 0, b"a"))


def test_the_drain_memory_holds_max_in_flight_and_a_new_offer_clears_it() -> None:
    pair = Pair(max_in_flight=1).greet()
    for n in (1, 2):
        pair.say(pair.sender, Offer(mid(n), TOKEN, 10, 3))
        pair.say(pair.receiver, Accept(mid(n), 0))
        pair.say(pair.receiver, Reject(mid(n), "no", "no"))   # DATA may still be in flight
    with pytest.raises(UnknownTransfer):                       # the older one was forgotten
        received(pair.receiver, Data(mid(1), 0, b"a"))
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 10, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.receiver.send(Reject(MID, "no", "no"))
    received(pair.receiver, Offer(MID, TOKEN, 10, 3))         # offered again: a new transfer
    with pytest.raises(StateError):
        received(pair.receiver, Data(MID, 0, b"a"))            # not accepted yet, not dropped


def test_transfer_guards_are_worded() -> None:
    t = Transfer(MID, TransferState.OFFERED, 10, 3)
    assert refused(StateError, advance_transfer, t, Data(MID, 0, b"a")) == \
        f"DATA for transfer {MID} before it was accepted"
    assert refused(StateError, advance_transfer, None, Accept(MID, 0)) == \
        f"ACCEPT for transfer {MID} that is not open"
    ended = Transfer(MID, TransferState.ENDED, 10, 3, 0, 10)
    assert refused(StateError, advance_transfer, ended, Accept(MID, 0)) == \
        f"ACCEPT for transfer {MID} in state ended"
    assert refused(StateError, advance_transfer, t, Accept(MID, 11)) == \
        f"ACCEPT offset 11 is beyond the ciphertext size 10 of transfer {MID}"
    assert advance_transfer(t, Accept(MID, 10)) == \
        Transfer(MID, TransferState.ACCEPTED, 10, 3, start=10, offset=10)
    accepted = advance_transfer(t, Accept(MID, 4))
    assert (accepted.start, accepted.offset) == (4, 4)
    assert refused(OutOfOrder, advance_transfer, accepted, Data(MID, 6, b"x")) == \
        f"DATA for transfer {MID} at offset 6; expected offset 4 (a gap of 2 bytes)"
    assert refused(OutOfOrder, advance_transfer, accepted, Data(MID, 1, b"x")) == \
        f"DATA for transfer {MID} at offset 1; expected offset 4 (an overlap of 3 bytes)"
    assert refused(DataBeyondSize, advance_transfer, accepted, Data(MID, 4, b"x" * 7)) == \
        f"DATA for transfer {MID} would reach byte 11, beyond its ciphertext size 10"
    full = advance_transfer(accepted, Data(MID, 4, b"x" * 6))
    assert (full.state, full.start, full.offset) == (TransferState.ACCEPTED, 4, 10)
    assert refused(PrematureEnd, advance_transfer, accepted, End(MID)) == \
        f"END for transfer {MID} at byte 4 of 10"
    assert advance_transfer(full, End(MID)).state is TransferState.ENDED
    opened = advance_transfer(None, Offer(MID2, TOKEN, 7, 2))
    assert opened == Transfer(MID2, TransferState.OFFERED, 7, 2, 0, 0)


def test_thirty_two_transfers_in_flight_by_default() -> None:
    assert Connection(Role.SENDER).offer_room == 32
    assert Connection(Role.RECEIVER).offer_room == 32


def test_frames_stay_small_between_the_two_hellos() -> None:
    receiver = Connection(Role.RECEIVER)
    receiver.send(Hello(NODE_B, "t"))
    big = encode_frame(FrameKind.OFFER, b"{" + b" " * HANDSHAKE_MAX_PAYLOAD)
    with pytest.raises(FrameTooLarge):
        receiver.receive_data(big)
    sender = Connection(Role.SENDER)
    received(sender, Hello(NODE_B, "t"))
    with pytest.raises(FrameTooLarge):
        sender.receive_data(encode_frame(FrameKind.ERROR, b" " * (HANDSHAKE_MAX_PAYLOAD + 1)))


def test_a_new_offer_of_a_drained_id_ends_the_drain() -> None:
    """Rejected while DATA was in flight, then offered again and answered HAVE: a late DATA
    for it is now an error, not a frame to drop."""
    pair = Pair().greet()
    pair.say(pair.sender, Offer(MID, TOKEN, 10, 3))
    pair.say(pair.receiver, Accept(MID, 0))
    pair.say(pair.receiver, Reject(MID, "no", "no"))
    received(pair.receiver, Offer(MID, TOKEN, 10, 3))
    pair.receiver.send(Have(MID, TOKEN))
    assert refused(UnknownTransfer, received, pair.receiver, Data(MID, 0, b"a")) == \
        f"DATA for transfer {MID}, which already finished (done)"


def test_finishing_again_makes_an_id_the_newest_remembered() -> None:
    pair = Pair().greet()

    def finish(n: int) -> None:
        pair.say(pair.sender, Offer(mid(n), TOKEN, 5, 3))
        pair.say(pair.receiver, Have(mid(n), TOKEN))

    finish(0)
    for n in range(1, FINISHED_MEMORY):
        finish(n)
    finish(0)                                      # again: now the newest, not the oldest
    finish(FINISHED_MEMORY)                        # one more: the oldest (1) is forgotten
    assert refused(UnknownTransfer, received, pair.sender, Have(mid(0), TOKEN)) == \
        f"HAVE for transfer {mid(0)}, which already finished (done)"
    assert refused(UnknownTransfer, received, pair.receiver, End(mid(1))) == \
        f"END for transfer {mid(1)}, which was never offered"
