"""The running node: wires runtime, store, listener, links, watcher and outbox together.

``Node`` is constructed with everything it needs (reactor, config, keys, store, database
thread), so tests run it on a real reactor with temporary folders and SQLite files, or parts
of it on a ``task.Clock``. ``run_daemon`` is the command-line entry: it reads the passphrase,
opens the keystore, moves the reactor's timers to the monotonic clock (node/core/clock.py), starts
logging and the reactor, and stops cleanly on SIGTERM/SIGINT.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from lienthong.config.schema import NodeConfig, parse_address
from lienthong.keys.directory import Directory
from lienthong.keys.identity import NodeKeys
from lienthong.node.core.clock import use_monotonic_timers
from lienthong.node.core.runtime import NodeRuntime
from lienthong.node.delivery.links import PeerLink
from lienthong.node.inbox.connection import ReceiverFactory
from lienthong.node.inbox.offers import Offers
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.store.commits import GroupCommitThread
from lienthong.node.store.database import open_store
from lienthong.node.transport.tls import PinnedContextFactory
from lienthong.node.watch.watcher import OutboxWatcher

log = Logger(namespace="lienthong.node")

DIRECTORY_POLL_SECONDS = 1.0


class Node:
    def __init__(self, runtime: NodeRuntime, *, passphrase: bytes | None = None) -> None:
        """``passphrase``: the one typed at start, kept to reload keys after ``keys rotate``
        (node.keyupdate says why that is acceptable); None when an unattended source has it."""
        self.rt = runtime
        self.links: dict[str, PeerLink] = {}
        self.inbound = Offers(runtime)
        self.receiver_factory = ReceiverFactory(self.inbound)
        self.outbox = Outbox(runtime, on_dispatch=self._kick_links,
                             on_released=self._released)
        self.tls = PinnedContextFactory(
            tls_key=runtime.keys.tls_key, certificate_der_bytes=runtime.keys.tls_cert_der,
            lookup=lambda pin: self.rt.directory.node_for_tls_pin(pin),
            on_refused=self._tls_refused)
        self.watcher: OutboxWatcher | None = None
        self.port: Any = None
        self._directory_poll: LoopingCall | None = None
        self.status_api: Any = None
        self.head_signer: Any = None
        self.running = False
        runtime.on_directory_change.append(self._directory_changed)
        from lienthong.node.identity.key_updates import (  # key rotation
            KeyUpdates,
            configured_passphrase,
        )
        self.key_updates = KeyUpdates(
            self, passphrase=configured_passphrase(runtime.config, remembered=passphrase))
        from lienthong.node.control import processing as control  # processing statuses and recalls
        self.documents = control.install(self)

    @property
    def listening_port(self) -> int:
        return self.port.getHost().port

    @inlineCallbacks
    def start(self):  # type: ignore[no-untyped-def]
        rt = self.rt
        rt.started_at = rt.now()
        rt.started_monotonic = rt.monotonic()
        yield rt.refresh_directory()
        yield self.key_updates.resume()
        host, port = parse_address(rt.config.node.listen, where="node.listen")
        self.port = rt.reactor.listenSSL(port, self.receiver_factory, self.tls, interface=host)
        yield rt.audit("node-started", node_id=rt.node_id, listen=f"{host}:{self.listening_port}")
        yield self.inbound.recover()
        yield self.outbox.recover()
        self.key_updates.start()
        yield self.documents.start()
        self._directory_poll = LoopingCall(self._poll_directory)
        self._directory_poll.clock = rt.reactor
        self._directory_poll.start(DIRECTORY_POLL_SECONDS, now=False)
        self.watcher = OutboxWatcher(
            rt.reactor, rt.config.outbox, self._file_ready,
            call_from_thread=rt.reactor.callFromThread, observer=rt.config.watch.observer,
            scan_interval=rt.config.watch.scan_interval,
            stable_seconds=rt.config.watch.stable_seconds)
        self.watcher.start()
        from lienthong.node.audit.heads import HeadSigner
        from lienthong.node.status.api import StatusService
        self.status_api = StatusService(self)
        self.status_api.start()
        self.head_signer = HeadSigner(clock=rt.reactor, run_db=rt.db, store=rt.store,
                                      current_keys=lambda: rt.keys,
                                      now_text=rt.now_text)
        self.head_signer.start()
        self.running = True
        for link in self.links.values():
            link.kick()
        log.info("node {name} ({node_id}) listening on {host}:{port}",
                 name=rt.config.node.name, node_id=rt.node_id, host=host,
                 port=self.listening_port)

    def live_status(self) -> dict[str, Any]:
        """What only the running daemon knows: link states and transfers in flight."""
        from lienthong.node.status.live import live_from_links
        rt = self.rt
        return live_from_links(
            self.links, node_id=rt.node_id, now=rt.now(), started_at=rt.started_at,
            uptime=rt.monotonic() - rt.started_monotonic, monotonic=rt.monotonic(),
            status_listen=self.status_api.address if self.status_api is not None else None,
            receiving=self.inbound.active)

    def _file_ready(self, path: Path, target: str) -> None:
        self.outbox.file_ready(path, target)

    def _released(self, path: Path) -> None:
        if self.watcher is not None:
            self.watcher.done(path)

    def _kick_links(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            link = self.links.get(node_id)
            if link is not None:
                link.kick()

    def _poll_directory(self) -> Deferred:
        d = self.rt.refresh_directory()
        d.addErrback(lambda f: log.failure("cannot read the peer directory", f))
        return d

    def _directory_changed(self, directory: Directory) -> None:
        for peer in directory.peers:
            if peer.state == "trusted" and peer.node_id not in self.links:
                self.links[peer.node_id] = PeerLink(
                    self.rt, peer.node_id, tls=self.tls,
                    on_all_delivered=self.outbox.finish,
                    on_delivery_failed=self._delivery_failed)
                if self.running:
                    self.links[peer.node_id].kick()
            elif peer.state == "revoked":
                link = self.links.pop(peer.node_id, None)
                if link is not None:
                    link.stop()
                self.receiver_factory.drop_peer(peer.node_id)
                self._park(peer.node_id, f"{peer.name} was revoked at {peer.revoked_at}: "
                           f"{peer.reason or 'no reason given'}")
        known = {peer.node_id for peer in directory.peers}
        for node_id in list(self.links):
            if node_id not in known:
                self.links.pop(node_id).stop()
                self.receiver_factory.drop_peer(node_id)
                self._park(node_id, "the peer was removed from the directory")

    def _park(self, node_id: str, reason: str) -> None:
        d = self.outbox.park_peer(node_id, reason)
        d.addErrback(lambda f: log.failure("could not park the queue of {peer}", f,
                                           peer=node_id))

    def _delivery_failed(self, message_id: str, reason: str) -> None:
        self.outbox.delivery_failed(message_id, reason)

    def _tls_refused(self, pin: str, reason: str) -> None:
        self.rt.audit("security-refused", code="tls-unknown-key", pin=pin, reason=reason)
        log.warn("refused a TLS peer: {reason}", reason=reason)

    @inlineCallbacks
    def stop(self):  # type: ignore[no-untyped-def]
        """Stop taking work, close connections (partials stay for resume), flush the store."""
        self.running = False
        if self.watcher is not None:
            self.watcher.stop()
        if self._directory_poll is not None and self._directory_poll.running:
            self._directory_poll.stop()
        self.key_updates.stop()
        self.documents.stop()
        for link in self.links.values():
            link.stop()
        for proto in list(self.receiver_factory.connections):
            proto.transport.loseConnection()
        if self.port is not None:
            yield self.port.stopListening()
        yield self.rt.audit("node-stopped", node_id=self.rt.node_id)
        if self.status_api is not None:
            yield self.status_api.stop()
        if self.head_signer is not None:
            yield self.head_signer.stop()


#: Worker threads for blocking file and crypto work: most of it waits for fsync, and fsyncs that
#: wait together share one journal commit (docs/benchmarks.md, History 15).
IO_THREADS = 16


def build_runtime(reactor: Any, config: NodeConfig, node_keys: NodeKeys, *,
                  store: Any = None,
                  wall_clock: Callable[[], float] = time.time) -> NodeRuntime:
    """A runtime with a real store and database thread (started) and a worker pool.

    Timestamps come from ``wall_clock``; timers from ``reactor`` (on the monotonic clock once
    ``use_monotonic_timers`` has run, as ``run_daemon`` and the demo do).
    """
    store = store or open_store(config.store.url)
    database = GroupCommitThread(reactor, store)
    database.start()
    workers = ThreadPool(minthreads=1, maxthreads=IO_THREADS, name="lienthong-io")
    workers.start()
    reactor.addSystemEventTrigger("during", "shutdown", workers.stop)
    return NodeRuntime(config=config, keys=node_keys, reactor=reactor, store=store,
                       database=database, workers=workers, wall_clock=wall_clock)


def load_keys_and_passphrase(config: NodeConfig) -> tuple[NodeKeys, bytes | None]:
    """Find the passphrase (env, file, systemd credential, or prompt) and open the keystore;
    also return the passphrase if it was typed at a prompt (the daemon
    keeps it to reload keys after a rotation), else None (it is found again when needed)."""
    import getpass
    import sys

    from lienthong.keys.keystore import load_keystore, passphrase_bytes, read_passphrase
    passphrase = read_passphrase(env=os.environ, passphrase_file=config.keystore.passphrase_file,
                                 credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"))
    if passphrase is None:
        if not sys.stdin.isatty():
            from lienthong.keys.errors import KeystoreError
            raise KeystoreError("no keystore passphrase: set LIENTHONG_PASSPHRASE, configure "
                                "keystore.passphrase_file, use a systemd credential, or run "
                                "from a terminal to be asked")
        typed = passphrase_bytes(getpass.getpass("Keystore passphrase: "))
        return load_keystore(config.keystore.path, typed), typed
    return load_keystore(config.keystore.path, passphrase), None


def run_daemon(config: NodeConfig, *, verbose: bool = False) -> int:
    from twisted.internet import reactor

    from lienthong.node.app.logs import start_logging
    # First, before anything can schedule a timer: a step of the wall clock must neither hold
    # a pending retry back nor fire every timer at once (docs/reliability.md, clock steps).
    use_monotonic_timers(reactor)
    node_keys, typed = load_keys_and_passphrase(config)
    start_logging(config.log_dir, verbose=verbose)
    runtime = build_runtime(reactor, config, node_keys)
    node = Node(runtime, passphrase=typed)
    exit_code = [0]

    def started_failed(failure: Any) -> None:
        log.failure("the node could not start", failure)
        exit_code[0] = 1
        reactor.stop()

    def shutdown() -> Deferred:
        d = node.stop()
        d.addBoth(lambda _: runtime.database.stop())
        return d

    reactor.callWhenRunning(lambda: node.start().addErrback(started_failed))
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()
    return exit_code[0]
