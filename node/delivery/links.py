"""One ``PeerLink`` per peer: dial when work waits, keep offers flowing, back off when it cannot.

States (explicit, see ``TRANSITIONS``)::

    IDLE --kick, due--> CONNECTING --receiver HELLO--> CONNECTED --idle/lost--> IDLE
    IDLE --kick, not due--> WAITING --timer--> CONNECTING
    CONNECTING --refused/failed/no hello--> WAITING     (failures += 1, delay grows)
    CONNECTED --lost with work left--> WAITING          (short delay)
    any --stop--> STOPPED

The retry schedule (failures, next attempt) lives in the store, so a restart resumes it rather
than hammering a peer that has been down for a day. Offers go out in priority order, up to
``max_parallel_transfers`` at once; an urgent document is offered even when that many are
already open, so it never waits behind a large publication. A document counts as delivered
only when a receipt has been verified against the peer's identity key and names exactly the
envelope we sent.

Offered before it is recorded: a small document sealed while the connection has nothing else
waiting is offered as soon as its dispatch unit is submitted (``offer_sealed``), and its DATA
waits for the commit (delivery/unrecorded.py says why that is safe).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from enum import Enum
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.config.schema import parse_address
from lienthong.keys.directory import PeerKey
from lienthong.keys.errors import KeysError
from lienthong.node.core.background import in_background
from lienthong.node.delivery.backoff import Backoff
from lienthong.node.delivery.connection import SenderProtocol
from lienthong.node.delivery.dial_check import plain_network_error
from lienthong.node.delivery.notes import TransferNotes
from lienthong.node.delivery.openings import EnvelopeOpenings
from lienthong.node.delivery.outcomes import DocumentOutcomes, Progress
from lienthong.node.delivery.receipts import ReceiptBatch
from lienthong.node.delivery.unrecorded import UnrecordedOffers
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.spool.kept_keys import KeptFileKeys
from lienthong.node.store.records import DispatchRow, QueuedDelivery
from lienthong.node.transport.tls import PinnedContextFactory
from lienthong.protocol.connection import ENVELOPE_V3_PROTOCOL
from lienthong.protocol.envelope import EnvelopeHeader, decode_header
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Priority

log = Logger(namespace="lienthong.links")

#: A document up to this size (ciphertext) is "small": it does not count against
#: ``max_parallel_transfers``; up to ``SMALL_WINDOW`` are offered at once, so the receiver works
#: in batches instead of idling between round trips (docs/benchmarks.md, History 6).
SMALL_DOCUMENT = 1 << 20
SMALL_WINDOW = 24



class LinkState(Enum):
    IDLE = "idle"
    WAITING = "waiting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STOPPED = "stopped"


TRANSITIONS: dict[tuple[LinkState, str], LinkState] = {
    (LinkState.IDLE, "dial"): LinkState.CONNECTING,
    (LinkState.IDLE, "wait"): LinkState.WAITING,
    (LinkState.WAITING, "dial"): LinkState.CONNECTING,
    (LinkState.WAITING, "wait"): LinkState.WAITING,
    (LinkState.CONNECTING, "ready"): LinkState.CONNECTED,
    (LinkState.CONNECTING, "wait"): LinkState.WAITING,
    (LinkState.CONNECTING, "idle"): LinkState.IDLE,
    (LinkState.CONNECTED, "idle"): LinkState.IDLE,
    (LinkState.CONNECTED, "wait"): LinkState.WAITING,
}


class _Factory(ClientFactory):
    def __init__(self, link: PeerLink) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> SenderProtocol:  # noqa: N802
        return SenderProtocol(self.link)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:  # noqa: N802
        self.link.connect_failed(reason)


class PeerLink(DocumentOutcomes):
    """``on_all_delivered(message_id, dispatch_row)`` runs once every recipient receipted."""

    def __init__(self, runtime: NodeRuntime, node_id: str, *, tls: PinnedContextFactory,
                 on_all_delivered: Callable[[str, DispatchRow | None], object],
                 on_delivery_failed: Callable[[str, str], object],
                 rng: Callable[[], float] = random.random,
                 kept_keys: KeptFileKeys | None = None) -> None:
        """``kept_keys``: the file keys the outbox kept from sealing (node/spool/kept_keys.py)."""
        self.rt = runtime
        self.node_id = node_id
        self.tls = tls
        self.state = LinkState.IDLE
        self.proto: SenderProtocol | None = None
        self.offered: dict[str, QueuedDelivery] = {}
        self.progress: dict[str, Progress] = {}
        self.last_error: str | None = None
        self._on_all_delivered = on_all_delivered
        self._on_delivery_failed = on_delivery_failed
        self._rng = rng
        self._timer: IDelayedCall | None = None
        self._filling = False
        self._refill = False
        self._address_index = 0
        self._verify_failures: dict[str, int] = {}
        self._held_back: set[str] = set()
        self._retry_reason: str | None = None
        self._checking_due = False
        #: The last look at the queue offered everything offerable (``_offer_recorded``).
        self._drained = False
        self._receipts = ReceiptBatch(runtime, node_id, self._receipts_recorded)
        self._openings = EnvelopeOpenings(runtime)
        self._kept_keys = kept_keys
        self._notes = TransferNotes(runtime)
        #: Offered before their dispatch was committed (``offer_sealed``).
        self._unrecorded = UnrecordedOffers()
        #: Decoded headers of the documents offered on this connection (decoded once).
        self._headers: dict[str, EnvelopeHeader] = {}
        #: v3 envelopes held back from a peer speaking protocol 1 (audited once each).
        self._waiting_for_v3: set[str] = set()
        cfg = runtime.config.delivery
        self.backoff = Backoff(initial=cfg.retry_initial, maximum=cfg.retry_max)

    # -- names the protocol uses -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.rt.peer_name(self.node_id)

    @property
    def local_node_id(self) -> str:
        """The node ID we give this peer: a former one until it has our continuation."""
        return self.rt.identity_for_peer(self.node_id)

    def peer_identities(self) -> tuple[PeerKey, ...]:
        return self.rt.directory.identities_of(self.node_id)

    def _not_yet(self, row: QueuedDelivery) -> bool:
        """True for a document signed by our new identity while this peer knows only a former
        one (identity/switch.py): it waits until the peer has receipted the continuation,
        which is offered first (it is urgent and was sealed before the switch)."""
        if self.node_id not in self.rt.known_as:
            return False
        try:
            return decode_header(row.header_token).sender == self.rt.node_id
        except ProtocolError:
            return False

    def _too_new(self, row: QueuedDelivery) -> bool:
        """True for a v3 envelope while the connection speaks protocol 1 (the peer moved back
        to a version that cannot read it after it was sealed): it waits, audited once, until
        the peer speaks protocol 2 again (node/runtime/peer_protocols.py)."""
        if self.proto is None or self.proto.protocol >= ENVELOPE_V3_PROTOCOL:
            return False
        try:
            version = decode_header(row.header_token).version
        except ProtocolError:
            return False
        if version < 3:
            return False
        if row.message_id not in self._waiting_for_v3:
            self._waiting_for_v3.add(row.message_id)
            self.rt.audit("delivery-waiting", peer=self.node_id, message_id=row.message_id,
                          code="peer-protocol-too-old", envelope=version,
                          protocol=self.proto.protocol)
            log.warn("{mid} waits until {peer} speaks protocol 2 again (it was sealed as "
                     "envelope v3)", mid=row.message_id, peer=self.name)
        return True

    @property
    def clock(self) -> Any:
        return self.rt.reactor

    @property
    def idle_timeout(self) -> float:
        return self.rt.config.delivery.idle_timeout

    def pin_lookup(self, pin: str) -> str | None:
        return self.rt.directory.node_for_tls_pin(pin)

    # -- state -----------------------------------------------------------------------------

    def _go(self, action: str) -> None:
        if self.state is LinkState.STOPPED:
            return
        new = TRANSITIONS.get((self.state, action))
        if new is None:
            raise RuntimeError(f"link {self.name}: no transition from {self.state} on {action}")
        self.state = new

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def kick(self, recorded: QueuedDelivery | None = None) -> None:
        """Work may be waiting for this peer; ``recorded``: a delivery just recorded, which a
        connection with nothing else waiting offers at once, without looking the queue up
        again (one database round trip less on an idle pair's path, docs/benchmarks.md)."""
        if self.state is LinkState.IDLE:
            if not self._checking_due:
                self._dial_when_due()
        elif self.state is LinkState.CONNECTED:
            if recorded is not None and (recorded.message_id in self.offered
                                         or self._offer_recorded(recorded)):
                return  # offered when it was sealed (``offer_sealed``), or now
            self._drained = False
            self._fill()

    def offer_sealed(self, row: QueuedDelivery, when_recorded: Callable[[], Deferred]) -> None:
        """``row``'s dispatch is sealed and its commit submitted, not done: a small document is
        offered now if ``kick`` would offer it at once once recorded (``_offer_recorded``);
        its DATA waits for ``when_recorded()`` (delivery/unrecorded.py)."""
        if self.state is not LinkState.CONNECTED or row.ciphertext_size > SMALL_DOCUMENT:
            return
        if self._offer_recorded(row):
            self._unrecorded.hold(row.message_id, when_recorded(), self.node_id,
                                  self._not_recorded)

    def _not_recorded(self, message_id: str, failure: Failure) -> None:
        """A document offered before its commit was not recorded for this peer: close the
        connection, so the receiver forgets the offer; the document stays in the spool."""
        if self.proto is not None and message_id in self.offered:
            self.proto.local_failure(f"{message_id} was offered but its dispatch could not be "
                                     f"recorded: {failure.getErrorMessage()}")

    def _offer_recorded(self, row: QueuedDelivery) -> bool:
        """Offer a just-recorded delivery if the last look at the queue left nothing else
        waiting to be offered (``_drained``), so priority order is what ``_fill`` would keep;
        False if ``_fill`` must look (it will find the row there)."""
        if not self._drained or self._filling or self.proto is None:
            return False
        if (row.message_id in self.offered or row.message_id in self._held_back
                or self._not_yet(row) or self._too_new(row)):
            return False
        if self._window_full(row) or self.proto.offer_room() <= 0:
            return False
        self._offer(self.proto, row)
        return True

    def _window_full(self, row: QueuedDelivery) -> bool:
        large = sum(1 for r in self.offered.values() if r.ciphertext_size > SMALL_DOCUMENT)
        full = (large >= self.rt.config.delivery.max_parallel_transfers
                if row.ciphertext_size > SMALL_DOCUMENT else len(self.offered) >= SMALL_WINDOW)
        return full and row.priority >= Priority.NORMAL

    def _offer(self, proto: SenderProtocol, row: QueuedDelivery) -> None:
        self.offered[row.message_id] = row
        proto.offer(row.message_id, row.header_token, row.ciphertext_size, row.priority)
        self.offering(row)

    @inlineCallbacks
    def _dial_when_due(self):
        # One look at a time: a thousand kicks while idle must not queue a thousand queries.
        self._checking_due = True
        try:
            depths = yield self.rt.db(self.rt.store.queue_depths)
        finally:
            self._checking_due = False
        depth = depths.get(self.node_id, 0)
        if depth == 0 or self.state is not LinkState.IDLE:
            return
        schedule = yield self.rt.db(self.rt.store.schedule_for, self.node_id)
        now = self.rt.now()
        due = self.backoff.clamp_due(schedule.next_attempt_at or 0.0, now)
        if self.state is not LinkState.IDLE:
            return
        if due <= now:
            self._dial()
        else:
            self._go("wait")
            self._timer = self.clock.callLater(due - now, self._dial)

    def _dial(self) -> None:
        self._cancel_timer()
        if self.state not in (LinkState.IDLE, LinkState.WAITING):
            return
        try:
            peer = self.rt.directory.peer_with_id(self.node_id)
        except KeysError:
            return
        if peer.state != "trusted" or not peer.addresses:
            return
        # The card's addresses in turn (an office run by an active/standby pair advertises
        # both hosts): stay on the one that answered, move on after a failure (``_failed``).
        address = peer.addresses[self._address_index % len(peer.addresses)]
        host, port = parse_address(address, where=f"peer {peer.name} address")
        self._go("dial")
        timeout = self.rt.config.delivery.connect_timeout
        self.rt.reactor.connectSSL(host, port, _Factory(self), self.tls, timeout=timeout)
        self._timer = self.clock.callLater(timeout, self._hello_timeout)

    def _hello_timeout(self) -> None:
        self._timer = None
        if self.state is LinkState.CONNECTING and self.proto is not None:
            self.proto.abort("hello-timeout", "no HELLO from the receiver in time")

    # -- connection events -----------------------------------------------------------------

    def connection_made(self, proto: SenderProtocol) -> None:
        self.proto = proto

    def connection_ready(self, proto: SenderProtocol) -> None:
        self._cancel_timer()
        self._go("ready")
        self.last_error = None
        self._held_back.clear()
        in_background(self.rt.db(self.rt.store.record_connected, self.node_id,
                                 self.rt.now_text()), "record the connection", log)
        log.info("connected to {peer}", peer=self.name)
        self._fill()

    def retry_later(self, reason: str) -> None:
        """The connection is about to close for a reason of ours: back off before redialling."""
        self._retry_reason = reason
        self.last_error = reason

    def connect_failed(self, reason: Failure) -> None:
        # Kept as last_error and shown on the status screen: plain words, not "111: ...".
        self._failed(plain_network_error(reason.getErrorMessage()))

    def connection_lost(self, proto: SenderProtocol, reason: Failure) -> None:
        if proto is not self.proto:
            return
        self.proto = None
        self._drained = False
        self._cancel_timer()
        self.offered.clear()
        self.progress.clear()
        self._headers.clear()
        self._openings.forget_all()
        if self.state is LinkState.STOPPED:
            return
        if self.state is LinkState.CONNECTING:
            self._failed(self.last_error or "the peer closed the connection during the "
                         "handshake (it may not know this node, or have revoked it)")
            return
        if self._retry_reason is not None or not reason.check(ConnectionDone):
            # A refusal we must not hammer, or a connection that broke: back off.
            why, self._retry_reason = self._retry_reason, None
            self._failed(why or self.last_error or reason.getErrorMessage())
            return
        self._go("idle")
        self.kick()

    def _failed(self, error: str) -> None:
        self._cancel_timer()
        if self.state is LinkState.STOPPED:
            return
        self.proto = None
        self.last_error = error
        self._address_index += 1
        self._go("wait")
        self._record_failure(error)

    @inlineCallbacks
    def _record_failure(self, error: str):
        schedule = yield self.rt.db(self.rt.store.schedule_for, self.node_id)
        failures = schedule.failures + 1
        delay = self.backoff.delay(failures, self._rng)
        now = self.rt.now()
        yield self.rt.db(self.rt.store.record_connect_failure, self.node_id, error, now + delay,
                         self.rt.now_text())
        log.info("cannot reach {peer} ({error}); retry {n} in {delay:.1f}s", peer=self.name,
                 error=error, n=failures, delay=delay)
        if self.state is LinkState.WAITING and self._timer is None:
            self._timer = self.clock.callLater(delay, self._dial)

    def remote_error(self, code: str, reason: str) -> None:
        self.last_error = f"{code}: {reason}"

    def protocol_violation(self, code: str, reason: str) -> None:
        self.last_error = f"{code}: {reason}"
        self.rt.audit("protocol-error", peer=self.node_id, code=code, reason=reason)

    # -- offers and transfers --------------------------------------------------------------

    @inlineCallbacks
    def _fill(self):
        if self._filling:
            self._refill = True
            return
        self._filling = True
        try:
            while True:
                self._refill = False
                if self.state is not LinkState.CONNECTED or self.proto is None:
                    return
                # The queue's head is mostly what is already offered (left out by the store):
                # ask for that many rows plus room for the free slots, not a whole window more.
                # If every row was offered and slots are still free, ask again.
                free = max(SMALL_WINDOW - len(self.offered), 1)
                rows = yield self.rt.db(self.rt.store.queued_deliveries, self.node_id,
                                        len(self.offered) + len(self._held_back) + free + 8,
                                        frozenset(self.offered) | self._held_back)
                stopped = offered_now = False
                for row in rows:
                    if (row.message_id in self.offered or row.message_id in self._held_back
                            or self._not_yet(row) or self._too_new(row)):
                        continue
                    if self._window_full(row):
                        stopped = True
                        break
                    if self.proto is None:
                        return
                    if self.proto.offer_room() <= 0:
                        # The protocol's own cap on transfers in flight binds urgent documents
                        # too: beyond it the OFFER is refused locally, and the row stayed
                        # "offered" but unsent until the idle timeout closed the connection.
                        # The next receipt frees a place and refills.
                        stopped = True
                        break
                    self._offer(self.proto, row)
                    offered_now = True
                if offered_now and not stopped and len(self.offered) < SMALL_WINDOW:
                    self._refill = True
                if not self._refill:
                    # A look that found nothing more to offer and stopped at no window: what
                    # is recorded next can be offered as soon as it is recorded.
                    self._drained = not offered_now and not stopped
                    break
            if not self.offered and self.proto is not None:
                self._arm_idle_timer()
        finally:
            self._filling = False

    def _arm_idle_timer(self) -> None:
        self._cancel_timer()
        self._timer = self.clock.callLater(self.rt.config.delivery.idle_timeout, self._idle)

    def _idle(self) -> None:
        self._timer = None
        if self.proto is not None and not self.offered:
            self.proto.close()

    def stop(self) -> None:
        self._cancel_timer()
        self.state = LinkState.STOPPED
        if self.proto is not None:
            self.proto.close()

    def cut(self, code: str, reason: str) -> None:
        """Stop at once (the peer was revoked): transfers in flight are aborted, not finished;
        a receipt already on its way is refused by the store (``PeerRevoked``)."""
        self._cancel_timer()
        self.state = LinkState.STOPPED
        if self.proto is not None:
            self.proto.abort(code, reason)
