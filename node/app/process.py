"""The daemon process (``lienthong run``): passphrase, keystore, logging, reactor, shutdown.

``run_daemon`` takes the node's exclusive locks (one node per home and per database), gives
the home the access rule (node/core/access.py: its umask, and what it owns in the clerks'
folders exactly the rule's modes and group), reads the passphrase, opens the keystore, moves
the reactor's timers to the monotonic clock (node/core/clock.py), starts logging, runs a
``Node`` (app/node.py) on the reactor, and stops it cleanly on SIGTERM/SIGINT (the
reactor's shutdown, which Twisted triggers on those signals).
"""
from __future__ import annotations

import getpass
import os
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from lienthong.config.schema import NodeConfig
from lienthong.keys.errors import KeystoreError
from lienthong.keys.identity import NodeKeys
from lienthong.keys.keystore import load_keystore, passphrase_bytes, read_passphrase
from lienthong.node.app.logs import start_logging
from lienthong.node.app.node import Node, build_runtime
from lienthong.node.core.access import AccessPolicy, Wider, access_policy
from lienthong.node.core.clock import rfc3339, use_monotonic_timers
from lienthong.node.core.home import make_folders
from lienthong.node.identity.history import read_identity_history
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.node_lock import Holder, HomeLock, StoreOfAnotherNode

log = Logger(namespace="lienthong.node")
#: Paths still wider than the access rule named one by one in the log at start; the rest are
#: counted (``lienthong status`` lists them all).
LOGGED_WIDER = 20


def load_keys_and_passphrase(config: NodeConfig) -> tuple[NodeKeys, bytes | None]:
    """Find the passphrase (env, file, systemd credential, or prompt) and open the keystore;
    also return the passphrase if it was typed at a prompt (the daemon
    keeps it to reload keys after a rotation), else None (it is found again when needed)."""
    passphrase = read_passphrase(env=os.environ, passphrase_file=config.keystore.passphrase_file,
                                 credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY"))
    if passphrase is None:
        if not sys.stdin.isatty():
            raise KeystoreError("no keystore passphrase: set LIENTHONG_PASSPHRASE, configure "
                                "keystore.passphrase_file, use a systemd credential, or run "
                                "from a terminal to be asked")
        typed = passphrase_bytes(getpass.getpass("Keystore passphrase: "))
        return load_keystore(config.keystore.path, typed), typed
    return load_keystore(config.keystore.path, passphrase), None


def busy_port_message(config: NodeConfig, error: CannotListenError) -> str:
    """Why the node cannot listen, which program holds the port (when this system says), and
    the setting to change."""
    holder = port_holder(int(error.port)) if str(error.port).isdigit() else None
    held = f" It is used by {holder}." if holder else ""
    return (f"cannot listen on {config.node.listen} for other offices: the port is already "
            f"in use or not allowed ({error.socketError}).{held} Stop that program, or choose "
            f"another port in [node] listen (and advertise) in {config.source}, then tell "
            "the other offices the new address.")


def port_holder(port: int) -> str | None:
    """The process listening on TCP ``port`` ("name (pid N)"), read from /proc on Linux;
    None when it cannot be told (another system, or a process of another user)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    # local address "ADDR:PORT" in hex; state 0A is LISTEN.
                    if len(fields) > 9 and fields[3] == "0A" \
                            and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except (OSError, ValueError):
            continue
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
                        return f"{comm.read().strip()} (pid {pid})"
        except OSError:
            continue
    return None


def run_daemon(config: NodeConfig, *, verbose: bool = False) -> int:
    # Imported here: importing the reactor installs it, which the caller must be free to do.
    from twisted.internet import reactor

    # Before anything is written (a log line, a migration, an audit entry) or a passphrase
    # asked for: one node per home, and per PostgreSQL database (node/store/node_lock.py).
    holder = Holder.this_process()
    home_lock = HomeLock(config.home)
    home_lock.acquire(holder, started=rfc3339(time.time()))
    try:
        # First, before anything can schedule a timer: a step of the wall clock must neither
        # hold a pending retry back nor fire every timer at once (docs/reliability.md).
        use_monotonic_timers(reactor)
        # The keys before the access rule: key material found readable by others stops the
        # node (it may have been read), rather than being quietly narrowed by the rule.
        node_keys, typed = load_keys_and_passphrase(config)
        access, changed, wider = apply_access_rule(config)
        store = open_store(config.store.url, exclusive=holder, on_lock_lost=exit_now)
        try:
            check_store_is_ours(store, config, node_keys)
        except BaseException:
            store.close()
            raise
        start_logging(config.log_dir, access, verbose=verbose)
        log_access_rule(access, changed, wider)
        return run_node(reactor, config, node_keys, typed, store)
    finally:
        home_lock.release()


def apply_access_rule(config: NodeConfig) -> tuple[AccessPolicy, int, list[Wider]]:
    """The access rule for this home, set up before the node writes anything: the process
    umask (for a file made without the rule), the folders, and what the node owns in them
    (an upgraded node's older files, a group configured since). Blocking, before the reactor
    runs. The node narrows and widens only what it owns and never leaves the rule: files in
    its clerks' folders are its own, and a warning asking a person to chmod thousands of
    sidecars after an upgrade would stay unread (docs/operations.md §5)."""
    access = access_policy(config.node.clerks_group)
    os.umask(access.umask)
    make_folders(config.home, access)
    changed, wider = access.enforce(config.home)
    return access, changed, wider


def log_access_rule(access: AccessPolicy, changed: int, wider: list[Wider]) -> None:
    if changed:
        log.info("access rule: {changed} folders and files given mode and group of the rule "
                 "(clerks' group {group!r})", changed=changed, group=access.group)
    for found in wider[:LOGGED_WIDER]:
        log.warn("{path!r} is readable by more people than the access rule allows and is "
                 "owned by another user; fix it as root: {fix}", path=str(found.path),
                 fix=found.fix)
    if len(wider) > LOGGED_WIDER:
        log.warn("{more} more paths are wider than the access rule; 'lienthong status' lists "
                 "them", more=len(wider) - LOGGED_WIDER)


#: The exit status of a node that lost its hold on the database (a plain node's lock, or a pair
#: member's lease): it writes nothing more (docs/scale.md).
EXIT_LOCK_LOST = 3


def exit_now(reason: str) -> None:
    """End the process at once: a node that cannot prove it is the one writer writes nothing
    more, not even a log line through the reactor (this one goes straight to stderr)."""
    try:
        sys.stderr.write(f"lienthong: this node can no longer prove that it is the only one "
                         f"writing, so it stops at once ({reason})\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_LOCK_LOST)


def check_store_is_ours(store: Store, config: NodeConfig, node_keys: NodeKeys) -> None:
    """Refuse a store last run by a node with other keys: two homes configured with one
    PostgreSQL database (or one SQLite file) would mix two offices' documents and audit."""
    last = store.last_started_node_id()
    if last is None:
        return
    ours = {node_keys.node_id} | {former.node_id for former in read_identity_history(config.home)}
    if last not in ours:
        raise StoreOfAnotherNode(
            f"The store configured in {config.source} belongs to another node ({last}), not to "
            f"this one ({node_keys.node_id}): two homes must not share one store. Give this "
            "node a store of its own in [store] url.")


def run_node(reactor: Any, config: NodeConfig, node_keys: NodeKeys, typed: bytes | None,
             store: Store) -> int:
    """Run the node on ``reactor`` until it stops (the store is open and this process's)."""
    runtime, database = build_runtime(reactor, config, node_keys, store=store)
    node = Node(runtime, passphrase=typed)
    exit_code = [0]

    def started_failed(failure: Any) -> None:
        if failure.check(CannotListenError):
            # A clear sentence instead of a traceback: the one thing the officer must change.
            log.error("{message}", message=busy_port_message(config, failure.value))
        else:
            log.failure("the node could not start", failure)
        exit_code[0] = 1
        reactor.stop()

    def shutdown() -> Deferred:
        d = node.stop()
        d.addBoth(lambda _: database.stop())
        return d

    reactor.callWhenRunning(lambda: node.start().addErrback(started_failed))
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()
    store.close()
    return exit_code[0]
