"""Receipts and completions of outgoing documents, a batch at a time.

Why a batch: a thousand small documents come back as a thousand receipts within seconds, and
recording them one unit of work at a time cost the sender about a dozen SQL statements per
document (read the delivery, update it, count what is pending, read the dispatch and its
deliveries, then the same again to mark it sent), each one a trip through SQLAlchemy that
cost more than the SQL itself (docs/benchmarks.md). Here the receipts that arrived together are
recorded with two statements for the whole batch, and the documents finished together are
read and marked ``sent`` with a handful more.

The rules are those of ``OutgoingMethods.record_receipt`` and ``mark_dispatch_sent``, item by
item: the same receipt again is a no-op with the same answer, a different one for the same
delivery is refused (``ReceiptMismatch``, the first is kept), only a queued delivery can become
delivered, and a dispatch becomes ``sent`` only once every delivery has its receipt. A refused
item writes nothing and does not stop the others: its error is returned in its place.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update

from lienthong.keys.identity import check_time
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase
from lienthong.node.store.peers import refuse_if_revoked
from lienthong.node.store.records import (
    DELIVERY_TRANSITIONS,
    DISPATCH_TRANSITIONS,
    InvalidTransition,
    NotFound,
    PeerRevoked,
    ReceiptMismatch,
    StoreError,
    check_transition,
)

_d = t.dispatches
_v = t.deliveries

_DELIVERIES = (select(_v.c.message_id, _v.c.peer_node_id, _v.c.state, _v.c.receipt)
               .where(_v.c.message_id.in_(bindparam("mids", expanding=True))))
_DELIVER = (update(_v).where(_v.c.message_id == bindparam("w_mid"),
                             _v.c.peer_node_id == bindparam("w_peer"))
            .values(state="delivered", receipt=bindparam("receipt"),
                    receipt_at=bindparam("receipt_at"), last_error=None))
_STATES = (select(_d.c.message_id, _d.c.state, _d.c.sent_path)
           .where(_d.c.message_id.in_(bindparam("mids", expanding=True))))
_PENDING = (select(_v.c.message_id)
            .where(_v.c.message_id.in_(bindparam("mids", expanding=True)),
                   _v.c.state != "delivered"))
_MARK_SENT = (update(_d).where(_d.c.message_id == bindparam("w_mid"))
              .values(state="sent", sent_path=bindparam("sent_path"),
                      finished_at=bindparam("finished_at"), error=None))


class ReceiptMethods(StoreBase):
    """Batch methods of ``Store`` for the receipt side of the delivery path."""

    def record_receipts(self, peer_node_id: str, items: Sequence[tuple[str, str]],
                        now: str) -> list[bool | StoreError]:
        """Record *verified* receipts ``(message_id, receipt_token)`` from one peer, in one
        transaction; for each, True when every recipient has now receipted (False when some
        still have not), or the ``StoreError`` that refused it (nothing written for it)."""
        check_time(now)
        if not items:
            return []
        mids = list(dict.fromkeys(mid for mid, _token in items))
        with self.transaction() as conn:
            try:
                # Checked in this transaction: a receipt that commits after the peer's
                # revocation is refused, even from a transfer that was already in flight.
                refuse_if_revoked(conn, peer_node_id)
            except PeerRevoked as exc:
                return [exc for _item in items]
            rows: dict[str, list[Any]] = {}
            for row in conn.execute(_DELIVERIES, {"mids": mids}):
                rows.setdefault(row.message_id, []).append(row)
            # Per message: which recipients are still not delivered, as this batch proceeds.
            pending = {mid: {r.peer_node_id for r in found if r.state != "delivered"}
                       for mid, found in rows.items()}
            given: dict[str, str] = {}   # receipts recorded earlier in this batch
            updates = []
            out: list[bool | StoreError] = []
            for mid, token in items:
                mine = next((r for r in rows.get(mid, ()) if r.peer_node_id == peer_node_id),
                            None)
                if mine is None:
                    out.append(NotFound(f"message {mid} has no delivery to {peer_node_id}"))
                    continue
                kept = given.get(mid, mine.receipt)
                if kept is not None:
                    if kept != token:
                        out.append(ReceiptMismatch(
                            f"{peer_node_id} already gave a different receipt for message "
                            f"{mid}; the first one is kept"))
                        continue
                else:
                    try:
                        check_transition(DELIVERY_TRANSITIONS,
                                         f"the delivery of {mid} to {peer_node_id}",
                                         mine.state, "delivered")
                    except InvalidTransition as exc:
                        out.append(exc)
                        continue
                    given[mid] = token
                    pending[mid].discard(peer_node_id)
                    updates.append({"w_mid": mid, "w_peer": peer_node_id, "receipt": token,
                                    "receipt_at": now})
                out.append(not pending[mid])
            if updates:
                conn.execute(_DELIVER, updates)
        return out

    def mark_dispatches_sent(self, sent: Sequence[tuple[str, str]],
                             now: str) -> list[None | StoreError]:
        """``mark_dispatch_sent`` for each ``(message_id, sent_path)``, in one transaction; an
        item refused (not every receipt in, unknown, failed) gets its error in its place."""
        check_time(now)
        if not sent:
            return []
        mids = list(dict.fromkeys(mid for mid, _path in sent))
        with self.transaction() as conn:
            states = {row.message_id: row for row in conn.execute(_STATES, {"mids": mids})}
            waiting: dict[str, int] = {}
            for (mid,) in conn.execute(_PENDING, {"mids": mids}):
                waiting[mid] = waiting.get(mid, 0) + 1
            updates = []
            out: list[None | StoreError] = []
            for mid, path in sent:
                row = states.get(mid)
                try:
                    if row is None:
                        raise NotFound(f"there is no dispatch with message ID {mid}")
                    if row.state == "sent" and row.sent_path == path:
                        out.append(None)
                        continue
                    check_transition(DISPATCH_TRANSITIONS, f"dispatch {mid}", row.state,
                                     "sent")
                    if waiting.get(mid):
                        raise InvalidTransition(f"dispatch {mid} still waits for "
                                                f"{waiting[mid]} receipt(s): only receipts "
                                                "make a document sent")
                except StoreError as exc:
                    out.append(exc)
                    continue
                updates.append({"w_mid": mid, "sent_path": path, "finished_at": now})
                out.append(None)
            if updates:
                conn.execute(_MARK_SENT, updates)
        return out
