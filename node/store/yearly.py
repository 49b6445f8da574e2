"""What the yearly cooperation report reads from the store (docs/review.md §4).

Read-only, one read each, between two RFC 3339 bounds on the node's own record times
(``dispatches.created_at``, ``received.received_at``, ``document_status.time``, ...). The
bounds are generous on purpose: the report (node/report/figures.py) places each document in
the year by the sender's signed ``created`` in its header, which both offices hold, so the two
offices' reports count the same documents whatever their clocks said when they recorded them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from lienthong.node.store import schema as t
from lienthong.node.store.audit_chain import AuditEntry
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import RecallRow, StatusRow

_d = t.dispatches
_dl = t.deliveries
_in = t.received
_s = t.document_status
_c = t.recalls
_a = t.audit


@dataclass(frozen=True, slots=True)
class SentDelivery:
    """One recipient of one dispatched document: the header (signed ``created``, metadata),
    the delivery's state and the recipient's signed receipt, when one came back."""

    message_id: str
    name: str
    header_token: str
    dispatch_state: str
    dispatch_error: str | None
    created_at: str
    peer_node_id: str
    state: str
    last_error: str | None
    receipt: str | None


@dataclass(frozen=True, slots=True)
class ReceivedDocument:
    """A document this office received and stored, with its own signed receipt."""

    message_id: str
    sender_node_id: str
    name: str
    header_token: str
    receipt: str | None
    received_at: str


class YearMethods(StoreBase):
    """The yearly report's reads of ``Store``."""

    def sent_between(self, since: str, until: str) -> list[SentDelivery]:
        """Every delivery of a document dispatched between the bounds (record time)."""
        query = (select(_d.c.message_id, _d.c.name, _d.c.header_token,
                        _d.c.state.label("dispatch_state"), _d.c.error, _d.c.created_at,
                        _dl.c.peer_node_id, _dl.c.state, _dl.c.last_error, _dl.c.receipt)
                 .join(_dl, _dl.c.message_id == _d.c.message_id)
                 .where(_d.c.created_at >= since, _d.c.created_at < until)
                 .order_by(_d.c.seq, _dl.c.peer_node_id))
        with self._read() as conn:
            return [SentDelivery(row.message_id, row.name, row.header_token,
                                 row.dispatch_state, row.error, row.created_at,
                                 row.peer_node_id, row.state, row.last_error, row.receipt)
                    for row in conn.execute(query)]

    def received_between(self, since: str, until: str) -> list[ReceivedDocument]:
        """Every document received and stored between the bounds (record time)."""
        query = (select(_in.c.message_id, _in.c.sender_node_id, _in.c.name,
                        _in.c.header_token, _in.c.receipt, _in.c.received_at)
                 .where(_in.c.state == "stored", _in.c.received_at >= since,
                        _in.c.received_at < until)
                 .order_by(_in.c.received_at, _in.c.message_id))
        with self._read() as conn:
            return [ReceivedDocument(row.message_id, row.sender_node_id, row.name,
                                     row.header_token, row.receipt, row.received_at)
                    for row in conn.execute(query)]

    def statuses_between(self, since: str, until: str) -> list[StatusRow]:
        """Processing statuses signed between the bounds (the signer's time), oldest first."""
        query = (select(_s).where(_s.c.time >= since, _s.c.time < until)
                 .order_by(_s.c.time, _s.c.id))
        with self._read() as conn:
            return [build(StatusRow, row) for row in conn.execute(query).all()]

    def recalls_between(self, since: str, until: str) -> list[RecallRow]:
        """Recalls sent or received, signed between the bounds, oldest first."""
        query = (select(_c).where(_c.c.time >= since, _c.c.time < until)
                 .order_by(_c.c.time, _c.c.id))
        with self._read() as conn:
            return [build(RecallRow, row) for row in conn.execute(query).all()]

    def audit_between(self, kinds: Sequence[str], since: str,
                      until: str) -> list[AuditEntry]:
        """Audit entries of ``kinds`` between the bounds, in chain order."""
        query = (select(_a).where(_a.c.kind.in_(list(kinds)), _a.c.time >= since,
                                  _a.c.time < until).order_by(_a.c.seq))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [build(AuditEntry, row, detail_json=row.detail) for row in rows]
