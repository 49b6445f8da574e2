"""One node per home and per database: the exclusive locks ``lienthong run`` takes before it
writes anything.

Theory of operation
-------------------
Two daemons on one home would take the same outbox files, publish into the same inbox and
extend one audit chain from two processes. So ``lienthong run`` takes, before it opens the
store, asks for the passphrase or writes a log line:

* the **home lock**: ``fcntl.flock`` on ``state/node.lock`` (``HomeLock``). The kernel drops
  it when the process ends, however it ends (kill -9 included), so a stale lock never blocks
  a restart. The holder writes its PID, host and start time into the file *after* locking, so
  a second ``run`` can say who holds it; the second one opens the file without truncating and
  writes nothing.
* for a PostgreSQL store, also the **database lock**: a session-level advisory lock
  (``NODE_LOCK``) taken on the store's writer connection the moment it connects
  (``lienthong.node.store.database``), so two homes pointed at one database are caught too.
  The holder names itself in ``application_name`` (``Holder.application_name``), which the
  refused node reads from ``pg_stat_activity``: nothing is written into the database.

Because the database lock lives on the very connection every write goes through, a node
whose connection is cut (server restart, network) has lost the lock with it; the pool's next
connection must take it again before any write, or the write fails with ``NodeLockLost``.
That is the fencing an active/standby pair needs (docs/scale.md, "One node per home"): the
standby waits on the same advisory lock; whichever connection holds it is the only writer.

SQLite homes need only the home lock: the database file is in the home's ``state/``.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from lienthong.node.language.text import Phrase
from lienthong.node.store.records import StoreError

#: The advisory lock keys (two 32-bit halves: pg_locks shows them as classid, objid). The
#: first half spells "lien"; the node lock is held for the session, the write lock for one
#: transaction (PostgreSQL's stand-in for SQLite's BEGIN IMMEDIATE).
LOCK_CLASS = 0x6C69656E
NODE_LOCK = (LOCK_CLASS, 1)
WRITE_LOCK = (LOCK_CLASS, 2)

LOCK_FILE = Path("state") / "node.lock"
_APP_PREFIX = "lienthong node"


class NodeAlreadyRunning(StoreError):
    """Another node process holds this home or this database."""

    code = "node-already-running"


class NodeLockLost(StoreError):
    """The node's database lock went with its connection and another process now holds it."""

    code = "node-lock-lost"


class StoreOfAnotherNode(StoreError):
    """The store was last run by a node with other keys (two homes pointed at one store)."""

    code = "store-of-another-node"


@dataclass(frozen=True)
class Holder:
    """Who runs a node: what a refused second ``run`` tells the person who started it."""

    pid: int
    host: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(pid=os.getpid(), host=socket.gethostname())

    @property
    def application_name(self) -> str:
        """PostgreSQL keeps 63 bytes of it; the PID and host fit first."""
        return f"{_APP_PREFIX} pid={self.pid} host={self.host}"[:63]

    @classmethod
    def from_application_name(cls, name: str | None) -> Holder | None:
        if not name or not name.startswith(_APP_PREFIX):
            return None
        fields = dict(part.split("=", 1) for part in name[len(_APP_PREFIX):].split()
                      if "=" in part)
        try:
            return cls(pid=int(fields["pid"]), host=fields.get("host", "?"))
        except (KeyError, ValueError):
            return None


def _holder_phrase(holder: Holder | None) -> Phrase:
    return (Phrase("process {pid} on {host}", pid=holder.pid, host=holder.host)
            if holder is not None else
            Phrase("a process whose PID and host could not be read"))


def already_running_at_home(home: Path, holder: Holder | None) -> NodeAlreadyRunning:
    return NodeAlreadyRunning(Phrase(
        "The node in {home} is already running ({who}). Only one node may run per home: stop "
        "that one first, or leave it running.", home=home, who=_holder_phrase(holder)))


def already_running_on_database(where: str, holder: Holder | None) -> NodeAlreadyRunning:
    return NodeAlreadyRunning(Phrase(
        "Another lienthong node is already running on the database {where} ({who}). One "
        "database serves one node: stop that node, or give this one a database of its own.",
        where=where, who=_holder_phrase(holder)))


class HomeLock:
    """The exclusive ``flock`` on a home's ``state/node.lock``, held until ``release``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, holder: Holder, *, started: str) -> None:
        """Take the lock or raise ``NodeAlreadyRunning`` naming the holder (writing nothing)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            running = _read_holder(fd)
            os.close(fd)
            raise already_running_at_home(self.home, running) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": holder.pid, "host": holder.host,
                                  "started": started}).encode("ascii") + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the file stays: unlinking it could let two holders lock two files)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> Holder | None:
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"null")
        return Holder(pid=int(raw["pid"]), host=str(raw["host"]))
    except (ValueError, TypeError, KeyError, OSError):
        return None
