"""The handling office's decisions on a petition it received: accept, reject, resolve.

Each decision is kept in the register and sent back to the forwarding office as a signed
processing status, through the same request path as ``lienthong mark`` (control/asking.py):

=========  ==================  ================================================
decision   status sent back     note (fixed: a note travels and is audited)
=========  ==================  ================================================
accept     in-progress          "Đã thụ lý đơn" (accepted for resolution)
reject     rejected             "Không thụ lý đơn" (not accepted)
resolve    completed            "Đã giải quyết đơn" (resolved)
=========  ==================  ================================================

The notes are fixed so that nothing a clerk types about the citizen leaves the office; the
clerk's own reason stays in this office's register (``outcome``).
"""
from __future__ import annotations

from dataclasses import dataclass

from lienthong.node.control.asking import ask_status
from lienthong.node.control.requests import RequestRefused
from lienthong.node.documents.petitions import PETITION_STATUS_NOTES
from lienthong.node.language.text import Phrase
from lienthong.node.store.database import Store
from lienthong.node.store.records import PetitionRow

#: decision -> (processing status, fixed note, register column).
DECISIONS = {
    "accept": ("in-progress", PETITION_STATUS_NOTES[1], "accepted_at"),
    "reject": ("rejected", PETITION_STATUS_NOTES[2], "rejected_at"),
    "resolve": ("completed", PETITION_STATUS_NOTES[3], "resolved_at"),
}


@dataclass(frozen=True, slots=True)
class Decided:
    row: PetitionRow
    status: str


def decide(store: Store, message_id: str, decision: str, *, now: str,
           complex_case: bool = False, outcome: str | None = None) -> Decided:
    """Record ``decision`` on the received petition ``message_id`` and ask the node to send
    the matching signed status to the office it came from; raise RequestRefused."""
    status, note, column = DECISIONS[decision]
    rows = [r for r in store.petition_by_message(message_id) if r.direction == "received"]
    if not rows:
        raise RequestRefused(Phrase("This office received no petition with message ID {mid}.",
                                    mid=message_id))
    row = rows[0]
    if decision == "resolve" and row.accepted_at is None:
        raise RequestRefused(Phrase("A petition is resolved only after it was accepted."))
    if row.resolved_at is not None or row.rejected_at is not None:
        raise RequestRefused(Phrase("This petition is already decided."))
    if decision == "accept" and row.accepted_at is not None:
        raise RequestRefused(Phrase("This petition is already accepted."))
    ask_status(store, message_id, status, note=note, register_number=None, now=now)
    store.decide_petition(row.peer_node_id, message_id, field=column, now=now,
                          outcome=outcome,
                          complex_case=complex_case if decision == "accept" else None)
    return Decided(row=row, status=status)
