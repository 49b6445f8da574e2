"""The connection state machine: bytes in, events out; events in, bytes out (as h11).

Theory of operation
-------------------
One TLS connection carries documents in ONE direction. The node that dialled is the SENDER:
it offers documents. The node that listened is the RECEIVER: it accepts them, stores them and
returns receipts. A pair of offices that both have mail open two connections.

Who speaks first. TLS 1.3 lets a client finish its handshake before the server has checked
the client's certificate, so a dialling node cannot tell from TLS alone that it was accepted.
The RECEIVER therefore speaks first, with HELLO, and only after it has authorised the peer.
The SENDER waits for that HELLO, answers with its own, and only then may OFFER::

    AWAIT_RECEIVER_HELLO --receiver: HELLO--> AWAIT_SENDER_HELLO --sender: HELLO--> READY

Until READY the decoder accepts frames of at most ``HANDSHAKE_MAX_PAYLOAD`` bytes, so a peer
that has not said who it is cannot make us buffer more than that.

Transfers. In READY the sender offers documents, each a *transfer* named by its message ID,
with its own small state machine (``TRANSFER_TRANSITIONS``)::

    OFFER -> OFFERED --ACCEPT(offset)--> ACCEPTED --DATA...--> ACCEPTED --END--> ENDED
    OFFERED --HAVE--> DONE      ENDED --RECEIPT--> DONE
    OFFERED | ACCEPTED | ENDED --REJECT--> REJECTED

Up to ``max_in_flight`` transfers are open at once and their DATA frames interleave, so an
urgent document never waits behind a large one. DATA must continue exactly where the previous
frame of that transfer ended (starting at the accepted offset), never pass the size the
OFFER announced, and END comes only once every byte has been sent. DONE and REJECTED
transfers are forgotten at once, so memory stays bounded by ``max_in_flight``.

The one race. The receiver may REJECT an ACCEPTED transfer (disk full, a bad chunk) while
DATA and END for it are still on the wire. The receiver remembers the last ``max_in_flight``
such rejections and silently drops DATA/END for them; any other frame for a transfer that is
not open is an error. (A sender has seen every REJECT older than the one it is acting on, so
only the newest ``max_in_flight`` rejections can still have frames in flight.) Only the
receiver sends REJECT; a sender that cannot go on with a transfer sends ERROR and closes, and
the next connection resumes it.

PING/PONG may go either way in READY; a PONG must answer a PING. ERROR may go either way at
any time and ends the conversation (CLOSED); later bytes from the peer are ignored.

Rule 1 (from h11): every transition lives in the two tables below; the methods only look
them up and check the guards the tables cannot express (offsets, sizes, counts).
Rule 2: the tables are written in terms of who speaks, not of which role we play, so the same
tables check what we send and what we receive.

Failure. Any violation by the peer raises a ProtocolError subclass whose ``code`` names it;
the connection moves to ERROR, after which only ``send(Error(...))`` is allowed, so the
node can tell the peer why before closing. Any attempt by us to send what the tables forbid
raises LocalProtocolError and changes nothing.

Versions. HELLO's ``protocol`` names the protocol the two sides speak: 1, or 2 (protocol 1
whose envelopes may be v3: docs/protocol.md). The node agrees on it by ALPN during the TLS
handshake (``lienthong/2`` preferred, ``lienthong/1`` still accepted, so a node that speaks
only 1 keeps exchanging during an upgrade); the receiver's HELLO states it, the sender's HELLO
must state the same one, and :attr:`Connection.protocol` tells the node which it was. Frames
are the same in both (their version byte stays 1).

Pure: no clock, no I/O. Deadlines (hello, idle, ping) are the node's job.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType
from typing import TypeVar

from lienthong.protocol.errors import (
    DataBeyondSize,
    DuplicateOffer,
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
    TRANSFER_EVENTS,
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
    decode_event,
    encode_event_parts,
)
from lienthong.protocol.frames import MAX_PAYLOAD, FrameDecoder

#: Largest frame payload accepted before both HELLOs (an ERROR with a long reason fits).
HANDSHAKE_MAX_PAYLOAD = 16 * 1024
#: Protocol versions a HELLO may name (see the module docstring): 2 carries envelope v3.
PROTOCOLS = (1, 2)
#: The protocol from which envelopes may be v3.
ENVELOPE_V3_PROTOCOL = 2
#: Unanswered PINGs allowed in each direction.
MAX_OUTSTANDING_PINGS = 16
#: Finished message IDs remembered only to explain a late frame precisely.
FINISHED_MEMORY = 256

#: What a bounded memory of message IDs (``Connection._remember``) keeps for each.
_Value = TypeVar("_Value")


class Role(Enum):
    SENDER = "sender"
    RECEIVER = "receiver"


class State(Enum):
    AWAIT_RECEIVER_HELLO = "await-receiver-hello"
    AWAIT_SENDER_HELLO = "await-sender-hello"
    READY = "ready"
    CLOSED = "closed"
    ERROR = "error"


class TransferState(Enum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    ENDED = "ended"
    DONE = "done"
    REJECTED = "rejected"


S, R = Role.SENDER, Role.RECEIVER
_LIVE = (State.AWAIT_RECEIVER_HELLO, State.AWAIT_SENDER_HELLO, State.READY)

#: (who speaks, connection state, event type) -> next connection state.
CONNECTION_TRANSITIONS: Mapping[tuple[Role, State, type], State] = MappingProxyType({
    (R, State.AWAIT_RECEIVER_HELLO, Hello): State.AWAIT_SENDER_HELLO,
    (S, State.AWAIT_SENDER_HELLO, Hello): State.READY,
    (S, State.READY, Offer): State.READY,
    (S, State.READY, Data): State.READY,
    (S, State.READY, End): State.READY,
    (R, State.READY, Accept): State.READY,
    (R, State.READY, Have): State.READY,
    (R, State.READY, Reject): State.READY,
    (R, State.READY, Receipt): State.READY,
    **{(who, State.READY, kind): State.READY for who in Role for kind in (Ping, Pong)},
    **{(who, state, Error): State.CLOSED for who in Role for state in _LIVE},
})

_FINISHED = (TransferState.DONE, TransferState.REJECTED)

#: (transfer state or None if not open, event type) -> next transfer state. Who may say each
#: event is already settled by CONNECTION_TRANSITIONS.
TRANSFER_TRANSITIONS: Mapping[tuple[TransferState | None, type], TransferState] = \
    MappingProxyType({
        (None, Offer): TransferState.OFFERED,
        (TransferState.OFFERED, Accept): TransferState.ACCEPTED,
        (TransferState.OFFERED, Have): TransferState.DONE,
        (TransferState.OFFERED, Reject): TransferState.REJECTED,
        (TransferState.ACCEPTED, Data): TransferState.ACCEPTED,
        (TransferState.ACCEPTED, End): TransferState.ENDED,
        (TransferState.ACCEPTED, Reject): TransferState.REJECTED,
        (TransferState.ENDED, Receipt): TransferState.DONE,
        (TransferState.ENDED, Reject): TransferState.REJECTED,
    })

_WHY_NOT: Mapping[tuple[TransferState | None, type], str] = {
    (TransferState.OFFERED, Data): "before it was accepted",
    (TransferState.OFFERED, End): "before it was accepted",
    (TransferState.OFFERED, Receipt): "before it was accepted",
    (TransferState.ACCEPTED, Receipt): "before its END",
    (TransferState.ACCEPTED, Accept): "which was already accepted",
    (TransferState.ACCEPTED, Have): "which was already accepted",
    (TransferState.ENDED, Data): "after its END",
    (TransferState.ENDED, End): "after its END",
}


@dataclass(frozen=True, slots=True)
class Transfer:
    """What the connection knows of one open transfer (a read-only snapshot)."""

    message_id: str
    state: TransferState
    ciphertext_size: int
    priority: int
    #: Offset the receiver accepted from (0 until ACCEPT).
    start: int = 0
    #: Next ciphertext byte expected: ``start`` plus the DATA seen so far.
    offset: int = 0


def advance_transfer(current: Transfer | None, event: Event) -> Transfer:
    """Apply one transfer event to ``current``; pure, raises StateError if not allowed."""
    state = current.state if current is not None else None
    new_state = TRANSFER_TRANSITIONS.get((state, type(event)))
    name = event.KIND.name
    if new_state is None:
        why = _WHY_NOT.get((state, type(event)),
                           f"in state {state.value}" if state else "that is not open")
        raise StateError(f"{name} for transfer {event.message_id} {why}")  # type: ignore[union-attr]
    if current is None:  # only an OFFER opens a transfer
        return Transfer(event.message_id, new_state, event.ciphertext_size,  # type: ignore[union-attr]
                        event.priority)  # type: ignore[union-attr]
    if isinstance(event, Accept):
        if event.offset > current.ciphertext_size:
            raise StateError(f"ACCEPT offset {event.offset} is beyond the ciphertext size "
                             f"{current.ciphertext_size} of transfer {current.message_id}")
        return replace(current, state=new_state, start=event.offset, offset=event.offset)
    if isinstance(event, Data):
        if event.offset != current.offset:
            gap = event.offset - current.offset
            what = f"a gap of {gap}" if gap > 0 else f"an overlap of {-gap}"
            raise OutOfOrder(f"DATA for transfer {current.message_id} at offset {event.offset}"
                             f"; expected offset {current.offset} ({what} bytes)")
        end = event.offset + len(event.data)
        if end > current.ciphertext_size:
            raise DataBeyondSize(f"DATA for transfer {current.message_id} would reach byte "
                                 f"{end}, beyond its ciphertext size "
                                 f"{current.ciphertext_size}")
        return replace(current, offset=end)
    if isinstance(event, End) and current.offset != current.ciphertext_size:
        raise PrematureEnd(f"END for transfer {current.message_id} at byte {current.offset} "
                           f"of {current.ciphertext_size}")
    return replace(current, state=new_state)


class Connection:
    """One side of one lienthong connection. See the module docstring for the rules."""

    def __init__(self, role: Role, max_in_flight: int = 32,
                 protocols: tuple[int, ...] = PROTOCOLS) -> None:
        """``protocols``: the versions this side accepts in the peer's HELLO (the node passes
        the one ALPN agreed on)."""
        if not isinstance(role, Role):
            raise TypeError(f"role must be a Role, not {role!r}")
        if not protocols or not set(protocols) <= set(PROTOCOLS):
            raise ValueError(f"protocols must be among {PROTOCOLS}")
        self._protocols = tuple(protocols)
        self._protocol: int | None = None
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError("max_in_flight must be a positive integer")
        self._role = role
        self._peer_role = Role.RECEIVER if role is Role.SENDER else Role.SENDER
        self._max_in_flight = max_in_flight
        self._state = State.AWAIT_RECEIVER_HELLO
        self._decoder = FrameDecoder(max_payload=HANDSHAKE_MAX_PAYLOAD)
        self._transfers: dict[str, Transfer] = {}
        self._draining: OrderedDict[str, None] = OrderedDict()
        self._finished: OrderedDict[str, TransferState] = OrderedDict()
        self._pings: dict[Role, list[int]] = {Role.SENDER: [], Role.RECEIVER: []}
        self._peer_hello: Hello | None = None
        self._failure: ProtocolError | None = None
        self._error_sent = False

    # -- read-only views --------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def state(self) -> State:
        return self._state

    @property
    def transfers(self) -> Mapping[str, Transfer]:
        """Open transfers by message ID (a live, read-only view of frozen snapshots)."""
        return MappingProxyType(self._transfers)

    @property
    def offer_room(self) -> int:
        """How many more OFFERs may be sent now (``max_in_flight`` less the open transfers):
        the sender asks before offering instead of meeting ``TooManyOffers``."""
        return self._max_in_flight - len(self._transfers)

    @property
    def protocol(self) -> int | None:
        """The protocol version the receiver's HELLO named (None before it)."""
        return self._protocol

    def set_protocols(self, protocols: tuple[int, ...]) -> None:
        """Narrow the versions accepted before any HELLO (the node, once ALPN agreed)."""
        if self._state is not State.AWAIT_RECEIVER_HELLO or not protocols or \
                not set(protocols) <= set(PROTOCOLS):
            raise LocalProtocolError("the protocol is fixed before the first HELLO")
        self._protocols = tuple(protocols)

    @property
    def peer_hello(self) -> Hello | None:
        """The peer's HELLO once received: the node checks its node_id against TLS."""
        return self._peer_hello

    @property
    def failure(self) -> ProtocolError | None:
        """The error that moved the connection to ERROR, if any (its ``code`` goes in ERROR)."""
        return self._failure

    # -- the API ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Decode and check bytes from the peer; return the events it sent, in order.

        Raises a ProtocolError subclass on any violation (events decoded earlier in the same
        call are then discarded: the peer is not to be acted on any further).
        """
        return self.receive_pieces((data,))

    def receive_pieces(self, pieces: Iterable[bytes]) -> list[Event]:
        """:meth:`receive_data` for bytes that arrived as several pieces, in order (the TLS
        records of one socket read): the same events as feeding each in turn, without joining
        them (a frame's payload is still copied once, when it is complete)."""
        if self._state is State.ERROR:
            raise LocalProtocolError(f"receive_data() after the connection failed "
                                     f"({self._failure!r})")
        if self._state is State.CLOSED:
            return []
        events: list[Event] = []
        decoder = self._decoder
        try:
            for piece in pieces:
                if self._closed():   # _apply closed it: the rest is not read
                    break
                decoder.feed(piece)
                self._drain(events)
            self._drain(events)   # frames read into the decoder (receive_buffer)
        except ProtocolError as exc:
            self._fail(exc)
            raise
        return events

    def _drain(self, events: list[Event]) -> None:
        decoder = self._decoder
        while not self._closed():
            frame = decoder.next_frame()
            if frame is None:
                break
            event = decode_event(frame)
            if self._apply(event, self._peer_role):
                events.append(event)

    def _fail(self, exc: ProtocolError) -> None:
        self._state = State.ERROR
        self._failure = exc

    def receive_buffer(self) -> memoryview:
        """Where the caller writes the next bytes it receives from the peer, instead of
        passing them to :meth:`receive_data` (a writable view, used before the next call here
        and never kept: protocol/frames.py ``FrameDecoder.read_buffer``). Then
        :meth:`received_into` says how many; once a read's bytes are all in,
        ``receive_pieces(())`` returns their events. A DATA event's ciphertext is then a view
        of the buffer its frame was read into, made for it alone: no copy of it is made."""
        if self._state is State.ERROR:
            raise LocalProtocolError(f"receive_buffer() after the connection failed "
                                     f"({self._failure!r})")
        return self._decoder.read_buffer()

    def received_into(self, count: int) -> None:
        """``count`` bytes were written at the start of the last :meth:`receive_buffer`.
        Headers are checked at once (a ProtocolError, as from :meth:`receive_data`); the
        events wait for ``receive_pieces(())``."""
        try:
            self._decoder.bytes_read(count)
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def _closed(self) -> bool:
        return self._state is State.CLOSED

    def receive_eof(self) -> None:
        """The peer closed its side. Open transfers stay listed in ``transfers``."""
        if self._state is not State.ERROR:
            self._state = State.CLOSED

    def send(self, event: Event) -> bytes:
        """Return the bytes that put ``event`` on the wire, if we may send it now."""
        parts = self.send_parts(event)
        return parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[return-value]

    def send_parts(self, event: Event) -> tuple[bytes | memoryview, ...]:
        """:meth:`send`, as pieces to write one after the other (``writeSequence``): a DATA
        frame's ciphertext is not copied into one buffer with its header."""
        data = encode_event_parts(event)
        if self._state is State.ERROR:
            if isinstance(event, Error) and not self._error_sent:
                self._error_sent = True
                return data
            raise LocalProtocolError("the connection failed; only one ERROR may still be sent")
        try:
            self._apply(event, self._role)
        except LocalProtocolError:
            raise
        except ProtocolError as exc:
            raise LocalProtocolError(f"we may not send this: {exc} [{exc.code}]") from exc
        if isinstance(event, Error):
            self._error_sent = True
        return data

    # -- the machine ------------------------------------------------------------------------

    def _apply(self, event: Event, speaker: Role) -> bool:
        """Check ``event`` said by ``speaker`` and commit it; False if it is to be dropped.

        Everything is checked before anything changes, so a refused ``send`` leaves the
        connection as it was.
        """
        next_state = CONNECTION_TRANSITIONS.get((speaker, self._state, type(event)))
        if next_state is None:
            raise StateError(self._refusal(event, speaker))
        deliver = True
        if isinstance(event, Hello):
            if self._protocol is None and event.protocol not in self._protocols:
                raise UnsupportedVersion(f"HELLO names protocol {event.protocol}; this "
                                         f"connection speaks {self._protocols}")
            if self._protocol is not None and event.protocol != self._protocol:
                raise UnsupportedVersion(f"the sender's HELLO names protocol {event.protocol}; "
                                         f"the receiver's named {self._protocol}")
            self._protocol = event.protocol
            if speaker is self._peer_role:
                self._peer_hello = event
        elif isinstance(event, (Ping, Pong)):
            self._apply_ping(event, speaker)
        elif isinstance(event, TRANSFER_EVENTS):
            deliver = self._apply_transfer(event, speaker)
        self._state = next_state
        if next_state is State.READY:
            self._decoder.max_payload = MAX_PAYLOAD
        return deliver

    def _apply_ping(self, event: Ping | Pong, speaker: Role) -> None:
        if isinstance(event, Ping):
            owed = self._pings[speaker]
            if len(owed) >= MAX_OUTSTANDING_PINGS:
                raise StateError(f"more than {MAX_OUTSTANDING_PINGS} PINGs left unanswered")
            owed.append(event.nonce)
            return
        asked = self._pings[Role.SENDER if speaker is Role.RECEIVER else Role.RECEIVER]
        if event.nonce not in asked:
            raise StateError(f"PONG {event.nonce} answers no outstanding PING")
        asked.remove(event.nonce)

    def _apply_transfer(self, event: Event, speaker: Role) -> bool:
        message_id: str = event.message_id  # type: ignore[union-attr]
        current = self._transfers.get(message_id)
        if isinstance(event, Offer):
            if current is not None:
                raise DuplicateOffer(f"transfer {message_id} is already in flight "
                                     f"({current.state.value})")
            if len(self._transfers) >= self._max_in_flight:
                raise TooManyOffers(f"OFFER beyond the {self._max_in_flight} transfers "
                                    "allowed in flight")
        elif current is None:
            if isinstance(event, (Data, End)) and message_id in self._draining:
                if isinstance(event, End):
                    del self._draining[message_id]
                return False  # still on the wire when we rejected it: drop it
            if message_id in self._finished:
                raise UnknownTransfer(f"{event.KIND.name} for transfer {message_id}, which "
                                      f"already finished ({self._finished[message_id].value})")
            raise UnknownTransfer(f"{event.KIND.name} for transfer {message_id}, which was "
                                  "never offered")
        new = advance_transfer(current, event)
        # Commit.
        if isinstance(event, Offer):
            self._draining.pop(message_id, None)
        if new.state in _FINISHED:
            del self._transfers[message_id]
            self._remember(self._finished, message_id, new.state, FINISHED_MEMORY)
            if (isinstance(event, Reject) and speaker is self._role
                    and current is not None and current.state is TransferState.ACCEPTED):
                self._remember(self._draining, message_id, None, self._max_in_flight)
        else:
            self._transfers[message_id] = new
        return True

    @staticmethod
    def _remember(memory: OrderedDict[str, _Value], key: str, value: _Value, limit: int) -> None:
        memory.pop(key, None)
        memory[key] = value
        while len(memory) > limit:
            memory.popitem(last=False)

    def _refusal(self, event: Event, speaker: Role) -> str:
        name = event.KIND.name
        if not any(who is speaker and kind is type(event)
                   for who, _, kind in CONNECTION_TRANSITIONS):
            return f"a {speaker.value} never sends {name}"
        if self._state is State.AWAIT_RECEIVER_HELLO:
            return f"{name} before the receiver's HELLO"
        if self._state is State.AWAIT_SENDER_HELLO:
            return f"{name} before the sender's HELLO"
        if self._state is State.CLOSED:
            return f"{name} after the connection closed"
        return f"{name} is not allowed in state {self._state.value}"
