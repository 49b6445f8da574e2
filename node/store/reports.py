"""Read-only questions the status screen, the metrics and the auditor ask of the store.

Nothing here writes. Every method is one read on the reader engine (SQLite: a consistent
snapshot that never blocks the daemon's writers), returns plain frozen values, and keeps
memory bounded: lists that can grow with the years (receipts, kept files, audit entries) are
read page by page with a keyset (``after=...``), never all at once.

Times in the tables are RFC 3339 text written by the node in one format (UTC, ``Z``), so
``>=`` on the text is the same as ``>=`` on the time; the callers pass bounds in that format.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_

from lienthong.keys.jws import strict_json_object
from lienthong.node.store import schema as t
from lienthong.node.store.audit_chain import AuditEntry
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import ReceivedRow

_d = t.dispatches
_v = t.deliveries
_r = t.received
_a = t.audit


@dataclass(frozen=True, slots=True)
class PeerQueue:
    """What waits for one peer: how many documents, how many bytes, and the oldest of them."""

    peer_node_id: str
    count: int
    bytes: int
    oldest_message_id: str
    oldest_name: str
    oldest_created_at: str
    oldest_attempts: int
    oldest_offered_at: str | None
    oldest_last_error: str | None


@dataclass(frozen=True, slots=True)
class PeerTraffic:
    """Documents (and their plaintext bytes) delivered to and received from one peer."""

    peer_node_id: str
    sent_documents: int
    sent_bytes: int
    received_documents: int
    received_bytes: int


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A receipt kept in the store, with what it must match.

    ``table`` is ``deliveries`` (a peer's receipt for a document we sent; ``signer`` is that
    peer) or ``received`` (our own receipt for a document we received; ``signer`` is us and
    ``counterpart`` the sender).
    """

    table: str
    message_id: str
    signer: str
    counterpart: str
    receipt: str
    header_token: str
    sha256: str
    name: str
    path: str | None


@dataclass(frozen=True, slots=True)
class KeptFile:
    """A document the node kept in ``sent/`` or ``inbox/`` and the digest recorded for it."""

    folder: str
    message_id: str
    counterpart: str
    name: str
    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class FailureEvent:
    """One audited failure: its kind, the code in its detail (if any) and the peer."""

    kind: str
    code: str | None
    peer: str | None
    time: str


def _audit(row: Any) -> AuditEntry:
    return build(AuditEntry, row, detail_json=row.detail)


class ReportMethods(StoreBase):
    """Read-only reporting methods of ``Store``."""

    def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are queued, delivered and failed (every state present)."""
        with self._read() as conn:
            counts: dict[str, int] = dict(conn.execute(
                select(_v.c.state, func.count()).group_by(_v.c.state)).all())
        return {state: int(counts.get(state, 0)) for state in ("queued", "delivered", "failed")}

    def peer_queues(self) -> list[PeerQueue]:
        """Per peer with work waiting: the count, bytes and the oldest waiting document."""
        waiting = and_(_v.c.state == "queued", _d.c.state == "sending")
        joined = _v.join(_d, _v.c.message_id == _d.c.message_id)
        with self._read() as conn:
            totals = conn.execute(
                select(_v.c.peer_node_id, func.count(), func.sum(_d.c.size), func.min(_d.c.seq))
                .select_from(joined).where(waiting).group_by(_v.c.peer_node_id)).all()
            out = []
            for peer, count, size, oldest_seq in totals:
                oldest = conn.execute(
                    select(_d.c.message_id, _d.c.name, _d.c.created_at, _v.c.attempts,
                           _v.c.offered_at, _v.c.last_error)
                    .select_from(joined)
                    .where(_d.c.seq == oldest_seq, _v.c.peer_node_id == peer)).one()
                out.append(PeerQueue(peer, int(count), int(size or 0), oldest.message_id,
                                     oldest.name, oldest.created_at, int(oldest.attempts),
                                     oldest.offered_at, oldest.last_error))
        return sorted(out, key=lambda q: q.peer_node_id)

    def traffic_by_peer(self) -> list[PeerTraffic]:
        """Documents and bytes delivered to each peer (receipted) and received from each."""
        with self._read() as conn:
            sent = conn.execute(
                select(_v.c.peer_node_id, func.count(), func.sum(_d.c.size))
                .select_from(_v.join(_d, _v.c.message_id == _d.c.message_id))
                .where(_v.c.state == "delivered").group_by(_v.c.peer_node_id)).all()
            got = conn.execute(
                select(_r.c.sender_node_id, func.count(), func.sum(_r.c.size))
                .where(_r.c.state == "stored").group_by(_r.c.sender_node_id)).all()
        table: dict[str, list[int]] = {}
        for peer, count, size in sent:
            table.setdefault(peer, [0, 0, 0, 0])[0:2] = [int(count), int(size or 0)]
        for peer, count, size in got:
            table.setdefault(peer, [0, 0, 0, 0])[2:4] = [int(count), int(size or 0)]
        return [PeerTraffic(peer, *values) for peer, values in sorted(table.items())]

    def receipt_latency_pairs(self) -> list[tuple[str, str]]:
        """(created_at, receipt_at) of every delivered delivery: taken -> receipt verified."""
        with self._read() as conn:
            return [(row.created_at, row.receipt_at) for row in conn.execute(
                select(_d.c.created_at, _v.c.receipt_at)
                .select_from(_v.join(_d, _v.c.message_id == _d.c.message_id))
                .where(_v.c.state == "delivered", _v.c.receipt_at.is_not(None))).all()]

    def failure_events(self, kinds: Iterable[str], *, after_seq: int = 0,
                       since: str | None = None) -> tuple[int, list[FailureEvent]]:
        """Audited failures of ``kinds`` after ``after_seq`` (and at or after ``since``).

        Returns the last audit seq looked at, so a caller can fold new events into running
        counters (the log is append-only).
        """
        kinds = list(kinds)
        with self._read() as conn:
            tip = conn.execute(select(func.max(_a.c.seq))).scalar() or 0
            query = select(_a.c.kind, _a.c.peer, _a.c.detail, _a.c.time).where(
                _a.c.kind.in_(kinds), _a.c.seq > after_seq, _a.c.seq <= tip)
            if since is not None:
                query = query.where(_a.c.time >= since)
            rows = conn.execute(query.order_by(_a.c.seq)).all()
        events = []
        for kind, peer, detail, time in rows:
            events.append(FailureEvent(kind, _detail_code(detail), peer, time))
        return int(tip), events

    def count_received_since(self, since: str) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(_r).where(
                _r.c.state == "stored", _r.c.received_at >= since)).scalar_one())

    def count_sent_since(self, since: str) -> int:
        """Documents that reached ``sent/`` (every recipient receipted) since ``since``."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(_d).where(
                _d.c.state == "sent", _d.c.finished_at >= since)).scalar_one())

    def last_audit_of(self, kinds: Sequence[str]) -> AuditEntry | None:
        """The latest audit entry of one of ``kinds`` (e.g. when the daemon last started)."""
        with self._read() as conn:
            row = conn.execute(select(_a).where(_a.c.kind.in_(list(kinds)))
                               .order_by(_a.c.seq.desc()).limit(1)).first()
        return None if row is None else _audit(row)

    def audit_search(self, *, peers: Sequence[str] = (), kinds: Sequence[str] = (),
                     message_ids: Sequence[str] = (), digest: str | None = None,
                     since: str | None = None, until: str | None = None,
                     after_seq: int = 0, limit: int | None = None,
                     newest: bool = False) -> list[AuditEntry]:
        """Audit entries matching every filter given, in chain order.

        With ``newest`` the *last* ``limit`` matches are returned (still oldest first).
        """
        query = select(_a).where(_a.c.seq > after_seq)
        if peers:
            query = query.where(_a.c.peer.in_(list(peers)))
        if kinds:
            query = query.where(_a.c.kind.in_(list(kinds)))
        if message_ids:
            query = query.where(_a.c.message_id.in_(list(message_ids)))
        if digest is not None:
            query = query.where(_a.c.digest == digest)
        if since is not None:
            query = query.where(_a.c.time >= since)
        if until is not None:
            query = query.where(_a.c.time < until)
        query = query.order_by(_a.c.seq.desc() if newest else _a.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            entries = [_audit(row) for row in conn.execute(query).all()]
        return list(reversed(entries)) if newest else entries

    def find_message_ids(self, text: str, limit: int = 200) -> list[str]:
        """Message IDs a person may mean by ``text``: a document name containing it, a SHA-256
        equal to it, or (6 hex characters or more) a message ID starting with it."""
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = "%" + escaped + "%"
        lowered = text.lower()
        prefix = (lowered + "%") if len(lowered) >= 6 and all(
            c in "0123456789abcdef" for c in lowered) else None
        ids: list[str] = []
        with self._read() as conn:
            for table in (_d, _r):
                clauses = [table.c.name.like(pattern, escape="\\"), table.c.sha256 == lowered]
                if prefix is not None:
                    clauses.append(table.c.message_id.like(prefix))
                ids += [row.message_id for row in conn.execute(
                    select(table.c.message_id, table.c.meta).where(or_(*clauses)).limit(limit))
                    if not is_control_meta(row.meta)]
        return sorted(set(ids))

    def documents_with_prefix(self, prefix: str, limit: int = 20) -> list[tuple[str, str]]:
        """(message ID, name) of the documents sent or received whose message ID starts with
        ``prefix`` (lower-case hex), by message ID; the node's own control objects (statuses,
        recalls, key announcements: a ``kind`` in their metadata) are not documents here."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        found: dict[str, str] = {}
        with self._read() as conn:
            for table in (_d, _r):
                rows = conn.execute(select(table.c.message_id, table.c.name, table.c.meta)
                                    .where(table.c.message_id.like(prefix + "%"))
                                    .order_by(table.c.message_id).limit(limit * 4)).all()
                for row in rows:
                    if not is_control_meta(row.meta):
                        found.setdefault(row.message_id, row.name)
        return sorted(found.items())[:limit]

    def received_for_message(self, message_id: str) -> list[ReceivedRow]:
        """Every received row for ``message_id`` (one per sender; normally one)."""
        with self._read() as conn:
            return [build(ReceivedRow, row, meta=strict_json_object(row.meta.encode("utf-8")))
                    for row in conn.execute(select(_r).where(_r.c.message_id == message_id))
                    .all()]

    def delivery_receipts(self, *, after: tuple[str, str] = ("", ""),
                          limit: int = 500) -> list[StoredReceipt]:
        """A page of peers' receipts for documents we sent, after (message_id, peer)."""
        query = (select(_v.c.message_id, _v.c.peer_node_id, _v.c.receipt, _d.c.header_token,
                        _d.c.sha256, _d.c.name, _d.c.sent_path)
                 .select_from(_v.join(_d, _v.c.message_id == _d.c.message_id))
                 .where(_v.c.receipt.is_not(None),
                        tuple_(_v.c.message_id, _v.c.peer_node_id) > tuple_(*after))
                 .order_by(_v.c.message_id, _v.c.peer_node_id).limit(limit))
        with self._read() as conn:
            return [StoredReceipt("deliveries", row.message_id, row.peer_node_id, "",
                                  row.receipt, row.header_token, row.sha256, row.name,
                                  row.sent_path) for row in conn.execute(query).all()]

    def own_receipts(self, *, after: tuple[str, str] = ("", ""),
                     limit: int = 500) -> list[StoredReceipt]:
        """A page of the receipts we signed for documents received, after (message_id, sender)."""
        query = (select(_r.c.message_id, _r.c.sender_node_id, _r.c.receipt, _r.c.header_token,
                        _r.c.sha256, _r.c.name, _r.c.stored_path)
                 .where(_r.c.receipt.is_not(None),
                        tuple_(_r.c.message_id, _r.c.sender_node_id) > tuple_(*after))
                 .order_by(_r.c.message_id, _r.c.sender_node_id).limit(limit))
        with self._read() as conn:
            return [StoredReceipt("received", row.message_id, "", row.sender_node_id,
                                  row.receipt, row.header_token, row.sha256, row.name,
                                  row.stored_path) for row in conn.execute(query).all()]

    def inbox_files(self, *, after: tuple[str, str] = ("", ""),
                    limit: int = 500) -> list[KeptFile]:
        """A page of documents kept in inbox/, after (message_id, sender); paths are relative
        to the home, as recorded."""
        with self._read() as conn:
            rows = conn.execute(
                select(_r.c.message_id, _r.c.sender_node_id, _r.c.name, _r.c.stored_path,
                       _r.c.sha256, _r.c.size)
                .where(_r.c.state == "stored",
                       tuple_(_r.c.message_id, _r.c.sender_node_id) > tuple_(*after))
                .order_by(_r.c.message_id, _r.c.sender_node_id).limit(limit)).all()
        return [KeptFile("inbox", row.message_id, row.sender_node_id, row.name,
                         row.stored_path, row.sha256, int(row.size)) for row in rows]

    def sent_files(self, *, after: str = "", limit: int = 500) -> list[KeptFile]:
        """A page of documents kept in sent/, after message_id; paths are absolute."""
        with self._read() as conn:
            rows = conn.execute(
                select(_d.c.message_id, _d.c.target, _d.c.name, _d.c.sent_path, _d.c.sha256,
                       _d.c.size)
                .where(_d.c.state == "sent", _d.c.sent_path.is_not(None),
                       _d.c.message_id > after)
                .order_by(_d.c.message_id).limit(limit)).all()
        return [KeptFile("sent", row.message_id, row.target, row.name, row.sent_path,
                         row.sha256, int(row.size)) for row in rows]


def _detail_code(detail: str) -> str | None:
    try:
        value = json.loads(detail)
    except ValueError:
        return None
    code = value.get("code") if isinstance(value, dict) else None
    return code if isinstance(code, str) else None



#: The kinds of what clerks send (node/documents/metadata.py); any other ``kind`` in a row's
#: metadata is one of the node's own control objects (a status, a recall, a key announcement).
CLERK_KINDS = frozenset({"document", "message"})


def is_control(meta: Any) -> bool:
    """True for the metadata of a node's own control object, which people do not count as a
    document (``meta`` as a mapping)."""
    kind = meta.get("kind") if isinstance(meta, dict) else None
    return bool(kind) and kind not in CLERK_KINDS


def is_control_meta(meta_text: str | None) -> bool:
    """``is_control`` for metadata still in its stored JSON text."""
    if not meta_text or '"kind"' not in meta_text:
        return False
    try:
        return is_control(json.loads(meta_text))
    except ValueError:
        return False
