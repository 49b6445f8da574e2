"""The node's store: peer directory, outgoing and incoming documents, retry schedule, audit log.

Theory of operation
-------------------
``open_store(url)`` does the I/O (creates the folder, opens the engine, migrates the schema);
``Store(...)`` itself does none. Every method is synchronous and blocking: the daemon calls them
on its one database thread (``DatabaseThread.run(store.method, ...)``), the CLI calls them
directly. They return plain frozen values (``lienthong.node.store.records``), never ORM objects
or ``Row``s.
Nothing here reads the clock: each change takes ``now`` (RFC 3339) from the caller.

Transactions. Each method is one transaction by itself. To make several changes commit
together -- a state change and the audit entry that records it, a batch of receipts, a receipt
plus "dispatch sent" -- open ``store.transaction()`` and call the methods inside it; they join
the open transaction (no savepoints: an exception anywhere rolls back all of it)::

    def finish(store, message_id, peer, receipt, now):
        with store.transaction():
            done = store.record_receipt(message_id, peer, receipt, now)
            store.append_audit("receipt-verified", now, peer=peer, message_id=message_id)
        return done
    all_done = yield db.run(finish, store, message_id, peer, receipt, now)

The open transaction is per thread, so a unit of work must not hand it to another thread
(``node/store/base.py``).

SQLite. One engine connection is kept open (``QueuePool`` of one) rather than one per unit of
work (``NullPool``): reopening would repeat the PRAGMAs and schema parsing on every call, and in
WAL mode closing the *last* connection checkpoints and deletes the WAL, paying extra fsyncs each
time. Other processes (the CLI) open their own engine on the same file: WAL lets their reads run
beside our writes, ``busy_timeout`` makes a second writer wait instead of failing, and write
transactions start with ``BEGIN IMMEDIATE`` so a read-then-write can never deadlock or fork the
audit chain. ``synchronous=FULL`` makes every commit durable before a receipt is signed
(docs/reliability.md §1.2; with WAL, NORMAL may lose the last commits on power loss).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool, StaticPool

from lienthong.node.store import schema
from lienthong.node.store.audit_log import AuditMethods
from lienthong.node.store.coordination import CoordinationMethods
from lienthong.node.store.documents import DocumentMethods
from lienthong.node.store.edxml_ids import EdxmlIdMethods
from lienthong.node.store.incoming import IncomingMethods
from lienthong.node.store.migrations import current_version, migrate
from lienthong.node.store.node_lock import Holder
from lienthong.node.store.outgoing import OutgoingMethods, ScheduleMethods
from lienthong.node.store.peers import PeerMethods
from lienthong.node.store.petitions import PetitionMethods
from lienthong.node.store.postgresql import Fence, cannot_connect, postgresql_engines
from lienthong.node.store.receipts import ReceiptMethods
from lienthong.node.store.reconciliations import ReconciliationMethods
from lienthong.node.store.records import StoreError
from lienthong.node.store.reports import ReportMethods
from lienthong.node.store.witnesses import WitnessMethods
from lienthong.node.store.yearly import YearMethods

_BEGIN_OPTION = "lienthong_begin"
_BEGIN_STATEMENTS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})
BUSY_TIMEOUT_MS = 5000


def open_store(url: str, *, exclusive: Holder | None = None,
               fenced_by: Fence | None = None,
               on_lock_lost: Callable[[str], None] | None = None) -> Store:
    """Open the store at a SQLAlchemy URL, creating its folder and migrating its schema.

    ``exclusive`` (the daemon only; the CLI's commands share the store with it): on PostgreSQL,
    take the node's advisory lock on the writer connection before anything is read or written,
    naming this process (``lienthong.node.store.node_lock``). ``fenced_by`` (a node of an
    active/standby pair, instead of ``exclusive``): every write transaction first proves that
    this process holds the pair's lease (``lienthong.node.store.lease``). ``on_lock_lost``
    (with ``exclusive``): called when a new writer connection finds the node lock taken by
    another process after this one held it (the daemon ends itself).

    Raises ``SchemaTooNew`` for a store written by a newer lienthong, ``NodeAlreadyRunning``
    when another node holds the database, ``StoreError`` for a database that cannot be reached,
    that is not a lienthong store, or a SQLite file where WAL cannot be used.
    """
    if make_url(url).get_backend_name() == "sqlite":
        reader = _sqlite_engine(url)
        writer: Engine = reader.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
    else:
        reader, writer = postgresql_engines(url, exclusive, fenced_by, on_lock_lost)
    try:
        # Look first with a read transaction: a reader (lienthong status, audit) must not
        # queue for the write lock that a busy daemon holds, when there is nothing to migrate.
        # The daemon connects its writer first, so its lock is taken before the first read.
        if exclusive is not None and writer is not reader:
            writer.connect().close()
        with reader.connect() as conn:
            found = current_version(conn)
        if found != schema.SCHEMA_VERSION:
            migrate(writer)
    except BaseException as exc:
        reader.dispose()
        if writer.pool is not reader.pool:
            writer.dispose()
        unreachable = cannot_connect(url, exc)
        if unreachable is not None:
            raise unreachable from None
        raise
    return Store(reader, writer)


def shared_only(url: str) -> bool:
    """True for an in-memory SQLite URL: a second engine on it would open another, empty,
    database, so every reader must share the one store object (tests only)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    return (parsed.database or "") in ("", ":memory:") or parsed.query.get("mode") == "memory"


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    in_memory = shared_only(url)
    if in_memory:
        # One connection shared by every thread (the pool serialises nothing: tests only).
        engine = create_engine(parsed, poolclass=StaticPool,
                               connect_args={"check_same_thread": False})
    else:
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # The -wal and -shm files SQLite creates take this file's permissions.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(parsed, poolclass=QueuePool, pool_size=1, max_overflow=0,
                               connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _on_sqlite_connect(in_memory))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(in_memory: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from pysqlite (its legacy implicit BEGIN breaks transactions,
        # bpo-10740); SQLAlchemy's "begin" event emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal" and not in_memory:
                raise StoreError(f"SQLite refused write-ahead logging (journal_mode is {mode!r}); "
                                 "keep the store on a local disk, not a network share")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()
    return on_connect


def _on_sqlite_begin(conn: Connection) -> None:
    statement = conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN")
    if statement not in _BEGIN_STATEMENTS:
        raise StoreError(f"unexpected BEGIN statement {statement!r}")
    conn.exec_driver_sql(statement)


class Store(PeerMethods, OutgoingMethods, ReceiptMethods, ScheduleMethods, IncomingMethods,
            AuditMethods, ReportMethods, DocumentMethods, WitnessMethods,
            ReconciliationMethods, EdxmlIdMethods,
            CoordinationMethods, YearMethods, PetitionMethods):
    """The node's database. Methods are grouped by table in the ``store_*`` modules."""
