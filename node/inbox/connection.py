"""The receiving side of one connection: a thin Twisted adapter around ``protocol.Connection``.

It speaks first (HELLO) only once the TLS handshake has completed and the peer's pinned key
maps to a trusted node, because in TLS 1.3 the dialling side cannot otherwise know it was
accepted. Offers and ENDs are decided by ``Offers`` (asynchronously, off the reactor thread
for disk and database work). DATA is handed to the transfer's ``IncomingStream`` on the worker
pool, which decrypts it into the staging file (also the basis of a resume); one
transfer's frames (and then its END) run strictly in order, one after another, while different
transfers proceed in parallel. A transfer's large frames that arrive while its worker is busy
join the worker's batch (node/inbox/backlog.py): one hop writes them all. When more than
``QUEUE_LIMIT`` bytes wait for the disk or the cipher, the connection stops reading
(back-pressure), so memory stays bounded however fast the sender is. A peer that goes silent
longer than the idle timeout is disconnected (slow-loris).
"""
from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from lienthong.keys.errors import UnknownPeer
from lienthong.node.core.background import in_background
from lienthong.node.inbox.backlog import Backlog, FrameBatch
from lienthong.node.inbox.offers import Offers
from lienthong.node.inbox.stream import IncomingStream
from lienthong.node.transport.bulk import bulk_tls
from lienthong.node.transport.session import CLOSE_GRACE, SOFTWARE, frames_at_once
from lienthong.node.transport.tls import negotiated_protocol, peer_node_id
from lienthong.protocol.connection import Connection, Role, State
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import EnvelopeError, ProtocolError
from lienthong.protocol.events import Data, End, Error, Hello, Offer, Ping, Pong, Reject, clean_text

log = Logger(namespace="lienthong.receiver")


#: Bytes of DATA received but not yet written and decrypted, per connection, above which the
#: connection stops reading until the workers catch up (4 frames of 1 MiB; reading resumes at
#: half). 16 held 12-14 MiB more at the receiver's peak; 2 held 2 MiB less but cost 0.6-1.0 s
#: more receiver CPU per GiB (docs/benchmarks.md History 46). 8 was faster on a quiet machine
#: but brought the receiver's peak to 97-100 MiB, against a target below 100, even with the
#: plaintext hashed on the worker; resuming at 1 MiB instead of half was no cheaper (History
#: 50 and 51).
QUEUE_LIMIT = 4 * 1024 * 1024
#: Bytes taken from the socket per reactor turn. Twisted's default (64 KiB) made each 1 MiB DATA
#: frame cost 16 turns through epoll, the TLS layer and the frame decoder on the reactor thread;
#: since a read's TLS records reach the decoder in one call (node/transport/bulk.py), 256 KiB
#: reads cost no more CPU than 1 MiB ones and hold about 4 MiB less at the peak.
SOCKET_READ = 256 * 1024
#: Where the bytes a refused or closing connection still receives are decrypted and dropped.
_DROPPED = bytearray(16 * 1024)
#: DATA frames up to this size (a small document's whole ciphertext) are written in batches
#: with the frames of other transfers that arrive meanwhile: one worker hop for a burst
#: (``Offers.small_writes``) instead of one per document. Larger frames keep a hop each, so
#: transfers of large documents still decrypt in parallel.
SMALL_FRAME = 64 * 1024


@dataclass
class IncomingTransfer:
    """One accepted transfer. ``tail`` is the last piece of work queued for it: each new one is
    chained behind it, so the stream is never used by two threads at once."""

    header: EnvelopeHeader
    stream: IncomingStream
    tail: Deferred = field(default_factory=lambda: succeed(None))
    failed: bool = False   # refused or lost: queued work is skipped
    ended: bool = False    # END seen: the finish owns the stream now
    #: A small DATA frame held until the other events of its socket read are handled
    #: (``ReceiverProtocol._hold``): if its END is among them, it is written in the END's hop.
    held: bytes | memoryview | None = None
    #: The large frames' batch still taking frames, if it is the last work queued (anything
    #: chained after it closes it here, so a frame never overtakes earlier work).
    batch: FrameBatch | None = None


@typing.runtime_checkable
class ReceivingTransport(typing.Protocol):
    """What the receiver uses of its transport (the TLS layer, or a test's StringTransport):
    writing and closing, and pausing the reading under it for back-pressure."""

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...  # noqa: N802

    def abortConnection(self) -> None: ...  # noqa: N802

    def pauseProducing(self) -> None: ...  # noqa: N802

    def resumeProducing(self) -> None: ...  # noqa: N802


def receiving_transport(transport: object) -> ReceivingTransport:
    """``transport`` as the receiver uses it; TypeError if it cannot pause or abort."""
    if not isinstance(transport, ReceivingTransport):
        raise TypeError(f"a receiving connection needs a transport that can write, pause "
                        f"and abort; {type(transport).__name__} cannot")
    return transport


@implementer(IHandshakeListener)
class ReceiverProtocol(Protocol, TimeoutMixin):
    #: The connection's transport, checked by ``connectionMade`` (nothing runs before it).
    _tls: ReceivingTransport

    def __init__(self, offers: Offers, connections: set[ReceiverProtocol],
                 on_refused: Callable[[str], None] = lambda reason: None) -> None:
        self.offers = offers
        self.rt = offers.rt
        self.connections = connections
        self.on_refused = on_refused
        self.handshake_done = False
        self.conn = Connection(Role.RECEIVER)
        self.peer: str | None = None
        self.incoming: dict[str, IncomingTransfer] = {}
        self._closed = False
        self._drop: IDelayedCall | None = None
        self._backlog = Backlog(QUEUE_LIMIT)
        #: Transfers holding a small DATA frame during the current socket read's events.
        self._holding: list[IncomingTransfer] = []
        #: Bytes were read into the connection since its events were last handled.
        self._read_pending = False

    def callLater(self, period: float, fn: Callable[[], object]) -> IDelayedCall:  # noqa: N802
        # TimeoutMixin would use the global reactor; ours is injected (and a Clock in tests).
        return self.rt.reactor.callLater(period, fn)

    def connectionMade(self) -> None:  # noqa: N802
        # Received records reach dataReceived a TCP read at a time, not 16 KiB at a time.
        bulk_tls(self.transport)
        self._tls = receiving_transport(self.transport)
        self.setTimeout(self.rt.config.delivery.connect_timeout)
        self.connections.add(self)
        # Our transport is the TLS layer; the TCP connection under it does the reading.
        tcp = getattr(self.transport, "transport", None)
        buffer_size = getattr(tcp, "bufferSize", None)
        if tcp is not None and isinstance(buffer_size, int):
            tcp.bufferSize = max(buffer_size, SOCKET_READ)
        frames_at_once(self.transport)

    def handshakeCompleted(self) -> None:  # noqa: N802
        self.handshake_done = True
        try:
            self.peer = peer_node_id(self.transport, self.rt.directory.node_for_tls_pin)
        except UnknownPeer as exc:
            self.abort("unknown-peer", str(exc))
            return
        protocol = negotiated_protocol(self.transport)
        if protocol is None:   # the verify callback refuses this; never trust it alone
            self.abort("no-protocol", "no lienthong protocol was agreed (ALPN)")
            return
        # The HELLOs name the protocol ALPN agreed on (protocol/connection.py); which one is
        # remembered for sealing, and audited when it changes.
        self.conn.set_protocols((protocol,))
        self.rt.note_peer_protocol(self.peer, protocol)
        # The node ID the peer knows us by (a former one until it has our continuation).
        self._write(Hello(node_id=self.rt.identity_for_peer(self.peer), software=SOFTWARE,
                          protocol=protocol))
        # It reached us, so it is up: the status screen's "last seen" is not only our dials.
        in_background(self.rt.db(self.rt.store.record_seen, self.peer, self.rt.now_text()),
                      "record that a peer connected", log)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.pieces_received((data,))

    def read_buffer(self) -> memoryview:
        """Where the TLS transport decrypts the next bytes (node/transport/bulk.py
        ``ReadsInto``): the buffer of the frame being read, so a DATA frame is neither copied
        out of a connection buffer nor joined from its reads. Once the connection is refused
        or closing, a buffer whose bytes are dropped."""
        if self._closed:
            return memoryview(_DROPPED)
        return self.conn.receive_buffer()

    def bytes_read(self, count: int) -> None:
        if self._closed:
            return
        self._read_pending = True
        try:
            self.conn.received_into(count)
        except ProtocolError as exc:
            self._refuse(exc)

    def read_done(self) -> None:
        """The socket read's bytes are all in: its events are handled together, as
        ``pieces_received`` handles one read's."""
        if self._read_pending:
            self._read_pending = False
            self.pieces_received(())

    def pieces_received(self, pieces: Sequence[bytes]) -> None:
        """The bytes of one socket read, in the pieces the TLS transport made of them, or
        none when they were read into the connection (``read_buffer``): decoded without
        joining."""
        peer = self.peer
        if peer is None:
            self.abort("no-handshake", "data before the TLS handshake completed")
            return
        try:
            events = self.conn.receive_pieces(pieces)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        if events:
            # Only whole frames count as activity: a peer dribbling a byte at a time
            # (slow-loris) must not hold the connection open forever.
            self.resetTimeout()
        try:
            # The OFFERs of one read are looked up together, after its last event.
            with self.offers.offers_of_one_read():
                for event in events:
                    if self._closed:
                        break
                    self._handle(peer, event)
        finally:
            self._write_held()   # a held frame never outlives its read

    def _refuse(self, exc: ProtocolError) -> None:
        if self.peer is not None:
            self.rt.audit("protocol-error", peer=self.peer, code=exc.code, reason=str(exc))
        self.abort(exc.code, str(exc))

    def timeoutConnection(self) -> None:  # noqa: N802
        if self.peer is not None:
            self.rt.audit("timeout", peer=self.peer, idle=self.timeOut)
        self.abort("timeout", "no data within the time limit")

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        if not self.handshake_done and isinstance(reason.value, SSL.Error):
            refused = handshake_refusal(reason.value)
            if refused is not None:
                self.on_refused(refused)
        self._closed = True
        self.setTimeout(None)
        if self._drop is not None and self._drop.active():
            self._drop.cancel()
        self.connections.discard(self)
        for mid, incoming in list(self.incoming.items()):
            if not incoming.ended:   # a transfer being finished releases itself when done
                self._stop(mid, incoming, IncomingStream.close)
        self.incoming.clear()

    # -- events ----------------------------------------------------------------------------

    def _handle(self, peer: str, event: Any) -> None:
        """One event from ``peer`` (the node ID its TLS certificate proved)."""
        if isinstance(event, Hello):
            if event.node_id != peer and not any(
                    key.kid == event.node_id for key in self.rt.directory.identities_of(peer)):
                # A peer that rotated its identity may still name its former node ID: the HELLO
                # is a label, the TLS pin authenticates; any other name is refused.
                self.rt.audit("security-refused", peer=peer, code="wrong-peer",
                              reason=f"HELLO claims {event.node_id}")
                self.abort("wrong-peer", "HELLO names another node than the TLS certificate")
                return
            self.setTimeout(self.rt.config.delivery.idle_timeout)
        elif isinstance(event, Offer):
            d = self.offers.offer(peer, event)
            d.addCallback(self._answer_offer)
            d.addErrback(self._internal_error, event.message_id)
        elif isinstance(event, Data):
            self._data(event)
        elif isinstance(event, End):
            self._end(event.message_id)
        elif isinstance(event, Ping):
            self._write(Pong(event.nonce))
        elif isinstance(event, Error):
            log.info("{peer} closed: {code}: {reason}", peer=self.rt.peer_name(peer),
                     code=event.code, reason=event.reason)
            self._tls.loseConnection()

    def _answer_offer(self, answer: Any) -> None:
        if isinstance(answer, tuple):
            accept, header, stream, open_staging = answer
            incoming = IncomingTransfer(header, stream)
            if self._closed:
                self._stop(accept.message_id, incoming, IncomingStream.close)
                return
            self.incoming[accept.message_id] = incoming
            self._write(accept)
            if open_staging is not None:
                # Accepted before its staging file is opened (node/inbox/staging_opens.py
                # ``_accept_fresh``): its DATA and END, which cannot have come yet, wait
                # behind the opening.
                incoming.tail = open_staging().addErrback(self._open_failed,
                                                          accept.message_id, incoming)
            return
        self._write(answer)

    def _open_failed(self, failure: Failure, message_id: str,
                     incoming: IncomingTransfer) -> None:
        """The staging file of an accepted transfer could not be opened (nothing was left of
        it): refuse the document now; the work queued behind the opening is skipped."""
        incoming.failed = True
        if self.incoming.get(message_id) is incoming:
            del self.incoming[message_id]
        peer = self.peer or ""
        self.offers.release(peer, message_id)
        refusal = self.offers.opening_refused(peer, message_id, failure)
        if refusal is None:
            log.failure("internal error opening {mid}", failure, mid=message_id)
            refusal = Reject(message_id=message_id, code="internal-error",
                             reason="the receiving node failed; it will be retried")
        self._write(refusal)

    def _enqueue(self, incoming: IncomingTransfer, work: Any, *args: Any,
                 door: Callable[..., Deferred] | None = None) -> Deferred:
        """Run ``work(*args)`` through ``door`` (the worker pool unless told) after everything
        queued before for this transfer; skipped once the transfer has failed. Returns the
        shared chain (callers add their own callbacks)."""
        through = door or self.rt.io
        incoming.batch = None   # later large frames go behind this work, not into the batch

        def step(_: object) -> Deferred | None:
            return None if incoming.failed else through(work, *args)
        return incoming.tail.addCallback(step)

    def _data(self, event: Data) -> None:
        incoming = self.incoming.get(event.message_id)
        if incoming is None or incoming.failed:
            return  # rejected while the frame was in flight
        size = len(event.data)
        if self._backlog.add(size) and not self._closed:
            self._tls.pauseProducing()
        if incoming.held is not None:   # a frame held before this one goes first
            self._write_small(incoming)
        if size > SMALL_FRAME:
            self._large_data(event.message_id, incoming, event.data)
            return
        self._hold(incoming, event.data)

    def _large_data(self, message_id: str, incoming: IncomingTransfer,
                    frame: bytes | memoryview) -> None:
        """A frame above ``SMALL_FRAME``: into the batch the transfer's worker is writing, or
        else the first of a new batch, one worker hop queued behind the transfer's earlier
        work. Different transfers' batches still run in parallel."""
        batch = incoming.batch
        if batch is not None and batch.add(frame):
            return
        batch = FrameBatch(frame)
        self._enqueue(incoming, self._write_batch, incoming, batch).addBoth(
            self._batch_done, message_id, incoming, batch)
        incoming.batch = batch   # after _enqueue, which closes the earlier one

    def _write_batch(self, incoming: IncomingTransfer, batch: FrameBatch) -> None:
        """Worker thread: write the batch's frames until none is waiting. The reactor hears
        of it only when reading may resume (and when the hop ends), not once per frame."""
        while not incoming.failed:
            frame = batch.take()
            if frame is None:
                return
            size = len(frame)
            try:
                incoming.stream.write(frame)
            finally:
                del frame   # counted as written only once nothing holds it any more
                if self._backlog.done(size):
                    self.rt.reactor.callFromThread(self._resume)

    def _batch_done(self, result: object, message_id: str, incoming: IncomingTransfer,
                    batch: FrameBatch) -> None:
        """Reactor: a batch's hop ended (or was skipped): release what it left unwritten."""
        left = batch.close()
        if left:
            self._written(None, left)
        if isinstance(result, Failure):
            self._write_failed(result, message_id, incoming, 0)

    def _hold(self, incoming: IncomingTransfer, data: bytes | memoryview) -> None:
        """Keep a small DATA frame until this socket read's events are handled
        (``pieces_received``): a small document's whole ciphertext is one frame with its END
        right behind it, usually in the same read, and then ``_end`` writes it in the
        finish's worker hop (one hop instead of two). Otherwise it is written then, in the
        same reactor turn, so holding it delays nothing."""
        incoming.held = data
        self._holding.append(incoming)

    def _write_held(self) -> None:
        """After a socket read's events: write the small frames no END took."""
        holding, self._holding = self._holding, []
        for incoming in holding:
            if incoming.held is not None:
                self._write_small(incoming)

    def _write_small(self, incoming: IncomingTransfer) -> None:
        """Queue a held small frame's write behind its transfer's earlier work; frames of
        different transfers share worker hops (``Offers.small_writes``)."""
        data, incoming.held = incoming.held, None
        if data is None:
            return
        size = len(data)
        message_id = incoming.header.message_id
        if incoming.failed or self._closed:
            self._written(None, size)   # dropped with its transfer (closed, or refused)
            return
        self._enqueue(incoming, incoming.stream.write, data,
                      door=self.offers.small_writes.call).addCallbacks(
            self._written, self._write_failed, callbackArgs=(size,),
            errbackArgs=(message_id, incoming, size))

    def _written(self, _: object, size: int) -> None:
        if self._backlog.done(size):
            self._resume()

    def _resume(self) -> None:
        # Not if reading was stopped again since a worker asked for this (it will ask again).
        if not self._closed and not self._backlog.paused:
            self._tls.resumeProducing()

    def _write_failed(self, failure: Failure, message_id: str, incoming: IncomingTransfer,
                      size: int) -> None:
        self._written(None, size)
        if incoming.failed:
            return
        exc = failure.value
        if isinstance(exc, EnvelopeError):  # a chunk failed to authenticate: worthless
            self._stop(message_id, incoming, IncomingStream.discard)
            self._write(self.offers.refuse(self.peer or "", message_id, exc.code, str(exc)))
        elif isinstance(exc, OSError):
            self._stop(message_id, incoming, IncomingStream.close)
            reason = f"cannot store the document: {exc.strerror or exc}"
            self.rt.audit("storage-error", peer=self.peer, message_id=message_id, reason=reason)
            self._write(Reject(message_id=message_id, code="storage-unavailable",
                               reason=clean_text(reason)))
        else:
            log.failure("internal error receiving {mid}", failure, mid=message_id)
            self._stop(message_id, incoming, IncomingStream.close)
            self._write(Reject(message_id=message_id, code="internal-error",
                               reason="the receiving node failed; it will be retried"))

    def _stop(self, message_id: str, incoming: IncomingTransfer, how: Any) -> None:
        """Give up a transfer: skip its queued work, then close (or discard) its stream and
        only then release it, so a new offer never shares the files with a running write."""
        incoming.failed = True
        if self.incoming.get(message_id) is incoming:
            del self.incoming[message_id]
        peer = self.peer or ""

        def close(_: object) -> Deferred:
            return self.rt.io(how, incoming.stream)

        def release(result: object) -> None:
            self.offers.release(peer, message_id)
            if isinstance(result, Failure):
                log.failure("could not close the transfer {mid}", result, mid=message_id)

        incoming.tail.addCallback(close).addBoth(release)

    def _end(self, message_id: str) -> None:
        incoming = self.incoming.get(message_id)
        if incoming is None or incoming.failed or incoming.ended:
            return
        incoming.ended = True
        incoming.batch = None   # END goes behind every frame
        peer = self.peer or ""
        # The last DATA frame, if still held (``_hold``), is written in the finish's hop.
        last, incoming.held = incoming.held, None
        size = len(last) if last is not None else 0

        def finish(_: object) -> Deferred | None:
            if incoming.failed:
                self._written(None, size)
                return None
            d = self.offers.finish(peer, incoming.header, incoming.stream, last)
            d.addBoth(self._finished_last, size)
            d.addCallback(self._answer_end, message_id)
            d.addErrback(self._internal_error, message_id)
            return d

        incoming.tail.addCallback(finish)

    def _finished_last(self, result: object, size: int) -> object:
        """The held last frame is written (or given up): it no longer counts as queued."""
        if size:
            self._written(None, size)
        return result

    def _answer_end(self, answer: Any, message_id: str) -> None:
        self.incoming.pop(message_id, None)
        self.offers.release(self.peer or "", message_id)
        self._write(answer)

    def _internal_error(self, failure: Failure, message_id: str) -> None:
        log.failure("internal error handling {mid}", failure, mid=message_id)
        self.incoming.pop(message_id, None)
        self.offers.release(self.peer or "", message_id)
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
        self._tls.write(data)

    def abort(self, code: str, reason: str) -> None:
        if self._closed:
            return
        try:
            self._tls.write(self.conn.send(Error(code=code, reason=clean_text(reason))))
        except ProtocolError:
            pass
        self._closed = True
        self._tls.loseConnection()
        # A silent or hostile peer may never answer our TLS close_notify; without this its
        # socket, and any transfer it holds ("busy" to the sender's next connection), stay.
        self._drop = self.callLater(CLOSE_GRACE, self._tls.abortConnection)


def handshake_refusal(error: SSL.Error) -> str | None:
    """Why a TLS handshake with us failed, in OpenSSL's words, or None when the verify
    callback already reported it (an unknown key, no common ALPN: node/transport/tls.py)."""
    reasons = [str(part[2]) for part in (error.args[0] if error.args and
                                         isinstance(error.args[0], list) else [])
               if isinstance(part, tuple) and len(part) == 3]
    text = "; ".join(reasons) or str(error) or "TLS handshake failed"
    if "certificate verify failed" in text:
        return None
    return f"TLS handshake refused: {text}"[:500]


class ReceiverFactory(Factory):
    def __init__(self, offers: Offers,
                 on_refused: Callable[[str], None] = lambda reason: None) -> None:
        """``on_refused(reason)``: a handshake failed before a key could be named."""
        self.offers = offers
        self.on_refused = on_refused
        self.connections: set[ReceiverProtocol] = set()

    def buildProtocol(self, addr: Any) -> ReceiverProtocol:  # noqa: N802
        return ReceiverProtocol(self.offers, self.connections, self.on_refused)

    def drop_peer(self, node_id: str) -> None:
        """Close every connection from ``node_id`` (on revocation)."""
        for proto in list(self.connections):
            if proto.peer == node_id:
                proto.abort("revoked", "this node has revoked your key")
