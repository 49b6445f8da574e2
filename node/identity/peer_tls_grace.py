"""The grace period of a peer's previous TLS key: accepted for a while after the peer
announced a new one, then closed.

When a peer announces a new TLS key (identity/key_update_incoming.py), the new key becomes
current and the previous one stays accepted until ``TLS_GRACE_SECONDS`` have passed (an
overlap in the key history that keys.directory reads as "still accepted"), because the
rotating peer may dial with the old key until it has our receipt. Each second
:class:`PeerTLSGrace` looks for keys whose grace period is over and closes them.

Trade-off, documented in docs/keys.md: for up to a week after a peer's new TLS key is learnt,
the old one still opens a connection to this node. That is acceptable for a routine rotation
(a TLS key alone can neither sign nor open documents: both are end to end), and it is what
lets a rotation never interrupt delivery.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.keys.identity import parse_time
from lienthong.node.runtime.node_runtime import NodeRuntime

log = Logger(namespace="lienthong.keyupdate")

POLL_SECONDS = 1.0
#: How long a peer's previous TLS key is still accepted after we learnt its new one.
TLS_GRACE_SECONDS = 7 * 24 * 3600.0


class PeerTLSGrace:
    """Closes peers' previous TLS keys once their grace period is over."""

    def __init__(self, runtime: NodeRuntime, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.rt = runtime
        self._poll_seconds = poll_seconds
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.rt.reactor
        self._loop.start(self._poll_seconds, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    @inlineCallbacks
    def _tick(self) -> Generator[Deferred[Any], Any, None]:
        try:
            yield self.end_expired()
        except Exception:  # noqa: BLE001 - the poll must survive to try again
            log.failure("closing peers' previous TLS keys failed")

    @inlineCallbacks
    def end_expired(self) -> Generator[Deferred[Any], Any, None]:
        """Close peers' previous TLS keys whose grace period is over."""
        rt = self.rt
        now = parse_time(rt.now_text())
        # The keys after the current one were closed when it came: each has an end.
        due = any(key.valid_until is not None and parse_time(key.valid_until) <= now
                  for peer in rt.directory.peers if peer.state == "trusted"
                  for key in peer.accepted_tls_keys()[1:])
        if not due:
            return
        ended = yield rt.db(rt.store.end_tls_grace, rt.now_text())
        for node_id in ended:
            yield rt.audit("tls-grace-ended", peer=node_id)
        yield rt.refresh_directory()
