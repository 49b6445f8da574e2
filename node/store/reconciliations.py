"""Reconciliation exchanges and the documents they compare (schema version 4).

``reconciliations`` holds one row per exchange with a peer for a period, asked for here
(``initiator``: by ``lienthong reconcile`` or the monthly run) or by the peer (``responder``);
its states are ``RECONCILIATION_TRANSITIONS`` (node/store/records.py). The two questions
``sent_documents`` and ``received_documents`` list, for a peer, what this office's record
holds; the reconciliation room picks those whose envelope was created in the period (the
signed ``created`` lives in the header token, so the window here is generous on purpose).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update

from lienthong.keys.identity import check_time
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import (
    RECONCILIATION_TRANSITIONS,
    NotFound,
    ReconciliationRow,
    RecordedDocument,
    check_transition,
)

_r = t.reconciliations
_d = t.dispatches
_dl = t.deliveries
_in = t.received


class ReconciliationMethods(StoreBase):
    """Reconciliation methods of ``Store``."""

    def add_reconciliation(self, *, exchange: str, peer_node_id: str, period: str, role: str,
                           state: str, now: str, next_attempt_at: str | None = None,
                           own_summary: str | None = None, peer_summary: str | None = None,
                           differences: str | None = None) -> ReconciliationRow:
        """A new exchange; its (exchange, peer) must be new (the UNIQUE constraint)."""
        check_time(now)
        with self.transaction() as conn:
            conn.execute(insert(_r).values(
                exchange=exchange, peer_node_id=peer_node_id, period=period, role=role,
                state=state, requested_at=now, updated_at=now, next_attempt_at=next_attempt_at,
                attempts=0, own_summary=own_summary, peer_summary=peer_summary,
                differences=differences))
            return build(ReconciliationRow, conn.execute(select(_r).where(
                _r.c.exchange == exchange, _r.c.peer_node_id == peer_node_id)).one())

    def reconciliation(self, exchange: str, peer_node_id: str) -> ReconciliationRow | None:
        with self._read() as conn:
            row = conn.execute(select(_r).where(_r.c.exchange == exchange,
                                                _r.c.peer_node_id == peer_node_id)).first()
        return build(ReconciliationRow, row) if row is not None else None

    def reconciliation_by_id(self, id: int) -> ReconciliationRow | None:
        with self._read() as conn:
            row = conn.execute(select(_r).where(_r.c.id == id)).first()
        return build(ReconciliationRow, row) if row is not None else None

    def update_reconciliation(self, id: int, now: str, **changes: Any) -> ReconciliationRow:
        """Change an exchange (its state only along ``RECONCILIATION_TRANSITIONS``)."""
        check_time(now)
        allowed = {"state", "next_attempt_at", "attempts", "own_summary", "peer_summary",
                   "differences", "error"}
        if set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        with self.transaction() as conn:
            row = conn.execute(select(_r).where(_r.c.id == id)).first()
            if row is None:
                raise NotFound(f"no reconciliation {id}")
            if "state" in changes:
                check_transition(RECONCILIATION_TRANSITIONS, "reconciliation", row.state,
                                 changes["state"])
            conn.execute(update(_r).where(_r.c.id == id).values(updated_at=now, **changes))
            return build(ReconciliationRow, conn.execute(select(_r).where(_r.c.id == id)).one())

    def reconciliations(self, *, states: Iterable[str] | None = None,
                        peer_node_id: str | None = None, period: str | None = None,
                        role: str | None = None) -> list[ReconciliationRow]:
        """Exchanges, newest first, optionally filtered."""
        query = select(_r).order_by(_r.c.id.desc())
        if states is not None:
            query = query.where(_r.c.state.in_(list(states)))
        if peer_node_id is not None:
            query = query.where(_r.c.peer_node_id == peer_node_id)
        if period is not None:
            query = query.where(_r.c.period == period)
        if role is not None:
            query = query.where(_r.c.role == role)
        with self._read() as conn:
            return [build(ReconciliationRow, row) for row in conn.execute(query).all()]

    def sent_documents(self, peer_ids: Iterable[str], since: str) -> list[RecordedDocument]:
        """What this office dispatched to any of ``peer_ids`` since ``since`` (its record's
        time), with the peer's receipt when one came back."""
        query = (select(_d.c.message_id, _d.c.sha256, _d.c.header_token, _d.c.meta,
                        _dl.c.receipt)
                 .join(_dl, _dl.c.message_id == _d.c.message_id)
                 .where(_dl.c.peer_node_id.in_(list(peer_ids)), _d.c.created_at >= since)
                 .order_by(_d.c.seq))
        with self._read() as conn:
            return [RecordedDocument(row.message_id, row.sha256, row.header_token,
                                     row.receipt, row.meta) for row in conn.execute(query)]

    def received_documents(self, peer_ids: Iterable[str],
                           since: str) -> list[RecordedDocument]:
        """What this office received, stored and receipted from any of ``peer_ids`` since
        ``since`` (its record's time)."""
        query = (select(_in.c.message_id, _in.c.sha256, _in.c.header_token, _in.c.meta,
                        _in.c.receipt)
                 .where(_in.c.sender_node_id.in_(list(peer_ids)), _in.c.state == "stored",
                        _in.c.received_at >= since)
                 .order_by(_in.c.received_at))
        with self._read() as conn:
            return [RecordedDocument(row.message_id, row.sha256, row.header_token,
                                     row.receipt, row.meta) for row in conn.execute(query)]
