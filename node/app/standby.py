"""A node of an active/standby pair (``lienthong run --standby``): wait for the lease, keep it,
and end the process the moment it cannot be proven.

Theory of operation
-------------------
Two processes (two machines in production) run ``lienthong run --standby`` on one home: the
same folders (a shared filesystem), the same PostgreSQL database, the same keys. The lease
(``node/store/lease.py``) says which one is active. A pair member:

1. opens the keystore and checks that the store is this node's (two nodes with different keys
   on one store are refused before anything is waited for or written);
2. **waits**: asks for the lease every ``POLL_SECONDS``; while another process holds it, it
   says so once (log, and ``state/standby-HOST.json`` for ``lienthong status``); while the
   database cannot be reached it keeps waiting and says that too. It never takes over without
   the lease;
3. holding the lease, it starts the **keeper** (``LeaseKeeper``: renewals in one thread, a
   watchdog in another) and waits one lease time, so that a former holder cut off early has
   passed its own deadline and ended itself; a server session of it that still holds the
   write lock (cut off in the middle of a transaction) is ended then;
4. then it runs exactly as ``lienthong run`` after a restart: the same ``Node.start``, whose
   recovery adopts whatever the former holder left half-done (docs/design.md §6).

The keeper ends the process (``exit_now``, exit status 3: no clean-up, no
audit entry, no file) when a renewal fails, when the last proof is older than the lease less a
margin, or when a fenced write finds the lease gone. The service manager (systemd
``Restart=on-failure``) starts it again, and it comes back as the standby.

There is no home lock here: ``flock`` is not reliable across the machines of a shared
filesystem, so the database lease is the one source of truth for both folders and rows.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from lienthong.config.schema import NodeConfig
from lienthong.node.app.logs import start_logging
from lienthong.node.app.process import (
    apply_access_rule,
    check_store_is_ours,
    exit_now,
    load_keys_and_passphrase,
    log_access_rule,
    run_node,
)
from lienthong.node.core import fence
from lienthong.node.core.access import access_policy
from lienthong.node.core.clock import rfc3339, use_monotonic_timers
from lienthong.node.store.database import open_store
from lienthong.node.store.lease import DatabaseLease
from lienthong.node.store.node_lock import Holder, NodeAlreadyRunning, NodeLockLost
from lienthong.node.store.postgresql import StoreUnreachable

log = Logger(namespace="lienthong.node.standby")

#: How often a standby asks for the lease.
POLL_SECONDS = 0.5
#: The part of the lease kept as a margin: the keeper ends the process when its last proof is
#: older than (1 - MARGIN) leases, well before the server can give the lease to the standby.
MARGIN = 0.25


def status_file(home: Path, host: str) -> Path:
    return home / "state" / f"standby-{host}.json"


class StandbyReport:
    """What the waiting standby says: one log line per change, and a status file."""

    def __init__(self, home: Path, holder: Holder) -> None:
        self.path = status_file(home, holder.host)
        self.holder = holder
        self.said: tuple[str, str] | None = None

    def waiting(self, state: str, detail: str) -> None:
        if self.said == (state, detail):
            return
        self.said = (state, detail)
        if state == "waiting":
            log.info("standby: waiting to take over; {detail}", detail=detail)
        else:
            log.warn("standby: cannot reach the database, still waiting (it will not take "
                     "over without the lease): {detail}", detail=detail)
        self._write({"state": state, "detail": detail})

    def taking_over(self) -> None:
        log.info("standby: holds the lease; taking over after one lease time")
        self._write({"state": "taking-over", "detail": ""})

    def active(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _write(self, fields: dict[str, Any]) -> None:
        record = {"pid": self.holder.pid, "host": self.holder.host,
                  "since": rfc3339(time.time()), **fields}
        tmp = self.path.with_name(f".{self.path.name}.{self.holder.pid}")
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warn("standby: could not write {path}: {error}", path=str(self.path),
                     error=str(exc))


def wait_for_lease(lease: DatabaseLease, report: StandbyReport, *,
                   first: Any = None, poll: float = POLL_SECONDS, sleep: Any = time.sleep
                   ) -> None:
    """Ask for the lease until this process holds it; say why it waits. ``first`` runs once,
    as soon as the database answers (the check that the store is this node's)."""
    while True:
        try:
            if first is not None:
                first()
                first = None
            lease.try_take()
            return
        except NodeAlreadyRunning as held:
            report.waiting("waiting", str(held))
        except StoreUnreachable as unreachable:
            report.waiting("database-unreachable", str(unreachable))
        sleep(poll)


class LeaseKeeper:
    """Renews the lease every fifth of it, and ends the process when it cannot prove it."""

    def __init__(self, lease: DatabaseLease, *, on_lost: Any = exit_now) -> None:
        self.lease = lease
        self.on_lost = on_lost
        self.keep = lease.seconds * (1 - MARGIN)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Arm the fence (the lease was just taken: proven from now) and start both threads."""
        fence.arm(time.monotonic() + self.keep, self._lost)
        self.lease.on_lost = self._lost
        for target, name in ((self._renew, "lienthong-lease"),
                             (self._watch, "lienthong-lease-watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.lease.seconds)
        fence.disarm()

    def _lost(self, reason: str) -> None:
        if not self._stop.is_set():
            self.on_lost(reason)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease.seconds / 5):
            asked = time.monotonic()
            try:
                self.lease.renew()
            except NodeLockLost as exc:
                self._lost(str(exc))
                return
            # Proven from when it was asked: the server's idle clock started later than that.
            fence.extend(asked + self.keep)

    def _watch(self) -> None:
        # Separate from the renewals: a renewal stuck on a dead network must not delay this.
        while not self._stop.wait(0.05):
            if fence.expired():
                self._lost("the lease was not renewed in time")
                return


def run_pair_member(config: NodeConfig, *, verbose: bool = False) -> int:
    """``lienthong run --standby``: wait for the lease, then run the node under it."""
    # Imported here: importing the reactor installs it, which the caller must be free to do.
    from twisted.internet import reactor

    holder = Holder(pid=os.getpid(), host=socket.gethostname())
    lease = DatabaseLease(config.store.url, holder, seconds=config.store.lease)
    use_monotonic_timers(reactor)
    node_keys, typed = load_keys_and_passphrase(config)

    def refuse_another_nodes_store() -> None:
        # Different keys on this store are refused now, not after a takeover.
        store = open_store(config.store.url)
        try:
            check_store_is_ours(store, config, node_keys)
        finally:
            store.close()

    # Only the umask and the log's own mode while waiting: the folders' modes are set once
    # this member holds the lease (setting them is writing to the shared home).
    access = access_policy(config.node.clerks_group)
    os.umask(access.umask)
    start_logging(config.log_dir, access, verbose=verbose)
    report = StandbyReport(config.home, holder)
    wait_for_lease(lease, report, first=refuse_another_nodes_store)
    report.taking_over()
    keeper = LeaseKeeper(lease)
    keeper.start()
    try:
        time.sleep(lease.seconds)
        ended = lease.end_former_writers()
        if ended:
            log.warn("standby: ended {count} database session(s) of the former holder that "
                     "still held the write lock", count=ended)
        store = open_store(config.store.url, fenced_by=lease)
        try:
            check_store_is_ours(store, config, node_keys)
        except BaseException:
            store.close()
            raise
        report.active()
        log_access_rule(*apply_access_rule(config))
        log.info("standby: took over as the active node ({host}, process {pid})",
                 host=holder.host, pid=holder.pid)
        return run_node(reactor, config, node_keys, typed, store)
    finally:
        keeper.stop()
        lease.release()
