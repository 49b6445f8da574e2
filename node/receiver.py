"""The receiving side of one connection: a thin Twisted adapter around ``protocol.Connection``.

It speaks first (HELLO) only once the TLS handshake has completed and the peer's pinned key
maps to a trusted node, because in TLS 1.3 the dialling side cannot otherwise know it was
accepted. Offers and ENDs are decided by ``Inbound`` (asynchronously, off the reactor thread
for disk and database work); DATA is appended to the transfer's partial file as it arrives.
A peer that goes silent longer than the idle timeout is disconnected (slow-loris).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from keys.errors import UnknownPeer
from node.failpoints import failpoint
from node.inbound import Inbound
from node.sender import CLOSE_GRACE, SOFTWARE
from node.tls import peer_node_id
from protocol.connection import Connection, Role, State
from protocol.envelope import EnvelopeHeader
from protocol.errors import ProtocolError
from protocol.events import Accept, Data, End, Error, Hello, Offer, Ping, Pong, Reject, clean_text

log = Logger(namespace="lienthong.receiver")


@dataclass
class IncomingFile:
    header: EnvelopeHeader
    path: Path
    handle: BinaryIO | None
    offset: int


@implementer(IHandshakeListener)
class ReceiverProtocol(Protocol, TimeoutMixin):
    def __init__(self, inbound: Inbound, connections: set[ReceiverProtocol]) -> None:
        self.inbound = inbound
        self.rt = inbound.rt
        self.connections = connections
        # TimeoutMixin would use the global reactor; ours is injected (and a Clock in tests).
        self.callLater = self.rt.reactor.callLater
        self.conn = Connection(Role.RECEIVER)
        self.peer: str | None = None
        self.incoming: dict[str, IncomingFile] = {}
        self._closed = False
        self._drop: Any = None

    def connectionMade(self) -> None:  # noqa: N802
        self.setTimeout(self.rt.config.delivery.connect_timeout)
        self.connections.add(self)

    def handshakeCompleted(self) -> None:  # noqa: N802
        try:
            self.peer = peer_node_id(self.transport, self.rt.directory.node_for_tls_pin)
        except UnknownPeer as exc:
            self.abort("unknown-peer", str(exc))
            return
        # The node ID the peer knows us by (a former one until it has our continuation).
        self._write(Hello(node_id=self.rt.identity_for_peer(self.peer), software=SOFTWARE))

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.peer is None:
            self.abort("no-handshake", "data before the TLS handshake completed")
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.rt.audit("protocol-error", peer=self.peer, code=exc.code, reason=str(exc))
            self.abort(exc.code, str(exc))
            return
        if events:
            # Only whole frames count as activity: a peer dribbling a byte at a time
            # (slow-loris) must not hold the connection open forever.
            self.resetTimeout()
        for event in events:
            if self._closed:
                return
            self._handle(event)

    def timeoutConnection(self) -> None:  # noqa: N802
        if self.peer is not None:
            self.rt.audit("timeout", peer=self.peer, idle=self.timeOut)
        self.abort("timeout", "no data within the time limit")

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self._closed = True
        self.setTimeout(None)
        if self._drop is not None and self._drop.active():
            self._drop.cancel()
        self.connections.discard(self)
        for mid, incoming in self.incoming.items():
            if incoming.handle is not None:
                incoming.handle.close()
            self.inbound.release(self.peer or "", mid)
        self.incoming.clear()

    # -- events ----------------------------------------------------------------------------

    def _handle(self, event: Any) -> None:
        if isinstance(event, Hello):
            if event.node_id != self.peer and not any(
                    key.kid == event.node_id for key in self.rt.directory.identities_of(self.peer)):
                # A peer that rotated its identity may still name its former node ID: the HELLO
                # is a label, the TLS pin authenticates; any other name is refused.
                self.rt.audit("security-refused", peer=self.peer, code="wrong-peer",
                              reason=f"HELLO claims {event.node_id}")
                self.abort("wrong-peer", "HELLO names another node than the TLS certificate")
                return
            self.setTimeout(self.rt.config.delivery.idle_timeout)
        elif isinstance(event, Offer):
            d = self.inbound.offer(self.peer, event)
            d.addCallback(self._answer_offer)
            d.addErrback(self._internal_error, event.message_id)
        elif isinstance(event, Data):
            self._data(event)
        elif isinstance(event, End):
            self._end(event.message_id)
        elif isinstance(event, Ping):
            self._write(Pong(event.nonce))
        elif isinstance(event, Error):
            log.info("{peer} closed: {code}: {reason}", peer=self.rt.peer_name(self.peer or ""),
                     code=event.code, reason=event.reason)
            self.transport.loseConnection()

    def _answer_offer(self, answer: Any) -> None:
        if self._closed:
            if isinstance(answer, tuple):
                self.inbound.release(self.peer or "", answer[0].message_id)
            return
        if isinstance(answer, tuple):
            accept, header, partial = answer
            try:
                handle = open(partial, "ab")  # noqa: SIM115 - closed at END or on loss
            except OSError as exc:
                self.inbound.release(self.peer or "", accept.message_id)
                self._write(Reject(message_id=accept.message_id, code="storage-unavailable",
                                   reason=clean_text(f"cannot open a partial file: {exc.strerror}")))
                return
            self.incoming[accept.message_id] = IncomingFile(header, partial, handle, accept.offset)
            self._write(accept)
        else:
            self._write(answer)

    def _data(self, event: Data) -> None:
        incoming = self.incoming.get(event.message_id)
        if incoming is None or incoming.handle is None:
            return  # rejected while the frame was in flight
        try:
            incoming.handle.write(event.data)
        except OSError as exc:
            self._storage_failure(event.message_id, incoming, exc)
            return
        incoming.offset += len(event.data)
        failpoint("receiver-mid-transfer")

    def _storage_failure(self, message_id: str, incoming: IncomingFile, exc: OSError) -> None:
        if incoming.handle is not None:
            try:
                incoming.handle.close()
            except OSError:
                pass
        incoming.handle = None
        self.incoming.pop(message_id, None)
        self.inbound.release(self.peer or "", message_id)
        reason = f"cannot store the document: {exc.strerror or exc}"
        self.rt.audit("storage-error", peer=self.peer, message_id=message_id, reason=reason)
        self._write(Reject(message_id=message_id, code="storage-unavailable",
                           reason=clean_text(reason)))

    def _end(self, message_id: str) -> None:
        incoming = self.incoming.get(message_id)
        if incoming is None or incoming.handle is None:
            return
        try:
            incoming.handle.close()
        except OSError as exc:
            self._storage_failure(message_id, incoming, exc)
            return
        incoming.handle = None
        d = self.inbound.finish(self.peer, incoming.header, incoming.path)
        d.addCallback(self._answer_end, message_id)
        d.addErrback(self._internal_error, message_id)

    def _answer_end(self, answer: Any, message_id: str) -> None:
        self.incoming.pop(message_id, None)
        self.inbound.release(self.peer or "", message_id)
        self._write(answer)

    def _internal_error(self, failure: Failure, message_id: str) -> None:
        log.failure("internal error handling {mid}", failure, mid=message_id)
        self.incoming.pop(message_id, None)
        self.inbound.release(self.peer or "", message_id)
        self._write(Reject(message_id=message_id, code="internal-error",
                           reason="the receiving node failed; it will be retried"))

    # -- output ----------------------------------------------------------------------------

    def _write(self, event: Any) -> None:
        if self._closed or self.conn.state in (State.CLOSED, State.ERROR):
            return
        try:
            data = self.conn.send(event)
        except ProtocolError as exc:
            log.warn("not sending {event}: {error}", event=type(event).__name__, error=str(exc))
            return
        self.transport.write(data)

    def abort(self, code: str, reason: str) -> None:
        if self._closed:
            return
        try:
            self.transport.write(self.conn.send(Error(code=code, reason=clean_text(reason))))
        except ProtocolError:
            pass
        self._closed = True
        self.transport.loseConnection()
        # A silent or hostile peer may never answer our TLS close_notify; without this its
        # socket, and any transfer it holds ("busy" to the sender's next connection), stay.
        self._drop = self.callLater(CLOSE_GRACE, self.transport.abortConnection)


class ReceiverFactory(Factory):
    def __init__(self, inbound: Inbound) -> None:
        self.inbound = inbound
        self.connections: set[ReceiverProtocol] = set()

    def buildProtocol(self, addr: Any) -> ReceiverProtocol:  # noqa: N802
        return ReceiverProtocol(self.inbound, self.connections)

    def drop_peer(self, node_id: str) -> None:
        """Close every connection from ``node_id`` (on revocation)."""
        for proto in list(self.connections):
            if proto.peer == node_id:
                proto.abort("revoked", "this node has revoked your key")
