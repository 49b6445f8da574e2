"""The audit log's tables: a hash-chained list of events and the signed heads of that chain.

``append_audit`` extends the chain (``lienthong.node.store.audit_chain`` computes the hashes)
inside the caller's transaction when there is one, so an event and the state change it records
commit together or not at all. The audit entry's ``seq`` is chosen here (last + 1) because it is
part of the hashed fields; the write lock (SQLite ``BEGIN IMMEDIATE``) and the primary key on
``seq`` plus the UNIQUE ``prev_hash`` mean two writers can never fork the chain: on a database
without SQLite's lock the loser gets an integrity error and must retry.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from lienthong.keys.identity import check_time
from lienthong.node.store import schema as t
from lienthong.node.store.audit_chain import (
    GENESIS_HASH,
    AuditEntry,
    canonical_detail,
    entry_hash_of_stored,
)
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import AuditHead, Conflict, NotFound, check_message_id

_a = t.audit
_h = t.audit_heads

# Built once: SQLAlchemy then reuses the compiled form from its cache key, which it memoises
# on the statement object. Building ``insert(...).values(...)`` per call cost more than the
# SQL itself (~1 ms of a 2 ms append on the benchmark machine; docs/benchmarks.md).
_TIP = select(_a.c.seq, _a.c.hash).order_by(_a.c.seq.desc()).limit(1)
_INSERT = insert(_a)
_COLUMNS = ("seq", "time", "kind", "peer", "message_id", "digest", "detail", "prev_hash", "hash")


class _DriverInsert:
    """The audit INSERT compiled once for a dialect and run on the driver's cursor.

    Even prebuilt, a Core ``execute`` cost more than the insert itself and was the largest
    single item of the sender's database thread (py-spy, docs/benchmarks.md): seven entries
    per delivered document. The columns are plain text and integers (no type processing);
    the cursor belongs to the connection of the open transaction, so the row commits (or
    rolls back, savepoints included) with everything else. Standard SQL for every dialect:
    the compiled form names the parameter style.
    """

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def __call__(self, conn: Any, row: dict[str, Any]) -> None:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = _INSERT.compile(dialect=dialect, column_keys=list(_COLUMNS))
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[dialect.name] = (str(compiled), order)
        sql, order = found
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, tuple(row[key] for key in order) if order is not None else row)
        finally:
            cursor.close()

    def many(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` with one ``executemany`` on the driver's cursor."""
        if len(rows) == 1:
            self(conn, rows[0])
            return
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            self(conn, rows[0])
            rows = rows[1:]
            found = self._compiled[dialect.name]
        sql, order = found
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, [tuple(row[key] for key in order) for row in rows]
                               if order is not None else rows)
        finally:
            cursor.close()


_insert_entry = _DriverInsert()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event for ``append_audits``: the arguments of ``append_audit``."""

    kind: str
    time: str
    peer: str | None = None
    message_id: str | None = None
    digest: str | None = None
    detail: Mapping[str, Any] | None = None


def _check_key(what: str, value: str | None, longest: int, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > longest:
        raise ValueError(f"audit {what} {value!r} must be 1 to {longest} characters")


def _checked(event: AuditEvent) -> str:
    """Validate an event's search keys and time; its detail as canonical JSON."""
    check_time(event.time)
    _check_key("kind", event.kind, 64, required=True)
    _check_key("peer", event.peer, 200)
    _check_key("digest", event.digest, 128)
    if event.message_id is not None:
        check_message_id(event.message_id)
    return canonical_detail(event.detail)


def _entry(row: Any) -> AuditEntry:
    return build(AuditEntry, row, detail_json=row.detail)


class AuditMethods(StoreBase):
    """Audit log methods of ``Store``."""

    def append_audit(self, kind: str, now: str, *, peer: str | None = None,
                     message_id: str | None = None, digest: str | None = None,
                     detail: Mapping[str, Any] | None = None) -> AuditEntry:
        """Append one event to the chain (joining the caller's transaction, if any).

        ``kind``, ``peer``, ``message_id`` and ``digest`` are indexed search keys, so they take
        validated values only (a peer name or node ID, a 32-hex message ID, a hex digest);
        anything a peer sent that failed validation belongs in ``detail``.
        """
        detail_json = _checked(AuditEvent(kind=kind, time=now, peer=peer, message_id=message_id,
                                          digest=digest, detail=detail))
        with self.transaction() as conn:
            prev_seq, prev_hash = self._tip_in(conn)
            seq = prev_seq + 1
            entry = AuditEntry(seq=seq, time=now, kind=kind, peer=peer, message_id=message_id,
                               digest=digest, detail_json=detail_json, prev_hash=prev_hash,
                               hash=entry_hash_of_stored(prev_hash, seq, now, kind, peer,
                                                         message_id, digest, detail_json))
            _insert_entry(conn, {
                "seq": entry.seq, "time": entry.time, "kind": entry.kind, "peer": entry.peer,
                "message_id": entry.message_id, "digest": entry.digest,
                "detail": entry.detail_json, "prev_hash": entry.prev_hash, "hash": entry.hash})
            self._local.audit_tip = (entry.seq, entry.hash)
        return entry

    def append_audits(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Append several events to the chain in their order, in one INSERT of many rows
        (joining the caller's transaction, if any): the same entries as ``append_audit`` once
        per event, without a driver call per entry (a unit of work of a batch of documents
        appends a few per document; docs/benchmarks.md, History 47). Every event is checked
        before any is written."""
        if not events:
            return []
        checked = [(event, _checked(event)) for event in events]
        entries: list[AuditEntry] = []
        with self.transaction() as conn:
            seq, prev_hash = self._tip_in(conn)
            for event, detail_json in checked:
                seq += 1
                entry = AuditEntry(
                    seq=seq, time=event.time, kind=event.kind, peer=event.peer,
                    message_id=event.message_id, digest=event.digest, detail_json=detail_json,
                    prev_hash=prev_hash, hash=entry_hash_of_stored(
                        prev_hash, seq, event.time, event.kind, event.peer, event.message_id,
                        event.digest, detail_json))
                entries.append(entry)
                prev_hash = entry.hash
            _insert_entry.many(conn, [
                {"seq": e.seq, "time": e.time, "kind": e.kind, "peer": e.peer,
                 "message_id": e.message_id, "digest": e.digest, "detail": e.detail_json,
                 "prev_hash": e.prev_hash, "hash": e.hash} for e in entries])
            self._local.audit_tip = (entries[-1].seq, entries[-1].hash)
        return entries

    def _tip_in(self, conn: Any) -> tuple[int, str]:
        # The tip read by the previous append of this transaction (the write lock is held, so
        # no other writer can have moved it): one SELECT less per entry when a unit of work --
        # or a group-commit batch -- appends several.
        tip = getattr(self._local, "audit_tip", None)
        if tip is None:
            last = conn.execute(_TIP).first()
            tip = (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)
        return tip

    def audit_tip(self) -> tuple[int, str]:
        """(seq, hash) of the last entry; (0, 64 zeros) for an empty log."""
        with self._read() as conn:
            last = conn.execute(_TIP).first()
        return (int(last.seq), last.hash) if last is not None else (0, GENESIS_HASH)

    def last_started_node_id(self) -> str | None:
        """The node ID of the last ``node-started`` entry: whose store this is (None when no
        node has run on it yet)."""
        with self._read() as conn:
            detail = conn.execute(select(_a.c.detail).where(_a.c.kind == "node-started")
                                  .order_by(_a.c.seq.desc()).limit(1)).scalar()
        if detail is None:
            return None
        node_id = json.loads(detail).get("node_id")
        return node_id if isinstance(node_id, str) else None

    def audit_entries(self, *, after_seq: int = 0, limit: int | None = None,
                      kind: str | None = None, peer: str | None = None,
                      message_id: str | None = None) -> list[AuditEntry]:
        """Entries with seq > ``after_seq`` in chain order, optionally filtered.

        For ``verify_chain`` use no filters and page with ``after_seq``/``limit``.
        """
        query = select(_a).where(_a.c.seq > after_seq)
        if kind is not None:
            query = query.where(_a.c.kind == kind)
        if peer is not None:
            query = query.where(_a.c.peer == peer)
        if message_id is not None:
            query = query.where(_a.c.message_id == message_id)
        query = query.order_by(_a.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_entry(row) for row in conn.execute(query).all()]

    def record_audit_head(self, seq: int, hash: str, signature: str, now: str) -> bool:
        """Keep a signed head; False if that seq already has one. The head must match the log."""
        check_time(now)
        with self.transaction() as conn:
            stored = conn.execute(select(_a.c.hash).where(_a.c.seq == seq)).scalar()
            if stored is None:
                raise NotFound(f"there is no audit entry {seq} to sign")
            if stored != hash:
                raise Conflict(f"audit entry {seq} has hash {stored}, not {hash}")
            if conn.execute(select(_h.c.seq).where(_h.c.seq == seq)).first() is not None:
                return False
            conn.execute(insert(_h).values(seq=seq, hash=hash, signature=signature, time=now))
        return True

    def audit_heads(self) -> list[AuditHead]:
        """Every signed head, oldest first (verify each signature before trusting it)."""
        with self._read() as conn:
            return [build(AuditHead, row)
                    for row in conn.execute(select(_h).order_by(_h.c.seq)).all()]

    def last_audit_head(self) -> AuditHead | None:
        """The latest signed head (verify its signature before trusting it)."""
        with self._read() as conn:
            row = conn.execute(select(_h).order_by(_h.c.seq.desc()).limit(1)).first()
        return build(AuditHead, row) if row is not None else None
