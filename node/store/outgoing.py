"""Outgoing documents (``dispatches``, one ``deliveries`` row per recipient) and the retry schedule.

A dispatch is recorded, with a queued delivery for each recipient, in the same transaction
once its envelope is in the spool. Deliveries leave ``queued`` only through a verified receipt
(``delivered``) or a decision that this recipient will not get it (``failed``); a dispatch
becomes ``sent`` only when every delivery has a verified receipt (docs/reliability.md §1.2).
The transition tables are in ``lienthong.node.store.records``.

The queue order is priority first (0 flash ... 3 normal), then the order documents were taken
(``dispatches.seq``, assigned here), so an urgent document never waits behind a large normal one
and equal documents go oldest first whatever the clock did.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from lienthong.keys.identity import check_time
from lienthong.keys.jws import strict_json_object
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.edxml_ids import record_document_id
from lienthong.node.store.records import (
    DELIVERY_TRANSITIONS,
    DISPATCH_TRANSITIONS,
    DeliveryRow,
    DispatchRow,
    DuplicateMessage,
    InvalidTransition,
    NewDispatch,
    NotFound,
    QueuedDelivery,
    ReceiptMismatch,
    ScheduleRow,
    check_transition,
    meta_json,
    tracked_row,
)

_d = t.dispatches
_v = t.deliveries
_s = t.peer_schedule

# The statements of the delivery path, built once with bind parameters. SQLAlchemy memoises a
# statement object's cache key, so a prebuilt statement skips the construction and cache-key
# work that otherwise cost more than the SQL itself (docs/benchmarks.md, "store statements").
_KNOWN = (select(_d.c.message_id)
          .where(_d.c.message_id.in_(bindparam("ids", expanding=True))).limit(1))
_LAST_SEQ = select(func.max(_d.c.seq))
_INSERT_DISPATCH = insert(_d)
_INSERT_DELIVERY = insert(_v)
_INSERT_TRACKED = insert(t.tracked_documents)
_DISPATCH_BY_ID = select(_d).where(_d.c.message_id == bindparam("mid"))
_DISPATCHES_OF = select(_d).where(_d.c.message_id.in_(bindparam("mids", expanding=True)))
_DELIVERIES_OF = (select(_v).where(_v.c.message_id.in_(bindparam("mids", expanding=True)))
                  .order_by(_v.c.message_id, _v.c.peer_node_id))
_QUEUED = (select(_v.c.message_id, _v.c.peer_node_id, _d.c.spool_dir, _d.c.header_token,
                  _d.c.ciphertext_size, _d.c.priority, _d.c.name, _d.c.size, _d.c.sha256,
                  _d.c.created_at, _v.c.attempts, _v.c.bytes_sent)
           .select_from(_v.join(_d, _v.c.message_id == _d.c.message_id))
           .where(_v.c.peer_node_id == bindparam("peer"), _v.c.state == "queued",
                  _d.c.state == "sending")
           .order_by(_d.c.priority, _d.c.seq).limit(bindparam("lim")))
_QUEUE_DEPTHS = (select(_v.c.peer_node_id, func.count())
                 .select_from(_v.join(_d, _v.c.message_id == _d.c.message_id))
                 .where(_v.c.state == "queued", _d.c.state == "sending")
                 .group_by(_v.c.peer_node_id))
_DELIVERY = select(_v).where(_v.c.message_id == bindparam("w_mid"),
                             _v.c.peer_node_id == bindparam("w_peer"))
#: SET columns come from the parameters given to ``execute`` (``w_*`` name the row).
_UPDATE_DELIVERY = update(_v).where(_v.c.message_id == bindparam("w_mid"),
                                    _v.c.peer_node_id == bindparam("w_peer"))
_COUNT_ATTEMPT = _UPDATE_DELIVERY.values(attempts=_v.c.attempts + 1)
_PENDING = select(func.count()).select_from(_v).where(_v.c.message_id == bindparam("mid"),
                                                      _v.c.state != "delivered")
_SET_DIGEST = (update(_d).where(_d.c.message_id == bindparam("w_mid"), _d.c.sha256.is_(None))
               .values(sha256=bindparam("sha256")))
_DIGEST_OF = select(_d.c.sha256).where(_d.c.message_id == bindparam("mid"))
_DISPATCH_STATE = select(_d.c.state, _d.c.sent_path).where(_d.c.message_id == bindparam("mid"))
_UPDATE_DISPATCH = update(_d).where(_d.c.message_id == bindparam("w_mid"))
# ``_current_node_ids``: built per call, these were a third of ``add_dispatch``'s time.
_PRESENT = (select(t.peers.c.node_id)
            .where(t.peers.c.node_id.in_(bindparam("ids", expanding=True))))
_FORMER = (select(t.peers.c.node_id)
           .join(t.peer_keys, t.peer_keys.c.node_id == t.peers.c.node_id)
           .where(t.peer_keys.c.kind == "identity", t.peer_keys.c.kid == bindparam("kid")))


def _meta(text: str) -> dict[str, Any]:
    return strict_json_object(text.encode("utf-8"))


class OutgoingMethods(StoreBase):
    """Outgoing-document methods of ``Store``."""

    def add_dispatch(self, dispatch: NewDispatch, now: str) -> DispatchRow:
        """Record one packaged document and queue it for each of its recipients."""
        return self.add_dispatches([dispatch], now)[0]

    def add_dispatches(self, batch: Sequence[NewDispatch], now: str) -> list[DispatchRow]:
        """Record several packaged documents in one transaction (one fsync for all)."""
        check_time(now)
        batch = list(batch)
        ids = [item.message_id for item in batch]
        if len(set(ids)) != len(ids):
            raise DuplicateMessage("the batch names the same message ID twice")
        if not batch:
            return []
        with self.transaction() as conn:
            known = conn.execute(_KNOWN, {"ids": ids}).scalar()
            if known is not None:
                raise DuplicateMessage(f"message {known} is already recorded as a dispatch")
            current = _current_node_ids(conn, {peer for item in batch for peer in item.recipients})
            batch = [item if not current else _with_recipients(
                item, tuple(dict.fromkeys(current.get(peer, peer) for peer in item.recipients)))
                for item in batch]
            last = conn.execute(_LAST_SEQ).scalar() or 0
            conn.execute(_INSERT_DISPATCH, [
                {"message_id": item.message_id, "seq": last + 1 + index, "name": item.name,
                 "target": item.target, "spool_dir": item.spool_dir,
                 "header_token": item.header_token, "size": item.size, "sha256": item.sha256,
                 "ciphertext_size": item.ciphertext_size, "priority": item.priority,
                 "meta": meta_json(item.meta), "state": "sending", "created_at": now}
                for index, item in enumerate(batch)])
            for item in batch:
                record_document_id(conn, "sent", item.meta, item.message_id)
            conn.execute(_INSERT_DELIVERY, [
                {"message_id": item.message_id, "peer_node_id": peer, "state": "queued",
                 "attempts": 0, "bytes_sent": 0}
                for item in batch for peer in item.recipients])
            tracked = [row for row in (tracked_row("sent", "", item.message_id, item.meta, now)
                                       for item in batch) if row is not None]
            if tracked:
                conn.execute(_INSERT_TRACKED, tracked)
        return [DispatchRow(
            message_id=item.message_id, name=item.name, target=item.target,
            spool_dir=item.spool_dir, header_token=item.header_token, size=item.size,
            sha256=item.sha256, ciphertext_size=item.ciphertext_size, priority=item.priority,
            meta=_meta(meta_json(item.meta)), state="sending", created_at=now,
            finished_at=None, sent_path=None, error=None,
            deliveries=tuple(DeliveryRow(item.message_id, peer, "queued", 0, 0, None, None,
                                         None, None) for peer in item.recipients))
            for item in batch]

    def record_digest(self, message_id: str, sha256: str) -> bool:
        """A streamed seal's trailer is signed: record the SHA-256 it names. True if recorded
        now, False if the row had it already (the same one: a second transfer, or the
        receipt, got there first); StoreError if it names another one."""
        if len(sha256) != 64 or sha256.strip("0123456789abcdef"):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        with self.transaction() as conn:
            changed = conn.execute(_SET_DIGEST, {"w_mid": message_id, "sha256": sha256}).rowcount
            if changed:
                return True
            kept = conn.execute(_DIGEST_OF, {"mid": message_id}).first()
        if kept is None:
            raise NotFound(f"message {message_id} is not a dispatch")
        if kept.sha256 != sha256:
            raise ReceiptMismatch(f"message {message_id} was recorded with SHA-256 "
                                  f"{kept.sha256}, not {sha256}")
        return False

    def _load_dispatches(self, conn: Connection, where: Any, limit: int | None = None
                         ) -> list[DispatchRow]:
        query = select(_d).where(where).order_by(_d.c.seq.desc())
        return self._with_deliveries(
            conn, conn.execute(query.limit(limit) if limit is not None else query).all())

    def _with_deliveries(self, conn: Connection, rows: Sequence[Any]) -> list[DispatchRow]:
        if not rows:
            return []
        by_message: dict[str, list[DeliveryRow]] = {}
        delivery_rows = conn.execute(_DELIVERIES_OF,
                                     {"mids": [row.message_id for row in rows]}).all()
        for delivery in delivery_rows:
            by_message.setdefault(delivery.message_id, []).append(build(DeliveryRow, delivery))
        return [build(DispatchRow, row, meta=_meta(row.meta),
                      deliveries=tuple(by_message.get(row.message_id, ())))
                for row in rows]

    def get_dispatch(self, message_id: str) -> DispatchRow | None:
        with self._read() as conn:
            found = self._with_deliveries(
                conn, conn.execute(_DISPATCH_BY_ID, {"mid": message_id}).all())
            return found[0] if found else None

    def dispatches_by_ids(self, message_ids: Sequence[str]) -> dict[str, DispatchRow]:
        """The dispatches named (with their deliveries); absent IDs are left out."""
        if not message_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(_DISPATCHES_OF, {"mids": list(dict.fromkeys(message_ids))}).all()
            return {row.message_id: row for row in self._with_deliveries(conn, rows)}

    def recent_dispatches(self, limit: int) -> list[DispatchRow]:
        """The last ``limit`` documents taken, newest first, with their deliveries."""
        with self._read() as conn:
            return self._load_dispatches(conn, _d.c.seq.is_not(None), limit)

    def dispatches_by_state(self) -> dict[str, int]:
        """How many dispatches are sending, sent and failed (every state present)."""
        with self._read() as conn:
            counts: dict[str, int] = dict(conn.execute(
                select(_d.c.state, func.count()).group_by(_d.c.state)).all())
        return {state: int(counts.get(state, 0)) for state in DISPATCH_TRANSITIONS}

    def spool_message_ids(self) -> set[str]:
        """Message IDs still ``sending``: their spool folders are in use. At start-up, a spool
        folder not named here was left by a crash before its dispatch was recorded (or after
        it finished) and can be cleaned up."""
        with self._read() as conn:
            return set(conn.execute(select(_d.c.message_id).where(_d.c.state == "sending"))
                       .scalars().all())

    def queued_deliveries(self, peer_node_id: str, limit: int,
                          skip: Collection[str] = ()) -> list[QueuedDelivery]:
        """What to offer ``peer_node_id`` next: flash before normal, then oldest first.

        The first ``limit`` queued deliveries, less those whose message ID is in ``skip``
        (the link's documents already offered: it asks after every batch of receipts, and
        building records it would only skip was most of this query's cost)."""
        with self._read() as conn:
            return [build(QueuedDelivery, row) for row in
                    conn.execute(_QUEUED, {"peer": peer_node_id, "lim": limit}).all()
                    if row.message_id not in skip]

    def queue_depths(self) -> dict[str, int]:
        """Queued deliveries per peer node ID (peers with none are absent)."""
        with self._read() as conn:
            return {node: int(count) for node, count in conn.execute(_QUEUE_DEPTHS).all()}

    def _delivery(self, conn: Connection, message_id: str, peer_node_id: str) -> Any:
        row = conn.execute(_DELIVERY, {"w_mid": message_id, "w_peer": peer_node_id}).first()
        if row is None:
            raise NotFound(f"message {message_id} has no delivery to {peer_node_id}")
        return row

    def _update_delivery(self, conn: Connection, message_id: str, peer_node_id: str,
                         **values: Any) -> None:
        result = conn.execute(_UPDATE_DELIVERY,
                              {"w_mid": message_id, "w_peer": peer_node_id, **values})
        if result.rowcount == 0:
            raise NotFound(f"message {message_id} has no delivery to {peer_node_id}")

    def record_offer(self, message_id: str, peer_node_id: str, now: str) -> None:
        """Count one more attempt to send this document to this peer."""
        check_time(now)
        with self.transaction() as conn:
            result = conn.execute(_COUNT_ATTEMPT, {"w_mid": message_id, "w_peer": peer_node_id,
                                                   "offered_at": now})
            if result.rowcount == 0:
                raise NotFound(f"message {message_id} has no delivery to {peer_node_id}")

    def record_transfers(self, offers: Sequence[tuple[str, str, str]],
                         progress: Sequence[tuple[str, str, int]]) -> None:
        """``record_offer`` for each of ``offers`` (message ID, peer, time) and
        ``record_progress`` for each of ``progress`` (message ID, peer, bytes sent): one
        statement per kind for all of them (a link's transfer notes, node/delivery/notes.py).
        NotFound if a delivery is missing; the caller's savepoint then keeps none of them."""
        for _, _, now in offers:
            check_time(now)
        with self.transaction() as conn:
            for statement, rows in (
                    (_COUNT_ATTEMPT, [{"w_mid": mid, "w_peer": peer, "offered_at": now}
                                      for mid, peer, now in offers]),
                    (_UPDATE_DELIVERY, [{"w_mid": mid, "w_peer": peer, "bytes_sent": sent}
                                        for mid, peer, sent in progress])):
                # A (message, peer) names at most one delivery: all were there iff the count
                # of rows changed is the count of notes.
                if len(rows) > 1 and conn.dialect.supports_sane_multi_rowcount:
                    changed = conn.execute(statement, rows).rowcount
                else:
                    changed = sum(conn.execute(statement, row).rowcount for row in rows)
                if changed != len(rows):
                    raise NotFound("a transfer note names a delivery that is not there")

    def record_progress(self, message_id: str, peer_node_id: str, bytes_sent: int) -> None:
        """How far a transfer got (cheap; callers throttle how often they call it)."""
        with self.transaction() as conn:
            self._update_delivery(conn, message_id, peer_node_id, bytes_sent=bytes_sent)

    def record_delivery_error(self, message_id: str, peer_node_id: str, error: str) -> None:
        """Note why the last attempt failed; the delivery stays queued and will be retried."""
        with self.transaction() as conn:
            self._update_delivery(conn, message_id, peer_node_id, last_error=error)

    def _pending(self, conn: Connection, message_id: str) -> int:
        return int(conn.execute(_PENDING, {"mid": message_id}).scalar_one())

    def record_receipt(self, message_id: str, peer_node_id: str, receipt_token: str,
                       now: str) -> bool:
        """Record a *verified* receipt; return True when every recipient has now receipted.

        The same receipt again is a no-op with the same answer (at-least-once delivery). A
        different receipt for the same delivery raises ``ReceiptMismatch``; the first is kept.
        """
        check_time(now)
        with self.transaction() as conn:
            row = self._delivery(conn, message_id, peer_node_id)
            if row.receipt is not None:
                if row.receipt != receipt_token:
                    raise ReceiptMismatch(f"{peer_node_id} already gave a different receipt "
                                          f"for message {message_id}; the first one is kept")
            else:
                check_transition(DELIVERY_TRANSITIONS,
                                 f"the delivery of {message_id} to {peer_node_id}",
                                 row.state, "delivered")
                self._update_delivery(conn, message_id, peer_node_id, state="delivered",
                                      receipt=receipt_token, receipt_at=now, last_error=None)
            return self._pending(conn, message_id) == 0

    def fail_delivery(self, message_id: str, peer_node_id: str, reason: str,
                      now: str) -> None:
        """This recipient will not get the document (a receipt already recorded is final)."""
        check_time(now)
        with self.transaction() as conn:
            row = self._delivery(conn, message_id, peer_node_id)
            if row.state == "failed":
                return
            check_transition(DELIVERY_TRANSITIONS,
                             f"the delivery of {message_id} to {peer_node_id}",
                             row.state, "failed")
            self._update_delivery(conn, message_id, peer_node_id, state="failed",
                                  last_error=reason)

    def _dispatch_state(self, conn: Connection, message_id: str) -> Any:
        row = conn.execute(_DISPATCH_STATE, {"mid": message_id}).first()
        if row is None:
            raise NotFound(f"there is no dispatch with message ID {message_id}")
        return row

    def mark_dispatch_sent(self, message_id: str, sent_path: str, now: str) -> None:
        """The document is in ``sent/`` (``sent_path``); allowed only once all have receipted."""
        check_time(now)
        with self.transaction() as conn:
            row = self._dispatch_state(conn, message_id)
            if row.state == "sent" and row.sent_path == sent_path:
                return
            check_transition(DISPATCH_TRANSITIONS, f"dispatch {message_id}", row.state, "sent")
            pending = self._pending(conn, message_id)
            if pending:
                raise InvalidTransition(f"dispatch {message_id} still waits for {pending} "
                                        "receipt(s): only receipts make a document sent")
            conn.execute(_UPDATE_DISPATCH, {"w_mid": message_id, "state": "sent",
                                            "sent_path": sent_path, "finished_at": now,
                                            "error": None})

    def fail_dispatch(self, message_id: str, reason: str, now: str) -> None:
        """Give up on a document: it and its still-queued deliveries become ``failed``."""
        check_time(now)
        with self.transaction() as conn:
            row = self._dispatch_state(conn, message_id)
            if row.state == "failed":
                return
            check_transition(DISPATCH_TRANSITIONS, f"dispatch {message_id}", row.state,
                             "failed")
            conn.execute(update(_d).where(_d.c.message_id == message_id).values(
                state="failed", error=reason, finished_at=now))
            conn.execute(update(_v).where(_v.c.message_id == message_id,
                                          _v.c.state == "queued")
                         .values(state="failed", last_error=reason))


class ScheduleMethods(StoreBase):
    """Per-peer connection schedule methods of ``Store`` (back-off survives restarts)."""

    def schedule_for(self, node_id: str) -> ScheduleRow:
        """The peer's schedule; a peer never tried has no failures and is due now."""
        with self._read() as conn:
            row = conn.execute(select(_s).where(_s.c.node_id == node_id)).first()
        if row is None:
            return ScheduleRow(node_id, 0, 0.0, None, None, None)
        return build(ScheduleRow, row)

    def schedules(self) -> list[ScheduleRow]:
        with self._read() as conn:
            return [build(ScheduleRow, row)
                    for row in conn.execute(select(_s).order_by(_s.c.node_id)).all()]

    def _put_schedule(self, node_id: str, **values: Any) -> ScheduleRow:
        with self.transaction() as conn:
            row = conn.execute(select(_s).where(_s.c.node_id == node_id)).first()
            if row is None:
                fresh = {"node_id": node_id, "failures": 0, "next_attempt_at": 0.0}
                conn.execute(insert(_s).values(**{**fresh, **values}))
            else:
                conn.execute(update(_s).where(_s.c.node_id == node_id).values(**values))
            return build(ScheduleRow, conn.execute(select(_s).where(_s.c.node_id == node_id))
                         .one())

    def record_connect_failure(self, node_id: str, error: str, next_attempt_at: float,
                               now: str) -> ScheduleRow:
        """One more failed attempt; try again at ``next_attempt_at`` (the caller's back-off)."""
        check_time(now)
        with self.transaction():
            failures = self.schedule_for(node_id).failures + 1
            return self._put_schedule(node_id, failures=failures,
                                      next_attempt_at=float(next_attempt_at), last_error=error)

    def record_connected(self, node_id: str, now: str) -> ScheduleRow:
        """We reached the peer: the back-off starts again from zero."""
        check_time(now)
        return self._put_schedule(node_id, failures=0, next_attempt_at=0.0, last_error=None,
                                  last_connected_at=now, last_seen_at=now)

    def record_seen(self, node_id: str, now: str) -> ScheduleRow:
        """The peer connected to us (it is alive), without touching our back-off."""
        check_time(now)
        return self._put_schedule(node_id, last_seen_at=now)


def _current_node_ids(conn: Connection, recipients: set[str]) -> dict[str, str]:
    """For recipients that are no longer a peer's node ID but a *former* identity of one (it
    rotated its identity while the document was being sealed), that peer's node ID now.

    Done here, in the transaction that queues the delivery, because the continuation is
    applied in a transaction of its own: whichever commits first, the delivery ends up under
    the node ID the peer has (continue_peer_identity moves what was queued before it).
    """
    present = set(conn.execute(_PRESENT, {"ids": list(recipients)}).scalars())
    moved = {}
    for former in recipients - present:
        row = conn.execute(_FORMER, {"kid": former}).first()
        if row is not None:
            moved[former] = row[0]
    return moved


def _with_recipients(item: Any, recipients: tuple[str, ...]) -> Any:
    return dataclasses.replace(item, recipients=recipients)
