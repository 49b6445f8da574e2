"""The sending side of one connection: a thin Twisted adapter around ``protocol.Connection``.

The protocol object decides nothing about *what* to send; its ``PeerLink`` does. It turns
bytes into events for the link, turns the link's offers into bytes, and streams accepted
transfers from their envelope sources (spool/sealing.py's EnvelopeSource, which re-creates the
ciphertext from the spooled plaintext) as a push producer: it writes DATA frames only while the
transport wants more, so memory stays bounded whatever the document size. A large transfer's
frames are read (re-encrypted) ahead on a worker thread (delivery/readahead.py), so the reactor
thread only frames and TLS-encrypts them; a small one is read inline (no thread hop). When several
transfers are open it always serves the most urgent first (lowest priority number), so a
flash document overtakes a publication already in transfer.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from lienthong.keys.directory import PeerKey
from lienthong.keys.errors import UnknownPeer
from lienthong.node.core.failpoints import failpoint
from lienthong.node.delivery.readahead import CiphertextSource, ReadAhead
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.transport.bulk import bulk_tls
from lienthong.node.transport.session import CLOSE_GRACE, SOFTWARE, frames_at_once
from lienthong.node.transport.tls import negotiated_protocol, peer_node_id
from lienthong.protocol.connection import Connection, Role, State
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import (
    Accept,
    Data,
    End,
    Error,
    Have,
    Hello,
    Offer,
    Ping,
    Pong,
    Receipt,
    Reject,
    clean_text,
)

log = Logger(namespace="lienthong.sender")

#: Bytes of envelope per DATA frame: the protocol's largest (protocol.frames.MAX_DATA), so a
#: GiB costs 1,024 trips through the frame encoder, TLS and the receiver's decoder, not 4,096.
DATA_FRAME = 1024 * 1024
#: Frames written per reactor turn before yielding, so reads (receipts) are not starved.
FRAMES_PER_TURN = 4
#: Transfers with more envelope bytes than this left to send are read ahead on a worker
#: (delivery/readahead.py); smaller ones are read inline, which costs less than a thread hop.
READ_AHEAD_ABOVE = 4 * DATA_FRAME


@dataclass
class OutgoingTransfer:
    message_id: str
    priority: int
    size: int
    offset: int
    source: CiphertextSource
    started_offset: int = 0
    sent_bytes: int = field(default=0)
    ahead: ReadAhead | None = None

    @property
    def complete(self) -> bool:
        return self.offset >= self.size

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()   # closes the source once no read is in flight
        else:
            self.source.close()


class LinkEvents(Protocol):
    """What a ``SenderProtocol`` reads from and reports to the link that dialled it
    (delivery/links.py's ``PeerLink``): who the peer is, the clocks and threads to use, and
    each event of the connection and of every document offered on it."""

    node_id: str

    @property
    def name(self) -> str: ...

    @property
    def local_node_id(self) -> str: ...

    @property
    def rt(self) -> NodeRuntime: ...

    @property
    def clock(self) -> Any: ...

    @property
    def idle_timeout(self) -> float: ...

    def pin_lookup(self, pin: str) -> str | None: ...

    def peer_identities(self) -> tuple[PeerKey, ...]: ...

    def connection_made(self, proto: SenderProtocol) -> None: ...

    def connection_ready(self, proto: SenderProtocol) -> None: ...

    def connection_lost(self, proto: SenderProtocol, reason: Failure) -> None: ...

    def retry_later(self, reason: str) -> None: ...

    def remote_error(self, code: str, reason: str) -> None: ...

    def protocol_violation(self, code: str, reason: str) -> None: ...

    def accepted(self, proto: SenderProtocol, message_id: str, offset: int) -> None: ...

    def transfer_progress(self, message_id: str, offset: int) -> None: ...

    def sent_all(self, message_id: str, sent_bytes: int) -> None: ...

    def receipt(self, proto: SenderProtocol, message_id: str, token: str, *,
                already: bool) -> None: ...

    def rejected(self, proto: SenderProtocol, message_id: str, code: str,
                 reason: str) -> Any: ...


class TLSTransport(Protocol):
    """What a ``SenderProtocol`` uses of its transport, the TLS transport ``connectSSL`` made
    (transport/bulk.py's ``BulkTLSTransport`` once upgraded). Twisted types
    ``Protocol.transport`` as a bare ``ITransport``, without the producer registration and the
    abort this one has, and with ``bytes`` writes where it takes any buffer (a DATA frame's
    ciphertext goes out as read, not copied into ``bytes``)."""

    def write(self, data: bytes | memoryview, /) -> None: ...

    def writeSequence(self, data: Iterable[bytes | memoryview], /) -> None: ...  # noqa: N802

    def loseConnection(self) -> None: ...  # noqa: N802

    def abortConnection(self) -> None: ...  # noqa: N802

    def registerProducer(self, producer: IPushProducer, streaming: bool, /) -> None: ...  # noqa: N802


@implementer(IPushProducer)
class SenderProtocol(TwistedProtocol, TimeoutMixin):
    """Times out when the receiver sends nothing *and* accepts nothing for ``idle_timeout``:
    a stalled or half-open connection is dropped and the next one resumes the transfer."""

    def __init__(self, link: LinkEvents) -> None:
        self.link = link
        self.conn = Connection(Role.SENDER)
        self.transfers: dict[str, OutgoingTransfer] = {}
        self.paused = False
        self.ready = False
        self._pump_scheduled = False
        self._closed = False
        self._drop: Any = None

    # -- Twisted side ----------------------------------------------------------------------

    @property
    def _tls(self) -> TLSTransport:
        """The connection's transport; only used once ``makeConnection`` has set it."""
        if self.transport is None:
            raise RuntimeError("the sender has no transport: the connection is not made yet")
        return cast(TLSTransport, self.transport)

    def connectionMade(self) -> None:  # noqa: N802
        bulk_tls(self.transport)
        frames_at_once(self.transport)
        self._tls.registerProducer(self, True)
        self.setTimeout(self.link.idle_timeout)
        self.link.connection_made(self)

    def timeoutConnection(self) -> None:  # noqa: N802
        self.link.remote_error("timeout", "the peer sent and accepted nothing in time")
        self.abort("timeout", "no progress within the time limit")

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.resetTimeout()
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.abort(exc.code, str(exc), peer_fault=True)
            return
        for event in events:
            if self._closed:
                return
            self._handle(event)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._closed = True
        self.setTimeout(None)
        if self._drop is not None and self._drop.active():
            self._drop.cancel()
        for transfer in self.transfers.values():
            transfer.close()
        self.transfers.clear()
        self.link.connection_lost(self, reason)

    # -- events from the receiver ----------------------------------------------------------

    def _handle(self, event: Any) -> None:
        if isinstance(event, Hello):
            self._hello(event)
        elif isinstance(event, Accept):
            self.link.accepted(self, event.message_id, event.offset)
        elif isinstance(event, Have):
            self.link.receipt(self, event.message_id, event.receipt, already=True)
        elif isinstance(event, Receipt):
            self.link.receipt(self, event.message_id, event.receipt, already=False)
        elif isinstance(event, Reject):
            self._drop_transfer(event.message_id)
            self.link.rejected(self, event.message_id, event.code, event.reason)
        elif isinstance(event, Ping):
            self._write(Pong(event.nonce))
        elif isinstance(event, Error):
            log.warn("{peer} closed the connection: {code}: {reason}", peer=self.link.name,
                     code=event.code, reason=event.reason)
            self.link.remote_error(event.code, event.reason)
            self._tls.loseConnection()

    def _hello(self, hello: Hello) -> None:
        try:
            authenticated = peer_node_id(self.transport, self.link.pin_lookup)
        except UnknownPeer as exc:
            self.abort("unknown-peer", str(exc))
            return
        # After an identity rotation the receiver may still give the node ID we knew it by
        # before (until it has our receipt for its continuation): any identity of the peer
        # the TLS pin authenticated is accepted as its name.
        names = {key.kid for key in self.link.peer_identities()} | {self.link.node_id}
        if authenticated != self.link.node_id or hello.node_id not in names:
            self.abort("wrong-peer", f"dialled {self.link.node_id} but reached {authenticated} "
                       f"(says {hello.node_id})")
            return
        # The receiver's HELLO names the protocol ALPN agreed on; ours names the same.
        if hello.protocol != negotiated_protocol(self.transport):
            self.abort("unsupported-version", f"the HELLO names protocol {hello.protocol}, "
                       "not the one the TLS handshake agreed on", peer_fault=True)
            return
        self.link.rt.note_peer_protocol(self.link.node_id, hello.protocol)
        self._write(Hello(node_id=self.link.local_node_id, software=SOFTWARE,
                          protocol=hello.protocol))
        self.ready = True
        self.link.connection_ready(self)

    # -- called by the link ----------------------------------------------------------------

    @property
    def protocol(self) -> int:
        """The protocol the HELLOs agreed on (1 before them): 2 carries envelope v3."""
        return self.conn.protocol or 1

    def offer_room(self) -> int:
        """OFFERs the protocol allows now (its cap on transfers in flight, urgent or not)."""
        return self.conn.offer_room

    def offer(self, message_id: str, header_token: str, ciphertext_size: int,
              priority: int) -> None:
        self._write(Offer(message_id=message_id, envelope=header_token,
                          ciphertext_size=ciphertext_size, priority=priority))

    def start_transfer(self, message_id: str, *, priority: int, size: int, offset: int,
                       source: CiphertextSource) -> None:
        transfer = OutgoingTransfer(message_id, priority, size, offset, source,
                                    started_offset=offset)
        # A source that will sign and keep a trailer fsyncs at its end: never on the reactor.
        if size - offset > READ_AHEAD_ABOVE or getattr(source, "signs_trailer", False):
            # The seek (re-encrypting up to ``offset``) runs on the worker too.
            transfer.ahead = ReadAhead(source, offset=offset, size=size, frame=DATA_FRAME,
                                       run_in_thread=self.link.rt.io,
                                       on_ready=self._schedule_pump)
            self.transfers[message_id] = transfer
            transfer.ahead.start()
            return
        try:
            source.seek(offset)  # re-encrypts up to ``offset`` (spool/sealing.py)
        except OSError as exc:
            source.close()
            self.local_failure(f"cannot read envelope {message_id}: {exc}")
            return
        self.transfers[message_id] = transfer
        self._schedule_pump()

    def local_failure(self, reason: str) -> None:
        """Our own spooled copy cannot be read: close, and let the link back off rather than
        redial at once (it would offer the same document and fail the same way)."""
        self.link.retry_later(reason)
        self.abort("local-read-error", reason)

    def in_flight(self) -> set[str]:
        return {mid for mid in self.conn.transfers}

    def abort(self, code: str, reason: str, *, peer_fault: bool = False) -> None:
        """Tell the peer why (when the state machine allows) and close."""
        if self._closed:
            return
        if peer_fault:
            self.link.protocol_violation(code, reason)
        try:
            self._tls.write(self.conn.send(Error(code=code, reason=clean_text(reason))))
        except ProtocolError:
            pass
        self._closed = True
        self._tls.loseConnection()
        # A stalled or half-open peer never completes the TLS close (loseConnection waits for
        # the write buffer, our registered producer and the peer's close_notify): drop it.
        self._drop = self.link.clock.callLater(CLOSE_GRACE, self._tls.abortConnection)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._tls.loseConnection()

    # -- streaming -------------------------------------------------------------------------

    def pauseProducing(self) -> None:  # noqa: N802
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        self.resetTimeout()
        self._schedule_pump()

    def stopProducing(self) -> None:  # noqa: N802
        self.paused = True

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and not self._closed:
            self._pump_scheduled = True
            self.link.clock.callLater(0, self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        frames = 0
        while not self.paused and not self._closed and self.transfers and frames < FRAMES_PER_TURN:
            # The most urgent transfer that has a frame ready (one read ahead may still be
            # on its worker: the next one in order goes meanwhile).
            transfer, chunk = None, None
            for candidate in sorted(self.transfers.values(),
                                    key=lambda t: (t.priority, t.offset)):
                if candidate.complete:
                    transfer = candidate
                    break
                try:
                    chunk = self._next_frame(candidate)
                except OSError as exc:
                    self.local_failure(f"cannot read envelope {candidate.message_id}: {exc}")
                    return
                if chunk is not None:
                    transfer = candidate
                    break
            if transfer is None:
                return   # every open transfer waits for its read-ahead (it will call back)
            if chunk is None:   # it was picked because it is complete
                self._finish_transfer(transfer)
                continue
            self._write(Data(message_id=transfer.message_id, offset=transfer.offset, data=chunk))
            transfer.offset += len(chunk)
            transfer.sent_bytes += len(chunk)
            failpoint("sender-mid-transfer")
            self.link.transfer_progress(transfer.message_id, transfer.offset)
            frames += 1
            if transfer.complete:
                self._finish_transfer(transfer)
        if self.transfers and not self.paused and not self._closed:
            self._schedule_pump()

    @staticmethod
    def _next_frame(transfer: OutgoingTransfer) -> bytes | None:
        """The transfer's next frame; None while its read-ahead has none ready yet."""
        if transfer.ahead is not None:
            if transfer.ahead.error is not None:
                raise transfer.ahead.error
            return transfer.ahead.take()
        chunk = transfer.source.read(min(DATA_FRAME, transfer.size - transfer.offset))
        if not chunk:
            raise OSError("the envelope is shorter than its header says")
        return chunk

    def _finish_transfer(self, transfer: OutgoingTransfer) -> None:
        transfer.close()
        del self.transfers[transfer.message_id]
        self._write(End(message_id=transfer.message_id))
        self.link.sent_all(transfer.message_id, transfer.sent_bytes)

    def _drop_transfer(self, message_id: str) -> None:
        transfer = self.transfers.pop(message_id, None)
        if transfer is not None:
            transfer.close()

    def _write(self, event: Any) -> None:
        if self._closed or self.conn.state in (State.CLOSED, State.ERROR):
            return
        parts = self.conn.send_parts(event)
        if len(parts) == 1:
            self._tls.write(parts[0])
        else:   # a DATA frame: header, then the ciphertext as read (transport/bulk.py: no join)
            self._tls.writeSequence(parts)
