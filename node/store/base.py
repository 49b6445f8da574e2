"""What every part of the store shares: the engines, and the one open transaction per thread.

Each store method is one transaction by itself. To make several changes commit together -- a
state change and the audit entry that records it, a batch of receipts, a receipt plus
"dispatch sent" -- a unit of work opens ``store.transaction()`` and calls the methods inside
it; they join the open transaction (no savepoints: an exception anywhere rolls back all of
it). The open transaction belongs to the thread that opened it, so a unit of work must finish
it on the thread it runs on (the database thread).

Reads outside a transaction use the reader engine (SQLite: deferred ``BEGIN``, a consistent
snapshot that never blocks writers); transactions use the writer engine (SQLite:
``BEGIN IMMEDIATE``, the write lock taken up front, so a read-then-write never fails half way
with "database is locked" and two processes can never both extend the audit chain).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from lienthong.node.store.records import StoreError

_SAVEPOINT = "SAVEPOINT lienthong_part"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT lienthong_part"
_RELEASE = "RELEASE SAVEPOINT lienthong_part"

_T = TypeVar("_T")


def build(cls: type[_T], row: Any, **override: Any) -> _T:
    """A record from a result row: fields named like columns, some given explicitly."""
    mapping = row._mapping
    return cls(**{f.name: override[f.name] if f.name in override else mapping[f.name]
                  for f in fields(cls)})  # type: ignore[arg-type]


class StoreBase:
    """Engines and transactions; the table-specific methods live in the ``store_*`` mixins."""

    def __init__(self, reader: Engine, writer: Engine) -> None:
        self._reader = reader
        self._writer = writer
        self._local = threading.local()

    def close(self) -> None:
        """Close the pooled connections (the store must not be used afterwards); on
        PostgreSQL this also lets the node's advisory lock go."""
        self._reader.dispose()
        if self._writer.pool is not self._reader.pool:
            self._writer.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; store methods called inside it (on this thread) join it."""
        active = getattr(self._local, "conn", None)
        if active is not None:
            if getattr(self._local, "read_only", False):
                raise StoreError("a write was attempted inside a read-only view of the store")
            yield active
            return
        with self._writer.begin() as conn:
            self._local.conn = conn
            self._local.audit_tip = None
            try:
                yield conn
            finally:
                self._local.conn = None
                self._local.audit_tip = None

    def connection_lost(self, exc: BaseException) -> bool:
        """True when ``exc`` is a lost connection to a database server (PostgreSQL), after
        which the same work may run again; never for SQLite, whose file does not go away."""
        if self._writer.dialect.name != "postgresql":
            return False
        from lienthong.node.store.postgresql import connection_lost
        return connection_lost(exc)

    def rolled_back_to_savepoint(self) -> None:
        """Part of the open transaction was undone (group commit): forget what was cached
        about it, such as the audit chain's tip."""
        self._local.audit_tip = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside an open transaction: a part of it that a failure undoes alone (the exception
        still propagates), so one item of a batched unit of work can fail without the others.
        Straight on the driver's cursor, as the group commit's own savepoints (SQLAlchemy's
        ``begin_nested`` compiles a new clause each time); standard SQL."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise StoreError("a savepoint needs an open transaction")
        cursor = conn.connection.cursor()
        try:
            cursor.execute(_SAVEPOINT)
            try:
                yield
            except BaseException:
                cursor.execute(_ROLLBACK_TO)
                cursor.execute(_RELEASE)
                self.rolled_back_to_savepoint()
                raise
            cursor.execute(_RELEASE)
        finally:
            cursor.close()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read transaction that store reads on this thread join: a consistent view.

        Built for the status snapshot's dozen queries, which then see one moment of the store
        (SQLite: one deferred ``BEGIN``, a WAL snapshot that neither waits for the writer nor
        blocks it). Inside an open transaction it simply joins that one. A write inside it is
        refused (``transaction`` raises ``StoreError``) rather than silently run on the reader.
        """
        active = getattr(self._local, "conn", None)
        if active is not None:
            yield active
            return
        with self._reader.connect() as conn, conn.begin():
            self._local.conn = conn
            self._local.read_only = True
            try:
                yield conn
            finally:
                self._local.conn = None
                self._local.read_only = False

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        active = getattr(self._local, "conn", None)
        if active is not None:
            yield active
            return
        with self._reader.connect() as conn:
            yield conn
