"""PostgreSQL as the store: the driver, the two engines, the write lock, and a lost connection.

Theory of operation
-------------------
The store is written for two back ends: SQLite in the home (the default) and PostgreSQL for an
office that keeps its databases on a server (docs/scale.md). The queries are SQLAlchemy Core
and standard SQL; what differs is how each database is made to behave like the other:

* **Driver.** psycopg 3 only, an optional extra (``pip install 'lienthong[postgresql]'``);
  ``postgresql://`` means ``postgresql+psycopg://`` (SQLAlchemy's own default is psycopg2).
  Without it the node stops with a sentence naming the extra, not a traceback.
* **One writer at a time.** SQLite's ``BEGIN IMMEDIATE`` takes the database's write lock at
  the start of every write transaction, so a read-then-write (the audit chain's tip, the next
  ``seq``) never races another process (the CLI beside the daemon). On PostgreSQL every write
  transaction starts with ``pg_advisory_xact_lock(WRITE_LOCK)``, held until it commits: the
  same order, at the same cost (writers are few; readers never take it). Writes run at READ
  COMMITTED so each statement after the lock sees everything committed before it.
* **Readers see one moment.** The reader engine runs at REPEATABLE READ: the status snapshot's
  dozen queries see one snapshot, as SQLite's deferred ``BEGIN`` gives them in WAL mode.
* **The node lock.** With ``exclusive``, the writer engine's connections take the session-level
  advisory lock ``NODE_LOCK`` as they connect (``lienthong.node.store.node_lock``).
* **The lease.** With ``fenced_by`` (an active/standby pair, ``lienthong.node.store.lease``),
  the node lock is held by the lease's own connection instead, and every write transaction,
  after the write lock, checks that the lease session still holds it: a former holder's write
  is refused by the database itself (``NodeLockLost``) and the lease's keeper ends the process.
* **A lost connection.** The pools ping a connection before lending it and replace a dead one,
  and ``connection_lost`` tells the database thread that a failure was the connection's (the
  server restarted), so it waits and runs the same units again (``node/store/commits.py``)
  instead of failing documents.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from lienthong.node.store.node_lock import (
    NODE_LOCK,
    WRITE_LOCK,
    Holder,
    NodeLockLost,
    already_running_on_database,
)
from lienthong.node.store.records import StoreError

EXTRA = "pip install 'lienthong[postgresql]'"
#: Seconds to wait for the server to answer a new connection (a dead host must not hang start).
CONNECT_TIMEOUT = 10
#: Milliseconds a writer waits for the write lock (SQLite's busy_timeout is the same 5 s).
LOCK_TIMEOUT_MS = 5000


class StoreUnreachable(StoreError):
    """The database server could not be reached (or refused the connection)."""

    code = "store-unreachable"


def postgresql_url(url: str) -> URL:
    """The URL with psycopg 3 as its driver; refuse other back ends, other drivers, no driver."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(f"lienthong keeps its store in SQLite or PostgreSQL, not in "
                         f"{parsed.get_backend_name()!r}; fix [store] url in lienthong.toml")
    if "+" in parsed.drivername and parsed.get_driver_name() != "psycopg":
        raise StoreError(f"the PostgreSQL store is reached through psycopg 3 only, not "
                         f"{parsed.get_driver_name()!r}: write the [store] url as "
                         "postgresql://USER@HOST/DATABASE")
    try:
        import psycopg  # noqa: F401 - only to tell a missing extra from any other error
    except ImportError:
        raise StoreError("The store is a PostgreSQL database, but the PostgreSQL driver is "
                         f"not installed. Install it with: {EXTRA}") from None
    return parsed.set(drivername="postgresql+psycopg")


def shown(url: str) -> str:
    """The URL as it may be printed: no password."""
    return make_url(url).render_as_string(hide_password=True)


class Fence(Protocol):
    """What a fenced writer needs of the lease (``lienthong.node.store.lease.DatabaseLease``)."""

    seconds: float
    backend_pid: int | None

    def lost(self, reason: str) -> None: ...


def postgresql_engines(url: str, exclusive: Holder | None, fenced_by: Fence | None = None,
                       on_lock_lost: Callable[[str], None] | None = None
                       ) -> tuple[Engine, Engine]:
    """The reader and the writer engine of a PostgreSQL store (see the module docstring)."""
    parsed = postgresql_url(url)
    connect_args = {"connect_timeout": CONNECT_TIMEOUT,
                    # Notice a dead server or network within about a minute, not two hours.
                    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                    "keepalives_count": 3}
    reader = create_engine(parsed, pool_size=2, max_overflow=4, pool_pre_ping=True,
                           isolation_level="REPEATABLE READ", connect_args=connect_args)
    options = f"-c lock_timeout={LOCK_TIMEOUT_MS}"
    if fenced_by is not None:
        # A frozen former holder must not keep the write lock inside an open transaction.
        options += f" -c idle_in_transaction_session_timeout={int(fenced_by.seconds * 1000)}"
    writer = create_engine(parsed, pool_size=1, max_overflow=0, pool_pre_ping=True,
                           isolation_level="READ COMMITTED",
                           connect_args={**connect_args, "options": options})
    event.listen(writer, "begin", _take_write_lock if fenced_by is None
                 else _FencedWriteLock(fenced_by, shown(url)))
    if exclusive is not None:
        event.listen(writer, "connect", _NodeLockOnConnect(exclusive, shown(url),
                                                             on_lock_lost))
    return reader, writer


#: Checked by every fenced write transaction, after the write lock: does the lease session
#: (its backend PID) still hold the node lock?
FENCE_QUERY = ("SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' "
               "AND granted AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2")


def _take_write_lock(conn: Connection) -> None:
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK[0]}, {WRITE_LOCK[1]})")


class _FencedWriteLock:
    """The writer's ``begin`` hook in a pair: the write lock, then proof of the lease."""

    def __init__(self, lease: Fence, where: str) -> None:
        self.lease = lease
        self.where = where

    def __call__(self, conn: Connection) -> None:
        _take_write_lock(conn)
        pid = self.lease.backend_pid
        held = pid is not None and conn.exec_driver_sql(
            FENCE_QUERY, (pid, *NODE_LOCK)).scalar()
        if not held:
            reason = (f"a write was refused: this process no longer holds the lease on the "
                      f"database {self.where}")
            self.lease.lost(reason)
            raise NodeLockLost(reason)


class _NodeLockOnConnect:
    """The writer's ``connect`` hook: no connection of the node without the node lock."""

    def __init__(self, holder: Holder, where: str,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.holder = holder
        self.where = where
        self.on_lost = on_lost
        self.held_before = False

    def __call__(self, dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", NODE_LOCK)
            if cursor.fetchone()[0]:
                cursor.execute("SELECT set_config('application_name', %s, false)",
                               (self.holder.application_name,))
                dbapi_connection.commit()
                self.held_before = True
                return
            cursor.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())", NODE_LOCK)
            row = cursor.fetchone()
        dbapi_connection.rollback()
        holder = Holder.from_application_name(row[0] if row else None)
        if self.held_before:
            reason = (f"this node lost its hold on the database {self.where} when its "
                      "connection was cut, and another process took it; this node stops "
                      "writing")
            if self.on_lost is not None:
                self.on_lost(reason)  # the daemon ends itself here
            raise NodeLockLost(reason)
        raise already_running_on_database(self.where, holder)


#: SQLSTATEs of a server going away: the admin or a crash shut it down, or it is starting.
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection to the server failed, not the statement: the
    work may be run again on a new connection once the server answers."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    try:
        import psycopg
    except ImportError:
        return False
    # Also raised straight from the driver's cursor (group commit's savepoints, the audit
    # insert). psycopg's OperationalError covers more than connections (a missing savepoint
    # is one), so the SQLSTATE decides: none (the client lost the socket), class 08
    # (connection exception), or the server shutting down.
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _SERVER_GONE


def cannot_connect(url: str, exc: BaseException) -> StoreError | None:
    """The plain error for a PostgreSQL store that cannot be reached at start, else None."""
    if make_url(url).get_backend_name() != "postgresql" or not isinstance(exc, OperationalError):
        return None
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return StoreUnreachable(
        f"Cannot reach the PostgreSQL store at {shown(url)}: {reason}. Check that the "
        "server is running and that the host, port, database, user and password in "
        "[store] url are right.")
