"""The lease of an active/standby pair: which of two node processes on one PostgreSQL store may
write.

Theory of operation
-------------------
Both processes of a pair run ``lienthong run --standby`` on one home (shared folders, one
PostgreSQL database, the same keys). The lease is the node's session-level advisory lock
``NODE_LOCK`` (``lienthong.node.store.node_lock``), held by a connection of its own, the
**lease connection**: whoever holds it is the active node; the other waits, asking for it with
``pg_try_advisory_lock`` every poll (``DatabaseLease.try_take``).

Time-bounded by the server. The lease connection sets ``idle_session_timeout`` to the lease
time, and the active node renews every fifth of it (``renew``: one query that also says
whether this session still holds the lock). A holder that dies (kill -9) closes its socket and
the server lets the lock go at once; one that is frozen (SIGSTOP, a hung host) or cut off from
the database stops talking, and the server ends its session, and the lock, ``seconds`` after
its last renewal. Either way the standby gets the lock within the lease time.

Fencing. A process that holds nothing must write nothing:

* database writes: with ``fenced_by`` (``open_store``), every write transaction starts by
  checking that this process's lease session still holds the lock, after taking the write lock
  (``node/store/postgresql.py``); a transaction of a former holder is refused there, by the
  database itself, with ``NodeLockLost``, and ``on_lost`` ends the process;
* files: the keeper (``node/app/standby.py``) ends the process the moment its last successful
  renewal is older than the lease time less a margin, and ``lienthong.node.core.fence`` checks
  the same moment before a file is published;
* and a new holder waits one lease time after taking the lock before it writes anything: a
  former holder whose session was cut early (a network cut, the server restarted) has by then
  passed its own deadline and ended itself (``seconds`` after its last renewal at most).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from lienthong.node.language.text import Phrase
from lienthong.node.store.node_lock import (
    NODE_LOCK,
    WRITE_LOCK,
    Holder,
    NodeLockLost,
    already_running_on_database,
)
from lienthong.node.store.postgresql import (
    CONNECT_TIMEOUT,
    StoreUnreachable,
    postgresql_url,
    shown,
)
from lienthong.node.store.records import StoreError

#: The default lease time (``[store] lease``): a standby takes over about one lease after an
#: active node is killed and two after one is frozen (docs/scale.md gives the measured times).
DEFAULT_LEASE_SECONDS = 5.0

_HELD = ("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
         "AND granted AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2")
#: The sessions of this database holding the write lock, other than this one: with the lease
#: held, only a former holder's (one whose network went dark in the middle of a transaction).
_FORMER_WRITERS = (
    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
    "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted "
    "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 2 "
    "AND l.pid <> pg_backend_pid()")
_HOLDER = ("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
           "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s "
           "AND l.objid::bigint = %s AND l.objsubid = 2 AND l.database = "
           "(SELECT oid FROM pg_database WHERE datname = current_database())")


class StandbyNeedsPostgreSQL(StoreError):
    """``run --standby`` on a SQLite store: a pair can only share a database server."""

    code = "standby-needs-postgresql"


class DatabaseLease:
    """The lease connection of one process: take, renew, prove and let go of the lease."""

    def __init__(self, url: str, holder: Holder, *, seconds: float = DEFAULT_LEASE_SECONDS
                 ) -> None:
        if make_url(url).get_backend_name() != "postgresql":
            raise StandbyNeedsPostgreSQL(Phrase(
                "An active/standby pair (lienthong run --standby) shares one PostgreSQL "
                "database; this node's store is a SQLite file in its home. Set [store] url to "
                "a PostgreSQL database (docs/scale.md), or run the node without --standby."))
        self.url = url
        self.where = shown(url)
        self.holder = holder
        self.seconds = seconds
        self._conninfo = postgresql_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._conn: Any = None
        self.backend_pid: int | None = None
        #: Called (with a reason) when a fenced write finds the lease gone: ends the process.
        self.on_lost: Callable[[str], None] | None = None

    @property
    def held(self) -> bool:
        return self.backend_pid is not None

    def try_take(self) -> None:
        """Take the lease now, or raise ``NodeAlreadyRunning`` naming the holder, or
        ``StoreUnreachable`` when the database cannot be reached (the caller keeps waiting)."""
        import psycopg
        try:
            conn = self._connection()
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()",
                               NODE_LOCK)
                taken, pid = cursor.fetchone()
                if taken:
                    cursor.execute("SELECT set_config('application_name', %s, false)",
                                   (self.holder.application_name,))
                    self.backend_pid = int(pid)
                    return
                cursor.execute(_HOLDER, NODE_LOCK)
                row = cursor.fetchone()
        except psycopg.Error as exc:
            self._drop()
            raise StoreUnreachable(Phrase("Cannot reach the PostgreSQL store at {where}: "
                                          "{problem}", where=self.where,
                                          problem=_first_line(exc))) from None
        raise already_running_on_database(
            self.where, Holder.from_application_name(row[0] if row else None))

    def renew(self) -> None:
        """Prove the lease is still held (this also restarts the server's idle clock);
        ``NodeLockLost`` when it is not, or when the database cannot be asked."""
        import psycopg
        if self._conn is None or self.backend_pid is None:
            raise NodeLockLost(f"this process holds no lease on the database {self.where}")
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(_HELD, NODE_LOCK)
                held = cursor.fetchone()[0]
        except psycopg.Error as exc:
            self._drop()
            raise NodeLockLost(f"the lease on the database {self.where} could not be renewed "
                               f"({_first_line(exc)})") from None
        if not held:
            self._drop()
            raise NodeLockLost(f"the lease on the database {self.where} is no longer held by "
                               "this process")

    def end_former_writers(self) -> int:
        """With the lease held: end the server sessions that still hold the write lock (a
        former holder cut off in the middle of a transaction, whose server session waits for
        the rest of it: no idle timeout runs until a statement is complete, and a network
        that drops packets without resetting the connection keeps it open); returns how many.
        Not allowed (another role's session), or not reachable: 0, and the new holder's first
        write waits for the lock as before."""
        import psycopg
        if self._conn is None or self.backend_pid is None:
            return 0
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(_FORMER_WRITERS, WRITE_LOCK)
                return sum(1 for (ended,) in cursor.fetchall() if ended)
        except psycopg.Error:
            return 0

    def lost(self, reason: str) -> None:
        """A fenced write found the lease gone: tell the keeper (which ends the process)."""
        if self.on_lost is not None:
            self.on_lost(reason)

    def release(self) -> None:
        """Let the lease go: unlocked before the session closes, because a closed session's
        lock lasts until its server process has exited, and the standby asking in that
        moment would be refused by a holder that is already gone."""
        import psycopg
        if self.held and self._conn is not None and not self._conn.closed:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", NODE_LOCK)
            except psycopg.Error:
                pass  # the session is gone, and its lock with it
        self._drop()

    def _connection(self) -> Any:
        import psycopg
        if self._conn is None or self._conn.closed:
            ms = int(self.seconds * 1000)
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                application_name="lienthong standby",
                # The server ends a session silent for one lease time, and with it the lock;
                # keepalives and the TCP user timeout notice a dead network from this side.
                options=f"-c idle_session_timeout={ms} "
                        f"-c idle_in_transaction_session_timeout={ms}",
                keepalives=1, keepalives_idle=max(1, int(self.seconds)),
                keepalives_interval=1, keepalives_count=3, tcp_user_timeout=ms)
        return self._conn

    def _drop(self) -> None:
        self.backend_pid = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not fail
                pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
