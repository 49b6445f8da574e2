"""Asking the running node for a status or a recall: checked, then left in the store.

``lienthong mark`` / ``recall`` and the web pages' buttons take this one path: the request is
checked against what the store knows (the document was received, or sent; the status may
follow the last one), then a ``control_requests`` row is added, which
``ControlRequests`` (control/requests.py) signs and sends within a second. No passphrase is
needed here. Each refusal is a ``RequestRefused`` whose ``text`` a page shows in the clerk's
language.
"""
from __future__ import annotations

from dataclasses import dataclass

from lienthong.node.control.requests import RequestRefused
from lienthong.node.documents.petitions import PETITION_STATUS_NOTES, is_petition
from lienthong.node.documents.vocabulary import resolve_status
from lienthong.node.language.text import Phrase
from lienthong.node.store.database import Store
from lienthong.node.store.records import PROCESSING_TRANSITIONS, ControlRequest
from lienthong.protocol.status import MAX_NOTE, MAX_REGISTER_NUMBER

CONTROL_META_KINDS = ("status", "recall")


@dataclass(frozen=True, slots=True)
class Asked:
    """A request left for the node: the document's name and the request."""

    name: str
    status: str
    request: ControlRequest
    #: How many offices a recall goes to (0 for a status).
    recipients: int = 0


def _refused(message: str, **fields: object) -> RequestRefused:
    return RequestRefused(Phrase(message, **fields))


def ask_status(store: Store, message_id: str, status: str, *, note: str = "",
               register_number: str | None, now: str) -> Asked:
    """Check and leave a processing-status request for a document this office received."""
    chosen = resolve_status(status)
    if chosen is None:
        raise _refused("The status {status} is not known.", status=status)
    number = (register_number or "").strip()
    if chosen == "registered" and not number:
        raise _refused("Registering a document needs its incoming-register number.")
    if chosen == "rejected" and not note.strip():
        raise _refused("Rejecting a document needs the reason.")
    if len(note) > MAX_NOTE or len(number) > MAX_REGISTER_NUMBER:
        raise _refused("The note is at most {note} characters and the register number at "
                       "most {number}.", note=MAX_NOTE, number=MAX_REGISTER_NUMBER)
    rows = [r for r in store.stored_received(message_id)
            if r.meta.get("kind") not in CONTROL_META_KINDS]
    if not rows:
        raise _refused("This office received no document with message ID {mid}.",
                       mid=message_id)
    if is_petition(rows[0].meta) and note.strip() not in PETITION_STATUS_NOTES:
        raise RequestRefused(Phrase(
            "A status about a citizens' petition carries no free note (it would reach the "
            "other office and both audit logs); use lienthong petitions accept, reject or "
            "resolve."))
    done = [s.status for s in store.statuses_for(message_id)
            if s.status in PROCESSING_TRANSITIONS]
    last = done[-1] if done else None
    if chosen not in PROCESSING_TRANSITIONS[last]:
        allowed = ", ".join(sorted(PROCESSING_TRANSITIONS[last])) or "nothing"
        raise _refused("The document is already '{last}'; next it can be: {allowed}.",
                       last=last, allowed=allowed)
    payload = {"status": chosen, "note": note.strip(), "register_number": number or None}
    request = store.add_control_request("status", message_id, payload, now,
                                        peer=rows[0].sender_node_id)
    return Asked(name=rows[0].name, status=chosen, request=request)


def ask_recall(store: Store, message_id: str, *, reason: str, replaced_by: str | None,
               now: str) -> Asked:
    """Check and leave a recall request for a document this office sent."""
    if not reason.strip() or len(reason) > MAX_NOTE:
        raise _refused("The reason for a recall must be 1 to {limit} characters.",
                       limit=MAX_NOTE)
    row = store.get_dispatch(message_id)
    if row is None or row.meta.get("kind") in CONTROL_META_KINDS:
        raise _refused("This office sent no document with message ID {mid}.", mid=message_id)
    if store.recalls_for(message_id):
        raise _refused("{name} has already been recalled.", name=row.name)
    request = store.add_control_request(
        "recall", message_id, {"reason": reason.strip(), "replaced_by": replaced_by}, now)
    return Asked(name=row.name, status="recall", request=request,
                 recipients=len(row.deliveries))
