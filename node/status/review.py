"""The yearly review's part of the status snapshot: reconciliations and witnessed heads.

Per peer: the latest reconciliation exchange (period, state, how many documents differ and how
many days were left uncompared, a busy period's overflow: docs/review.md §2) and the
ages of the latest head each side witnessed of the other. ``status.health`` turns a
reconciliation whose records differ, or one a peer has left unanswered, into a warning: a
difference is shown, never repaired (docs/review.md).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lienthong.node.store.database import Store
from lienthong.protocol.reconciliation import tally

#: Reconciliations shown: the latest per peer and period, newest first, at most this many.
SHOWN = 12


def _age(now: float, when: str | None) -> float | None:
    if when is None:
        return None
    return max(0.0, now - datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp())


def review_status(store: Store, names: Mapping[str, str], now: float) -> dict[str, Any]:
    """Reconciliations (latest per peer and period) and witnessed-head ages per peer."""
    seen: set[tuple[str, str]] = set()
    reconciliations = []
    for row in store.reconciliations():
        key = (row.peer_node_id, row.period)
        if key in seen:
            continue
        seen.add(key)
        documents, days = tally(json.loads(row.differences) if row.differences else [])
        reconciliations.append({
            "peer": names.get(row.peer_node_id, row.peer_node_id), "period": row.period,
            "state": row.state, "role": row.role, "attempts": row.attempts,
            "requested_at": row.requested_at, "updated_at": row.updated_at,
            "pending_seconds": (_age(now, row.requested_at)
                                if row.state in ("requested", "pending") else None),
            "differences": documents, "days_not_compared": days})
        if len(reconciliations) >= SHOWN:
            break
    ours: dict[str, Any] = {}
    for witness in store.head_witnesses():
        ours[witness.witness_node_id] = witness
    held = store.latest_peer_heads()
    witnesses = []
    for node_id in sorted(set(ours) | set(held), key=lambda n: names.get(n, n)):
        mine, theirs = ours.get(node_id), held.get(node_id)
        witnesses.append({
            "peer": names.get(node_id, node_id),
            "our_head_witnessed_seq": mine.seq if mine else None,
            "our_head_witnessed_age": _age(now, mine.witnessed_at) if mine else None,
            "its_head_held_seq": theirs.seq if theirs else None,
            "its_head_held_age": _age(now, theirs.head_time) if theirs else None})
    return {"reconciliations": reconciliations, "witnesses": witnesses}
