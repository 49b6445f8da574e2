"""Incoming documents (``received``): idempotent reception keyed on (sender, message ID).

Publishing is two commits around the file system work, so a crash at any point is recoverable:

1. ``begin_publish`` records the verified document as ``publishing`` (where it will go);
2. the caller writes it into ``inbox/<sender>/``, fsyncs file and folder, signs the receipt;
3. ``complete_publish`` stores the receipt and marks it ``stored`` (a synchronous commit).

The sidecars (``NAME.meta.json``, ``NAME.receipt.jws``) are written after 3, off the receipt's
path: ``sidecars_due`` holds each document from 1 until ``sidecars_written``, so start-up
writes the ones a crash interrupted (``sidecars_due_rows``).

At start-up, ``publishing_rows`` lists documents caught between 1 and 3: the caller checks the
inbox and either completes them or ``abandon_publish``es them so the sender's retry brings them
again. A sender retrying a ``stored`` document gets the stored receipt back
(docs/reliability.md §1.1).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from lienthong.keys.identity import check_time
from lienthong.keys.jws import strict_json_object
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.edxml_ids import forget_received, record_document_id
from lienthong.node.store.peers import refuse_if_revoked
from lienthong.node.store.records import (
    RECEIVED_TRANSITIONS,
    DuplicateMessage,
    InvalidTransition,
    NewReceived,
    NotFound,
    ReceiptMismatch,
    ReceivedRow,
    check_transition,
    meta_json,
    tracked_row,
)

_r = t.received

# Built once (see node/store/outgoing.py): the reception path's statements, with bind parameters.
_KEY = (_r.c.sender_node_id == bindparam("w_sender")) & (_r.c.message_id == bindparam("w_mid"))
_GET = select(_r).where(_KEY)
_EXISTS = select(_r.c.message_id).where(_KEY)
_INSERT = insert(_r)
_KNOWN = select(_r.c.sender_node_id, _r.c.message_id).where(
    _r.c.message_id.in_(bindparam("mids", expanding=True)))
_INSERT_TRACKED = insert(t.tracked_documents)
_s = t.sidecars_due
_INSERT_DUE = insert(_s)
_DUE_DONE = delete(_s).where((_s.c.sender_node_id == bindparam("w_sender"))
                             & (_s.c.message_id == bindparam("w_mid")))
_UPDATE = update(_r).where(_KEY)
_PUBLISHED = (update(_r).where(_KEY & (_r.c.state == "publishing"))
              .values(state="stored", receipt=bindparam("receipt")))


def _row(row: Any) -> ReceivedRow:
    return build(ReceivedRow, row, meta=strict_json_object(row.meta.encode("utf-8")))


class IncomingMethods(StoreBase):
    """Incoming-document methods of ``Store``."""

    def _key(self, sender_node_id: str, message_id: str) -> Any:
        return (_r.c.sender_node_id == sender_node_id) & (_r.c.message_id == message_id)

    def _get(self, conn: Connection, sender_node_id: str, message_id: str) -> ReceivedRow | None:
        row = conn.execute(_GET, {"w_sender": sender_node_id, "w_mid": message_id}).first()
        return None if row is None else _row(row)

    def get_received(self, sender_node_id: str, message_id: str) -> ReceivedRow | None:
        with self._read() as conn:
            return self._get(conn, sender_node_id, message_id)

    def begin_publish(self, item: NewReceived, now: str, *,
                      from_peer: str | None = None) -> ReceivedRow:
        """Record a verified document about to be written into the inbox; ``from_peer`` (the
        node the connection authenticated) must not be revoked: this commit is where a
        document is accepted, so nothing is accepted from a peer once its revocation has
        committed (``PeerRevoked``)."""
        check_time(now)
        with self.transaction() as conn:
            if from_peer is not None:
                refuse_if_revoked(conn, from_peer)
            if conn.execute(_EXISTS, {"w_sender": item.sender_node_id,
                                      "w_mid": item.message_id}).first() is not None:
                raise DuplicateMessage(f"message {item.message_id} from {item.sender_node_id} "
                                       "is already recorded")
            meta = meta_json(item.meta)
            conn.execute(_INSERT, {
                "sender_node_id": item.sender_node_id, "message_id": item.message_id,
                "name": item.name, "stored_path": item.stored_path, "size": item.size,
                "sha256": item.sha256, "header_token": item.header_token, "state": "publishing",
                "receipt": None, "received_at": now, "meta": meta})
            record_document_id(conn, "received", item.meta, item.message_id,
                               item.sender_node_id)
            if item.edxml_copies:
                conn.execute(insert(t.edxml_copies_due).values(
                    sender_node_id=item.sender_node_id, message_id=item.message_id))
            conn.execute(_INSERT_DUE, {"sender_node_id": item.sender_node_id,
                                       "message_id": item.message_id})
            tracked = tracked_row("received", item.sender_node_id, item.message_id, item.meta,
                                  now)
            if tracked is not None:
                conn.execute(_INSERT_TRACKED, tracked)
        # The row as inserted (no second SELECT: one statement less per document received).
        return ReceivedRow(sender_node_id=item.sender_node_id, message_id=item.message_id,
                           name=item.name, stored_path=item.stored_path, size=item.size,
                           sha256=item.sha256, header_token=item.header_token,
                           state="publishing", receipt=None, received_at=now,
                           meta=strict_json_object(meta.encode("utf-8")))

    def begin_publishes(self, items: Sequence[tuple[NewReceived, str, str | None]]
                        ) -> list[None | Exception]:
        """``begin_publish`` for a batch of ``(item, now, from_peer)`` in the caller's unit of
        work: for each item None (recorded ``publishing``), or the error that refused it
        alone. (No rows are handed back: building and parsing them was a tenth of the unit.)

        Why: the receiver's publication batches (node/inbox/publication.py) paid a unit of
        work per document -- a savepoint, a revocation look-up, an existence look-up, an
        insert and a Deferred handed back -- a fifth of its database thread in a burst
        (docs/benchmarks.md). Here a batch is one revocation look-up per peer, one existence
        look-up and one insert per table. If anything refuses, the batch is undone and
        recorded again one by one (each in a savepoint), so only the refused item fails."""
        with self.transaction() as conn:
            try:
                with self.savepoint():
                    return self._begin_all(conn, items)
            except Exception:  # noqa: BLE001 - recorded one by one below, to find which
                pass
            results: list[None | Exception] = []
            for item, now, from_peer in items:
                try:
                    with self.savepoint():
                        self.begin_publish(item, now, from_peer=from_peer)
                except Exception as exc:  # noqa: BLE001 - this item's own refusal
                    results.append(exc)
                else:
                    results.append(None)
            return results

    def _begin_all(self, conn: Connection, items: Sequence[tuple[NewReceived, str, str | None]]
                   ) -> list[None | Exception]:
        for peer in {from_peer for _, _, from_peer in items if from_peer is not None}:
            refuse_if_revoked(conn, peer)
        keys = {(item.sender_node_id, item.message_id) for item, _, _ in items}
        if len(keys) != len(items):
            raise DuplicateMessage("a message appears twice in one batch")
        known = conn.execute(_KNOWN, {"mids": [mid for _, mid in keys]}).all()
        if any((row.sender_node_id, row.message_id) in keys for row in known):
            raise DuplicateMessage("a message of the batch is already recorded")
        inserts, copies, tracked = [], [], []
        for item, now, _ in items:
            check_time(now)
            meta = meta_json(item.meta)
            inserts.append({
                "sender_node_id": item.sender_node_id, "message_id": item.message_id,
                "name": item.name, "stored_path": item.stored_path, "size": item.size,
                "sha256": item.sha256, "header_token": item.header_token, "state": "publishing",
                "receipt": None, "received_at": now, "meta": meta})
            if item.edxml_copies:
                copies.append({"sender_node_id": item.sender_node_id,
                               "message_id": item.message_id})
            row = tracked_row("received", item.sender_node_id, item.message_id, item.meta, now)
            if row is not None:
                tracked.append(row)
        conn.execute(_INSERT, inserts)
        conn.execute(_INSERT_DUE, [{"sender_node_id": item.sender_node_id,
                                    "message_id": item.message_id} for item, _, _ in items])
        for item, _, _ in items:
            record_document_id(conn, "received", item.meta, item.message_id,
                               item.sender_node_id)
        if copies:
            conn.execute(insert(t.edxml_copies_due), copies)
        if tracked:
            conn.execute(_INSERT_TRACKED, tracked)
        return [None] * len(items)

    def mark_stored_many(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """``mark_stored`` for ``(sender, message ID, receipt, now)`` rows in one statement;
        a row that is not ``publishing`` goes through ``complete_publish`` and its checks
        (raising as it would alone)."""
        for _, _, _, now in rows:
            check_time(now)
        with self.transaction() as conn:
            done = conn.execute(_PUBLISHED, [{"w_sender": sender, "w_mid": mid,
                                              "receipt": receipt}
                                             for sender, mid, receipt, _ in rows]).rowcount
            if done != len(rows) or not conn.dialect.supports_sane_multi_rowcount:
                for sender, mid, receipt, now in rows:
                    self.complete_publish(sender, mid, receipt, now)

    def complete_publish(self, sender_node_id: str, message_id: str, receipt: str,
                         now: str) -> ReceivedRow:
        """The document is durably in the inbox; keep the receipt we signed for it."""
        check_time(now)
        with self.transaction() as conn:
            row = self._get(conn, sender_node_id, message_id)
            if row is None:
                raise NotFound(f"message {message_id} from {sender_node_id} is not being "
                               "published")
            if row.state == "stored":
                if row.receipt != receipt:
                    raise ReceiptMismatch(f"message {message_id} from {sender_node_id} already "
                                          "has a different receipt; the first one is kept")
                return row
            check_transition(RECEIVED_TRANSITIONS, f"message {message_id}", row.state, "stored")
            conn.execute(_UPDATE, {"w_sender": sender_node_id, "w_mid": message_id,
                                   "state": "stored", "receipt": receipt})
        return dataclasses.replace(row, state="stored", receipt=receipt)

    def mark_stored(self, sender_node_id: str, message_id: str, receipt: str, now: str) -> None:
        """``complete_publish`` for the usual case, one UPDATE: the row read back and parsed
        (its metadata JSON strictly checked) was a fifth of the database thread's work per
        received document, and the receiver has no use for it. Anything but a ``publishing``
        row goes through ``complete_publish`` and its checks."""
        check_time(now)
        with self.transaction() as conn:
            done = conn.execute(_PUBLISHED, {"w_sender": sender_node_id, "w_mid": message_id,
                                             "receipt": receipt}).rowcount
            if done != 1:
                self.complete_publish(sender_node_id, message_id, receipt, now)

    def abandon_publish(self, sender_node_id: str, message_id: str, now: str) -> None:
        """Forget a publish that never completed, so the sender's next attempt starts over."""
        check_time(now)
        with self.transaction() as conn:
            row = self._get(conn, sender_node_id, message_id)
            if row is None:
                return
            if row.state != "publishing":
                raise InvalidTransition(f"message {message_id} from {sender_node_id} is "
                                        f"{row.state!r}; a stored document is never forgotten")
            conn.execute(delete(_r).where(self._key(sender_node_id, message_id)))
            forget_received(conn, sender_node_id, message_id)
            conn.execute(_DUE_DONE, {"w_sender": sender_node_id, "w_mid": message_id})
            tracked = t.tracked_documents
            conn.execute(delete(tracked).where(
                (tracked.c.direction == "received")
                & (tracked.c.sender_node_id == sender_node_id)
                & (tracked.c.message_id == message_id)))

    def publishing_rows(self) -> list[ReceivedRow]:
        """Documents whose publication a crash may have interrupted (check them at start-up)."""
        with self._read() as conn:
            rows = conn.execute(select(_r).where(_r.c.state == "publishing")
                                .order_by(_r.c.received_at, _r.c.message_id)).all()
            return [_row(row) for row in rows]

    def sidecars_due_rows(self) -> list[ReceivedRow]:
        """``stored`` documents whose sidecars a crash may have cut short (start-up writes
        them again; a ``publishing`` row's are written by its recovery)."""
        with self._read() as conn:
            rows = conn.execute(
                select(_r).join(_s, (_s.c.sender_node_id == _r.c.sender_node_id)
                                & (_s.c.message_id == _r.c.message_id))
                .where(_r.c.state == "stored")
                .order_by(_r.c.received_at, _r.c.message_id)).all()
            return [_row(row) for row in rows]

    def sidecars_written(self, keys: Sequence[tuple[str, str]]) -> None:
        """The sidecars of these ``(sender, message ID)`` documents are durable (one
        statement for a batch)."""
        if keys:
            with self.transaction() as conn:
                conn.execute(_DUE_DONE, [{"w_sender": sender, "w_mid": mid}
                                         for sender, mid in keys])

    def recent_received(self, limit: int) -> list[ReceivedRow]:
        """The last ``limit`` documents received, newest first."""
        with self._read() as conn:
            rows = conn.execute(select(_r).order_by(_r.c.received_at.desc(),
                                                    _r.c.message_id.desc())
                                .limit(limit)).all()
            return [_row(row) for row in rows]

    def received_count(self) -> int:
        """How many documents are stored in the inbox (publishing ones are not counted)."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(_r)
                                    .where(_r.c.state == "stored")).scalar_one())
