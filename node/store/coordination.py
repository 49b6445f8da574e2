"""Documents the coordination regulation follows (``tracked_documents``, schema version 6), and
the reminder messages sent to offices that owe a programme (``programme_reminders``, 7).

A programme, a conclusion or any document with a ``due`` date gets a row when it is recorded
as sent (``add_dispatches``) or received (``begin_publish``), in the same transaction, so the
deadline engine (node/coordination/) finds "the programmes for 2027-Q1" or "documents due
this month" through an index instead of reading every document's metadata.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.incoming import _row as _received_row
from lienthong.node.store.records import ReceivedRow, ReminderRow, StatusRow, TrackedRow

_k = t.tracked_documents
_r = t.received
_s = t.document_status
_m = t.programme_reminders


class CoordinationMethods(StoreBase):
    """Tracked-document queries of ``Store``."""

    def tracked_documents(self, *, doc_type: str | None = None, periods: Sequence[str] = (),
                          due_from: str | None = None, due_until: str | None = None,
                          direction: str | None = None) -> list[TrackedRow]:
        """Tracked documents, oldest first, filtered by type, periods, due days, direction."""
        query: Any = select(_k)
        if doc_type is not None:
            query = query.where(_k.c.doc_type == doc_type)
        if periods:
            query = query.where(_k.c.period.in_(list(periods)))
        if due_from is not None:
            query = query.where(_k.c.due >= due_from)
        if due_until is not None:
            query = query.where(_k.c.due <= due_until)
        if direction is not None:
            query = query.where(_k.c.direction == direction)
        with self._read() as conn:
            rows = conn.execute(query.order_by(_k.c.recorded_at, _k.c.message_id)).all()
        return [build(TrackedRow, row, consolidated=bool(row.consolidated)) for row in rows]

    def received_rows(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str],
                                                                         ReceivedRow]:
        """The ``received`` rows of (sender node ID, message ID) pairs that exist."""
        if not keys:
            return {}
        wanted = set(keys)
        with self._read() as conn:
            rows = conn.execute(select(_r).where(
                _r.c.message_id.in_(sorted({mid for _, mid in wanted})))).all()
        return {(row.sender_node_id, row.message_id): _received_row(row) for row in rows
                if (row.sender_node_id, row.message_id) in wanted}

    def statuses_of(self, message_ids: Sequence[str]) -> dict[str, list[StatusRow]]:
        """Every status kept about each of ``message_ids``, in the order recorded."""
        if not message_ids:
            return {}
        out: dict[str, list[StatusRow]] = {}
        with self._read() as conn:
            rows = conn.execute(select(_s).where(_s.c.message_id.in_(list(message_ids)))
                                .order_by(_s.c.time, _s.c.id)).all()
        for row in rows:
            out.setdefault(row.message_id, []).append(build(StatusRow, row))
        return out

    # -- reminders (node/coordination/reminders.py) ----------------------------------------

    def claim_reminder(self, *, office: str, kind: str, period: str, step: str, due: str,
                       now: str) -> bool:
        """Record that the reminder ``step`` for this obligation is being sent; False when it
        was already (then it must not be sent again). Joins the caller's transaction."""
        with self.transaction() as conn:
            found = conn.execute(select(_m.c.office).where(
                _m.c.office == office, _m.c.kind == kind, _m.c.period == period,
                _m.c.step == step)).first()
            if found is not None:
                return False
            conn.execute(insert(_m).values(office=office, kind=kind, period=period, step=step,
                                           due=due, claimed_at=now, message_id=None))
        return True

    def note_reminder_queued(self, *, office: str, kind: str, period: str, step: str,
                             message_id: str) -> None:
        """The claimed reminder is queued as ``message_id``."""
        with self.transaction() as conn:
            conn.execute(update(_m).where(
                _m.c.office == office, _m.c.kind == kind, _m.c.period == period,
                _m.c.step == step).values(message_id=message_id))

    def reminders(self) -> list[ReminderRow]:
        """Every reminder claimed, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(_m).order_by(_m.c.claimed_at, _m.c.office,
                                                    _m.c.period, _m.c.step)).all()
        return [build(ReminderRow, row) for row in rows]
