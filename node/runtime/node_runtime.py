"""What every part of a running node shares: configuration, keys, reactor, store, directory.

Constructed by the daemon (or by tests, with a ``task.Clock`` or a real reactor and a real
store file). Holds no logic of its own beyond three doors to the outside world, and the two
clocks (node/core/clock.py): ``now()``/``now_text()`` read the wall clock, for every time that is
stored, signed, shown or compared with a stored time; ``monotonic()`` reads the reactor's timer
clock, for intervals only (uptime, transfer rates), never stored:

* ``db(fn, ...)``: run a unit of work on the single database thread;
* ``io(fn, ...)``: run blocking file or crypto work on the worker pool;
* ``audit(kind, ...)``: append an audit event (also on the database thread).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from lienthong.config.schema import NodeConfig
from lienthong.keys.directory import Directory
from lienthong.keys.identity import NodeKeys
from lienthong.node.core.clock import rfc3339, rfc3339_ms
from lienthong.node.runtime.peer_protocols import PeerProtocols, save_peer_protocols
from lienthong.node.store.database import Store

log = Logger(namespace="lienthong")


class Database(Protocol):
    """Where units of work run against the store: the database thread, its group-commit
    variant, or inline in tests (node/store/db_thread.py, node/store/commits.py)."""

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]: ...


@dataclass
class NodeRuntime:
    config: NodeConfig
    keys: NodeKeys
    #: The real reactor, or a ``task.Clock``-based fake in tests: several of Twisted's
    #: interfaces at once (time, threads, TCP, SSL), which no one type names.
    reactor: Any
    store: Store
    database: Database
    workers: ThreadPool
    directory: Directory = field(default_factory=lambda: Directory([]))
    directory_version: int = -1
    #: Epoch seconds for timestamps. None: the reactor's own ``seconds()`` (a ``task.Clock``
    #: in tests then serves as both clocks). The daemon passes ``time.time`` and runs the
    #: reactor's timers on ``time.monotonic``.
    wall_clock: Callable[[], float] | None = None
    #: When the daemon started, on the wall clock (shown as "since ...").
    started_at: float = 0.0
    #: When the daemon started, on the timer clock (uptime survives a step of the wall clock).
    started_monotonic: float = 0.0
    #: Listeners told when the directory changes (links, TLS drops of revoked peers).
    on_directory_change: list[Callable[[Directory], None]] = field(default_factory=list)
    #: Former identities still in their grace period (node/identity/switch.py): their keys sign
    #: receipts for envelopes that peers addressed to the former node ID.
    former_keys: dict[str, NodeKeys] = field(default_factory=dict)
    #: Peers that still know this node by a former node ID (they have not receipted the
    #: continuation yet): peer node ID -> the node ID they know.
    known_as: dict[str, str] = field(default_factory=dict)
    #: Former identities whose grace period is over (envelopes to them are refused, saying so).
    retired_ids: set[str] = field(default_factory=set)
    #: The wire protocol each peer last spoke: decides the envelope version sealed for it.
    peer_protocols: PeerProtocols = field(default_factory=PeerProtocols)
    #: Saves of ``peer_protocols`` run one at a time, each writing the latest snapshot: two
    #: threads renaming one temporary file raced, and an older snapshot could land last.
    peer_protocols_saving: DeferredLock = field(default_factory=DeferredLock)

    def note_peer_protocol(self, peer: str, protocol: int) -> None:
        """A connection with ``peer`` agreed on ``protocol``: remember it (saved, and audited
        when it changed, so the audit says from when a peer was sent envelope v3)."""
        if not self.peer_protocols.note(peer, protocol):
            return
        self.audit("peer-protocol", peer=peer, protocol=protocol,
                   envelope=3 if protocol >= 2 else 2)
        d = self.peer_protocols_saving.run(
            lambda: self.io(save_peer_protocols, self.config.home / "state",
                            self.peer_protocols.snapshot()))
        d.addErrback(lambda failure: log.failure("could not save the peers' protocols",
                                                 failure))

    def envelope_version(self, recipients: list[str]) -> int:
        """The envelope version to seal for ``recipients`` (see node/runtime/peer_protocols.py)."""
        return self.peer_protocols.envelope_version(recipients,
                                                    self.config.delivery.max_protocol)

    @property
    def node_id(self) -> str:
        return self.keys.node_id

    def identity_for_peer(self, peer: str) -> str:
        """The node ID this node gives in its HELLO to ``peer``: the one the peer knows."""
        return self.known_as.get(peer, self.node_id)

    def receiving_keys(self, recipients: Any) -> NodeKeys | None:
        """The keys of whichever of our identities an envelope is addressed to: the current
        one, or a former one still in its grace period; None if neither."""
        for node_keys in (self.keys, *self.former_keys.values()):
            if node_keys.node_id in recipients:
                return node_keys
        return None

    def now(self) -> float:
        """Wall-clock epoch seconds: for what is stored, signed, shown or compared with those."""
        return self.wall_clock() if self.wall_clock is not None else self.reactor.seconds()

    def now_text(self) -> str:
        return rfc3339(self.now())

    def monotonic(self) -> float:
        """The timer clock (``callLater``'s): for measuring intervals in this process only."""
        return self.reactor.seconds()

    def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        return self.database.run(fn, *args, **kwargs)

    def io(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        return deferToThreadPool(self.reactor, self.workers, fn, *args, **kwargs)

    def audit(self, kind: str, *, peer: str | None = None, message_id: str | None = None,
              digest: str | None = None, **detail: Any) -> Deferred:
        """Append an audit event; failures are logged loudly (the caller need not wait)."""
        d = self.db(self.store.append_audit, kind, rfc3339_ms(self.now()),
                    peer=peer, message_id=message_id, digest=digest, detail=detail)
        d.addErrback(lambda failure: log.failure("could not write audit event {kind}",
                                                 failure, kind=kind))
        return d

    def db_audited(self, fn: Callable[..., Any], *args: Any,
                   events: list[tuple[str, dict[str, Any]]], **kwargs: Any) -> Deferred:
        """Run ``fn`` (a store method) and append ``events`` in ONE transaction.

        A state change and the audit entry that records it then commit together (one fsync,
        and never one without the other). Each event is ``(kind, fields)`` where fields may
        hold ``peer``, ``message_id``, ``digest`` and any detail.
        """
        now = rfc3339_ms(self.now())
        store = self.store

        def unit() -> Any:
            with store.transaction():
                result = fn(*args, **kwargs)
                for kind, fields in events:
                    fields = dict(fields)
                    store.append_audit(kind, now, peer=fields.pop("peer", None),
                                       message_id=fields.pop("message_id", None),
                                       digest=fields.pop("digest", None), detail=fields)
            return result

        return self.db(unit)

    def refresh_directory(self) -> Deferred:
        """Reload the directory if another process (the CLI) changed it."""
        def check(version: int) -> Deferred | None:
            if version == self.directory_version:
                return None
            return self.db(self.store.directory).addCallback(apply, version)

        def apply(directory: Directory, version: int) -> None:
            self.directory = directory
            self.directory_version = version
            for listener in list(self.on_directory_change):
                listener(self.directory)

        return self.db(self.store.directory_version).addCallback(check)

    def peer_name(self, node_id: str) -> str:
        """The peer's name, also under a node ID it had before an identity rotation."""
        peer = self.directory.peer_for_identity(node_id)
        if peer is not None:
            return peer.name
        try:
            return self.directory.peer_with_id(node_id).name
        except Exception:  # noqa: BLE001 - a label for logs, never a decision
            return node_id.split("-", 1)[0]
