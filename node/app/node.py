"""The running node: wires runtime, store, listener, links, watcher and outbox together.

``Node`` is constructed with everything it needs (reactor, config, keys, store, database
thread), so tests run it on a real reactor with temporary folders and SQLite files, or parts
of it on a ``task.Clock``; ``build_runtime`` makes that runtime with a real store, database
thread and worker pool. The process around it (passphrase, logging, signals, the reactor) is
app/process.py.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from lienthong.config.schema import NodeConfig, parse_address
from lienthong.keys.directory import Directory
from lienthong.keys.identity import NodeKeys
from lienthong.node.audit.heads import HeadSigner
from lienthong.node.audit.witnesses import HEAD_KIND, WITNESS_KIND, HeadWitnessing
from lienthong.node.control.received import ReceivedControl
from lienthong.node.control.requests import ControlRequests
from lienthong.node.coordination.reminders import ProgrammeReminders
from lienthong.node.core.ratelimit import RateLimit
from lienthong.node.delivery.links import PeerLink
from lienthong.node.identity.key_update_incoming import IncomingKeyUpdates
from lienthong.node.identity.key_update_outgoing import (
    OutgoingKeyUpdates,
    configured_passphrase,
)
from lienthong.node.identity.peer_tls_grace import PeerTLSGrace
from lienthong.node.identity.rotation import ANNOUNCEMENT_KIND
from lienthong.node.inbox.connection import ReceiverFactory
from lienthong.node.inbox.offers import Offers
from lienthong.node.language.text import Phrase
from lienthong.node.outbox.drop import make_target_folders
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.petitions.desk import REFUSAL_KIND, PetitionDesk
from lienthong.node.reconciliation.exchange import SUMMARY_KIND, Reconciler
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.peer_protocols import PeerProtocols, load_peer_protocols
from lienthong.node.spool.recovery import sweep_staged
from lienthong.node.status.api import StatusService
from lienthong.node.status.live import live_from_links
from lienthong.node.store.commits import GroupCommitThread
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import DispatchRow, NewDispatch, QueuedDelivery
from lienthong.node.transport.tls import PinnedContextFactory
from lienthong.node.watch.watcher import OutboxWatcher
from lienthong.node.web.remote import RemoteListener
from lienthong.node.web.site import WebPages, WebService

#: Refused TLS handshakes recorded per minute at most; the rest are counted
#: (node/core/ratelimit.py).
REFUSALS_PER_MINUTE = 20

log = Logger(namespace="lienthong.node")

DIRECTORY_POLL_SECONDS = 1.0
#: How long the "test the connection" button waits for a link to connect.
TEST_CONNECTION_SECONDS = 3.0


class Node:
    """One running node: its listener, a link per trusted peer, the outbox and its watcher,
    and the services beside them (key updates, statuses and recalls, status API, audit heads)."""

    def __init__(self, runtime: NodeRuntime, *, passphrase: bytes | None = None) -> None:
        """``passphrase``: the one typed at start, kept to reload keys after ``keys rotate``
        (identity/key_update_outgoing.py says why that is acceptable); None when an unattended
        source has it."""
        self.rt = runtime
        self.links: dict[str, PeerLink] = {}
        self.offers = Offers(runtime)
        self.receiver_factory = ReceiverFactory(self.offers, on_refused=self.handshake_refused)
        self.outbox = Outbox(runtime, on_dispatch=self._kick_links,
                             on_sealed=self._offer_sealed, on_released=self._released)
        self.tls = PinnedContextFactory(
            tls_key=runtime.keys.tls_key, certificate_der_bytes=runtime.keys.tls_cert_der,
            lookup=lambda pin: self.rt.directory.node_for_tls_pin(pin),
            on_refused=self.tls_refused, max_protocol=runtime.config.delivery.max_protocol)
        # Refused handshakes are recorded, but a scan must not flood the log and the audit.
        self._refusals = RateLimit(burst=REFUSALS_PER_MINUTE, window=60.0,
                                   now=runtime.monotonic)
        self.watcher: OutboxWatcher | None = None
        self.port: IListeningPort | None = None
        self._directory_poll: LoopingCall | None = None
        self.status_api: StatusService | None = None
        self.web: WebService | None = None
        self.remote_web: RemoteListener | None = None
        self.head_signer: HeadSigner | None = None
        self.running = False
        runtime.on_directory_change.append(self._directory_changed)
        self.outgoing_key_updates = OutgoingKeyUpdates(
            self, passphrase=configured_passphrase(runtime.config, remembered=passphrase))
        self.incoming_key_updates = IncomingKeyUpdates(runtime, self.receiver_factory)
        self.peer_tls_grace = PeerTLSGrace(runtime)
        self.control_requests = ControlRequests(runtime, self.outbox)
        # A recall received is answered with a status: carry that request out at once.
        self.received_control = ReceivedControl(
            runtime, answer=self.control_requests.poll,
            sidecars_written=self.offers.finishing.publisher.flush_sidecars)
        self.offers.control[ANNOUNCEMENT_KIND] = self.incoming_key_updates.receive
        self.offers.control["status"] = self.received_control.on_status
        self.offers.control["recall"] = self.received_control.on_recall
        review = runtime.config.review
        self.head_witnessing = HeadWitnessing(runtime, self.outbox,
                                              interval=review.witness_interval)
        self.reconciler = Reconciler(runtime, self.outbox, retry=review.reconcile_retry,
                                     monthly=review.monthly_reconciliation)
        self.offers.control[HEAD_KIND] = self.head_witnessing.on_head
        self.offers.control[WITNESS_KIND] = self.head_witnessing.on_witness
        self.offers.control[SUMMARY_KIND] = self.reconciler.on_summary
        self.programme_reminders = ProgrammeReminders(runtime, self.outbox)
        self.petition_desk = PetitionDesk(runtime, self.outbox)
        self.offers.control[REFUSAL_KIND] = self.petition_desk.on_refusal
        self.offers.on_petition_refused = self.petition_desk.refuse_offer

    @property
    def listening_port(self) -> int:
        """The TCP port the node listens on (the one the system chose, if configured as 0)."""
        if self.port is None:
            raise RuntimeError("the node is not listening: start() has not run")
        address = self.port.getHost()
        if not isinstance(address, IPv4Address | IPv6Address):
            raise RuntimeError(f"the node listens on {address!r}, not on a TCP port")
        return address.port

    @inlineCallbacks
    def start(self) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        rt.started_at = rt.now()
        rt.started_monotonic = rt.monotonic()
        yield rt.refresh_directory()
        known = yield rt.io(load_peer_protocols, rt.config.home / "state")
        rt.peer_protocols = PeerProtocols(known)
        yield self.outgoing_key_updates.resume()
        host, port = parse_address(rt.config.node.listen, where="node.listen")
        self.port = rt.reactor.listenSSL(port, self.receiver_factory, self.tls, interface=host)
        yield rt.audit("node-started", node_id=rt.node_id, listen=f"{host}:{self.listening_port}")
        yield self.offers.recover()
        yield self.outbox.recover()
        self.outgoing_key_updates.start()
        self.peer_tls_grace.start()
        # Staged metadata whose take never happened (after the outbox's recovery adopted the rest).
        yield rt.io(sweep_staged, rt.config.spool)
        yield self.received_control.recover()
        # Heads, witnesses and summaries receipted but not applied before a crash.
        yield self.head_witnessing.recover()
        yield self.reconciler.recover()
        self.control_requests.start()
        self._directory_poll = LoopingCall(self._poll_directory)
        self._directory_poll.clock = rt.reactor
        self._directory_poll.start(DIRECTORY_POLL_SECONDS, now=False)
        self.watcher = OutboxWatcher(
            rt.reactor, rt.config.outbox, self._file_ready,
            call_from_thread=rt.reactor.callFromThread, observer=rt.config.watch.observer,
            scan_interval=rt.config.watch.scan_interval,
            stable_seconds=rt.config.watch.stable_seconds)
        self.watcher.start()
        self.status_api = StatusService(self, pages=self._web_pages)
        self.status_api.start()
        if self.web is not None:
            self.remote_web = RemoteListener(self.web)
            self.remote_web.start()
        self.head_signer = HeadSigner(clock=rt.reactor, run_db=rt.db, store=rt.store,
                                      current_keys=lambda: rt.keys,
                                      now_text=rt.now_text)
        self.head_signer.start()
        self.head_witnessing.start()
        self.reconciler.start()
        self.programme_reminders.start()
        self.running = True
        for link in self.links.values():
            link.kick()
        log.info("node {name} ({node_id}) listening on {host}:{port}",
                 name=rt.config.node.name, node_id=rt.node_id, host=host,
                 port=self.listening_port)

    def live_status(self) -> dict[str, Any]:
        """What only the running daemon knows: link states and transfers in flight."""
        rt = self.rt
        return live_from_links(
            self.links, node_id=rt.node_id, now=rt.now(), started_at=rt.started_at,
            uptime=rt.monotonic() - rt.started_monotonic, monotonic=rt.monotonic(),
            status_listen=self.status_api.address if self.status_api is not None else None,
            receiving=self.offers.active)

    def _web_pages(self, status: StatusService) -> WebPages:
        self.web = WebService(status, tester=self)
        return self.web.pages(remote=False)

    def test_connection(self, peer_name: str) -> Deferred:
        """The peers page's button: dial the peer now, and say after a few seconds whether
        its link is connected (a fuller check comes with ``lienthong peers test``)."""
        peer = next((p for p in self.rt.directory.peers if p.name == peer_name), None)
        link = self.links.get(peer.node_id) if peer is not None else None
        if peer is None or link is None:
            return succeed(Phrase("{peer} is not a trusted office of this node.", peer=peer_name))
        link.kick()

        def report(_: object) -> Phrase:
            state = self.live_status()["peers"].get(peer.node_id, {})
            if state.get("connected"):
                return Phrase("{peer} answers: the connection works.", peer=peer_name)
            return Phrase("{peer} does not answer yet: {error}", peer=peer_name,
                        error=state.get("last_error") or state.get("link") or "-")
        return deferLater(self.rt.reactor, TEST_CONNECTION_SECONDS, lambda: None).addCallback(
            report)

    def _file_ready(self, path: Path, target: str) -> None:
        self.outbox.file_ready(path, target)

    def _released(self, path: Path) -> None:
        if self.watcher is not None:
            self.watcher.done(path)

    def _kick_links(self, dispatch: DispatchRow) -> None:
        """A dispatch is recorded: each recipient's link may offer it at once (it is handed
        the delivery as recorded, so an idle connection needs no look-up to offer it)."""
        for delivery in dispatch.deliveries:
            link = self.links.get(delivery.peer_node_id)
            if link is not None:
                link.kick(QueuedDelivery.recorded(dispatch, delivery.peer_node_id))

    def _offer_sealed(self, dispatch: NewDispatch,
                      when_recorded: Callable[[], Deferred]) -> None:
        """A dispatch is sealed and its commit under way: each recipient's link may offer it
        now and send it once it is recorded (node/delivery/unrecorded.py)."""
        now = self.rt.now_text()
        for node_id in dispatch.recipients:
            link = self.links.get(node_id)
            if link is not None:
                link.offer_sealed(QueuedDelivery.sealed(dispatch, node_id, now), when_recorded)

    def _poll_directory(self) -> Deferred:
        d = self.rt.refresh_directory()
        d.addErrback(lambda f: log.failure("cannot read the peer directory", f))
        return d

    def _directory_changed(self, directory: Directory) -> None:
        trusted = [peer.name for peer in directory.peers if peer.state == "trusted"]
        d = self.rt.io(make_target_folders, self.rt.config, trusted)
        d.addErrback(lambda f: log.failure("could not create the outbox folders", f))
        for peer in directory.peers:
            if peer.state == "trusted" and peer.node_id not in self.links:
                self.links[peer.node_id] = PeerLink(
                    self.rt, peer.node_id, tls=self.tls,
                    on_all_delivered=self.outbox.finish,
                    on_delivery_failed=self._delivery_failed,
                    kept_keys=self.outbox.kept_keys)
                if self.running:
                    self.links[peer.node_id].kick()
            elif peer.state == "revoked":
                link = self.links.pop(peer.node_id, None)
                if link is not None:
                    link.cut("revoked", "this node has revoked your key")
                self.receiver_factory.drop_peer(peer.node_id)
                self._park(peer.node_id, f"{peer.name} was revoked at {peer.revoked_at} "
                           f"({peer.reason or 'no reason given'}), so nothing more is sent to "
                           "it. If that office must still get this document, send it again "
                           "once it is enrolled again, or by another official channel.")
        known = {peer.node_id for peer in directory.peers}
        for node_id in list(self.links):
            if node_id not in known:
                self.links.pop(node_id).stop()
                self.receiver_factory.drop_peer(node_id)
                self._park(node_id, "the office was removed from the peer directory, so "
                           "nothing more is sent to it. If it must still get this document, "
                           "enrol it again (lienthong peers add) and drop the file into the "
                           "outbox again.")

    def _park(self, node_id: str, reason: str) -> None:
        d = self.outbox.park_peer(node_id, reason)
        d.addErrback(lambda f: log.failure("could not park the queue of {peer}", f,
                                           peer=node_id))

    def _delivery_failed(self, message_id: str, reason: str) -> None:
        self.outbox.delivery_failed(message_id, reason)

    def tls_refused(self, pin: str, reason: str, code: str = "tls-unknown-key") -> None:
        """A TLS peer was refused at the handshake by key (a key no trusted peer holds) or by
        ALPN: audited and logged, at most ``REFUSALS_PER_MINUTE`` a minute."""
        if not self._refusals.allow():
            return
        suppressed = self._refusals.take_suppressed()
        detail: dict[str, Any] = {"suppressed": suppressed} if suppressed else {}
        self.rt.audit("security-refused", code=code, pin=pin, reason=reason, **detail)
        log.warn("refused a TLS peer: {reason}{more}", reason=reason,
                 more=f" ({suppressed} more refused handshakes were not recorded)"
                 if suppressed else "")

    def handshake_refused(self, reason: str) -> None:
        """A TLS handshake failed before any key could be named (no certificate, TLS 1.2 only,
        no common ALPN protocol, not TLS at all): recorded like ``tls_refused``."""
        self.tls_refused("none", reason, "tls-handshake-refused")

    @inlineCallbacks
    def stop(self) -> Generator[Deferred[Any], Any, None]:
        """Stop taking work, close connections (partials stay for resume), flush the store.
        The status API and the head signer stop even if a step before them fails: their
        threads would keep the process alive after the reactor stopped."""
        try:
            yield self._stop_work()
        finally:
            if self.remote_web is not None:
                yield self.remote_web.stop()
            if self.status_api is not None:
                yield self.status_api.stop()
            if self.head_signer is not None:
                yield self.head_signer.stop()

    @inlineCallbacks
    def _stop_work(self) -> Generator[Deferred[Any], Any, None]:
        self.running = False
        self.reconciler.stop()
        self.programme_reminders.stop()
        self.head_witnessing.stop()
        if self.head_signer is not None and self.rt.config.review.witness_at_stop:
            # The head at shutdown goes to the peers (queued now, delivered after the next
            # start); the head signed below, after "node-stopped", follows on the next round.
            try:
                yield self.head_signer.sign_now()
                yield self.head_witnessing.send_head()
            except Exception:  # noqa: BLE001 - stopping must go on
                log.failure("could not send the audit head at shutdown")
        if self.watcher is not None:
            self.watcher.stop()
        if self._directory_poll is not None and self._directory_poll.running:
            self._directory_poll.stop()
        self.outgoing_key_updates.stop()
        self.peer_tls_grace.stop()
        self.control_requests.stop()
        for link in self.links.values():
            link.stop()
        for proto in list(self.receiver_factory.connections):
            if proto.transport is not None:  # None only once the connection is already lost
                proto.transport.loseConnection()
        listened = self.port is not None
        if self.port is not None:
            stopped = self.port.stopListening()  # a Deferred, or None if it stopped at once
            if stopped is not None:
                yield stopped
        # The sidecars written since the last flush are made durable and their rows dropped,
        # so the next start has none to write again (node/inbox/publication.py).
        yield self.offers.finishing.publisher.flush_sidecars()
        if listened:
            # Only a node that started (and audited node-started) records its stop: a start
            # that failed, e.g. on a busy port, leaves nothing in the audit log.
            yield self.rt.audit("node-stopped", node_id=self.rt.node_id)


#: Worker threads for blocking file and crypto work: most of it waits for fsync, and fsyncs that
#: wait together share one journal commit (docs/benchmarks.md, History 15).
IO_THREADS = 16


def build_runtime(reactor: Any, config: NodeConfig, node_keys: NodeKeys, *,
                  store: Store | None = None,
                  wall_clock: Callable[[], float] = time.time
                  ) -> tuple[NodeRuntime, GroupCommitThread]:
    """A runtime with a real store and database thread (started) and a worker pool; and that
    database thread, which the caller stops after the node (the runtime only runs work on it).

    Timestamps come from ``wall_clock``; timers from ``reactor`` (on the monotonic clock once
    ``use_monotonic_timers`` has run, as app/process.py and the demo do).
    """
    store = store or open_store(config.store.url)
    database = GroupCommitThread(reactor, store)
    database.start()
    workers = ThreadPool(minthreads=1, maxthreads=IO_THREADS, name="lienthong-io")
    workers.start()
    reactor.addSystemEventTrigger("during", "shutdown", workers.stop)
    runtime = NodeRuntime(config=config, keys=node_keys, reactor=reactor, store=store,
                          database=database, workers=workers, wall_clock=wall_clock)
    return runtime, database
