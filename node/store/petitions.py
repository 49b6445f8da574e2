"""The petition register's table (``petitions``, schema version 8; docs/petitions.md §4).

A row is written when a petition is recorded as forwarded (the outbox, with the dispatch) or
received (the inbox, once stored); the handling office's decisions and a receiver's signed
refusal are added to it. Reading it is for the petition staff only (``lienthong petitions``
checks the caller's groups), since ``details`` holds the petitioner's personal data.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update

from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.records import PetitionRow

_p = t.petitions


class PetitionMethods(StoreBase):
    """The petition register's queries of ``Store``."""

    def record_petition(self, direction: str, peer_node_id: str, message_id: str,
                        petition: Mapping[str, Any], now: str) -> bool:
        """Add a petition to the register (idempotent); True if it was new."""
        key = (_p.c.direction == direction) & (_p.c.peer_node_id == peer_node_id) & \
            (_p.c.message_id == message_id)
        with self.transaction() as conn:
            if conn.execute(select(_p.c.message_id).where(key)).first() is not None:
                return False
            conn.execute(insert(_p).values(
                direction=direction, peer_node_id=peer_node_id, message_id=message_id,
                kind=petition["kind"], number=petition.get("number"),
                received_date=petition["received"],
                details=json.dumps(dict(petition), ensure_ascii=False, sort_keys=True),
                recorded_at=now, complex=0))
        return True

    def petitions(self, *, direction: str | None = None, kinds: Sequence[str] = (),
                  received_from: str | None = None,
                  received_until: str | None = None) -> list[PetitionRow]:
        """The register, oldest received first, filtered by direction, kinds and dates."""
        query: Any = select(_p)
        if direction is not None:
            query = query.where(_p.c.direction == direction)
        if kinds:
            query = query.where(_p.c.kind.in_(list(kinds)))
        if received_from is not None:
            query = query.where(_p.c.received_date >= received_from)
        if received_until is not None:
            query = query.where(_p.c.received_date <= received_until)
        with self._read() as conn:
            rows = conn.execute(query.order_by(_p.c.received_date, _p.c.recorded_at,
                                               _p.c.message_id)).all()
        return [_row(row) for row in rows]

    def petition_by_message(self, message_id: str) -> list[PetitionRow]:
        with self._read() as conn:
            rows = conn.execute(select(_p).where(_p.c.message_id == message_id)).all()
        return [_row(row) for row in rows]

    def decide_petition(self, peer_node_id: str, message_id: str, *, field: str, now: str,
                        outcome: str | None = None, complex_case: bool | None = None) -> None:
        """Record the handling office's decision on a received petition: ``field`` is
        ``accepted_at``, ``rejected_at`` or ``resolved_at``."""
        if field not in ("accepted_at", "rejected_at", "resolved_at"):
            raise ValueError(f"unknown decision {field!r}")
        values: dict[str, Any] = {field: now}
        if outcome is not None:
            values["outcome"] = outcome
        if complex_case is not None:
            values["complex"] = int(complex_case)
        with self.transaction() as conn:
            conn.execute(update(_p).where(
                (_p.c.direction == "received") & (_p.c.peer_node_id == peer_node_id)
                & (_p.c.message_id == message_id)).values(**values))

    def record_petition_refusal(self, peer_node_id: str, message_id: str, *, token: str,
                                code: str, reason: str) -> bool:
        """Keep the signed refusal of a petition we forwarded; False if it is not ours."""
        with self.transaction() as conn:
            done = conn.execute(update(_p).where(
                (_p.c.direction == "sent") & (_p.c.peer_node_id == peer_node_id)
                & (_p.c.message_id == message_id)).values(
                    refusal_token=token, refusal_code=code, refusal_reason=reason))
        return bool(done.rowcount)


def _row(row: Any) -> PetitionRow:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {}
    return build(PetitionRow, row, details=details if isinstance(details, dict) else {},
                 complex=bool(row.complex))
