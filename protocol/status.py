"""Processing statuses and recalls: small signed objects that follow a delivered document.

Theory of operation
-------------------
A receipt proves that an office *holds* a document. What it then *did* with it -- registered
it in its incoming register, assigned it, worked on it, completed or rejected it -- is told by
a **status**: a JWS compact token of type ``lienthong-status/1`` signed by the identity key of
the office reporting (``recipient``), whose payload names the message, the original sender,
the status, a note, the incoming-register number and the SHA-256 of the delivery receipt
token it follows (``receipt_sha256``). That hash is the chain: a status can only be attached
to the very receipt the same office signed for the same message, so a lifecycle read at the
sender is receipt -> registered -> ... -> completed, each link signed by the recipient.

A **recall** is a token of type ``lienthong-recall/1`` signed by the *sender*: it names the
message, every recipient, a reason and optionally the message that replaces it. The
recipient answers with a status ``recall-accepted`` or ``recall-refused`` (with a reason); a
refusal for a document it never received has no receipt to chain to, so ``receipt_sha256``
is null only there.

The ``typ`` separates the domains: neither token can be taken for the other, for a receipt or
for an envelope header. Everything here is pure (no I/O); time is passed in. Verification
raises a :class:`protocol.errors.SignedObjectError` subclass, never returns a bool.
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import nacl.signing

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import (
    MalformedRecall,
    MalformedStatus,
    RecallBadSignature,
    RecallMismatch,
    RecallWrongType,
    StatusBadSignature,
    StatusMismatch,
    StatusWrongType,
)
from lienthong.protocol.fields import check_hex, check_node_id, check_time

STATUS_TYP = "lienthong-status/1"
RECALL_TYP = "lienthong-recall/1"
VERSION = 1

#: What an office can report about a document it received (edXML status codes 03-06, 02).
PROCESSING_STATUSES = ("registered", "assigned", "in-progress", "completed", "rejected")
#: Its answers to a recall (edXML 15, 16).
RECALL_ANSWERS = ("recall-accepted", "recall-refused")
STATUSES = frozenset(PROCESSING_STATUSES + RECALL_ANSWERS)
#: Statuses that must say why.
NEEDS_NOTE = frozenset({"rejected", "recall-refused"})

MAX_NOTE = 2000
MAX_REGISTER_NUMBER = 64
MAX_RECIPIENTS = 1000

_STATUS_FIELDS = frozenset({"v", "message_id", "sender", "recipient", "status", "note",
                            "register_number", "time", "receipt_sha256"})
_RECALL_REQUIRED = frozenset({"v", "message_id", "sender", "recipients", "reason", "time"})
_RECALL_OPTIONAL = frozenset({"replaced_by"})
# Control and invisible formatting characters are refused in text from peers (a note
# containing a bidi override could make a console lie); a line break is allowed in notes.
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def token_sha256(token: str) -> str:
    """SHA-256 (hex) of a compact token's ASCII bytes: how one signed object names another."""
    return hashlib.sha256(token.strip().encode("ascii")).hexdigest()


def check_text(value: object, what: str, limit: int, error: type[Exception], *,
               empty: bool = True) -> str:
    """Return ``value`` if it is text of at most ``limit`` characters without hidden ones."""
    if not isinstance(value, str) or len(value) > limit or (not empty and not value.strip()):
        raise error(f"{what} must be text of {0 if empty else 1} to {limit} characters")
    if any(unicodedata.category(c) in _FORBIDDEN for c in value if c != "\n"):
        raise error(f"{what} contains control or invisible formatting characters")
    if unicodedata.normalize("NFC", value) != value:
        raise error(f"{what} is not in Unicode NFC")
    return value


# -- statuses ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StatusInfo:
    """The fields of a status token. Only trust one returned by :func:`verify_status`."""

    message_id: str
    sender: str
    recipient: str
    status: str
    note: str
    register_number: str | None
    time: str
    receipt_sha256: str | None
    token: str
    version: int = VERSION

    @property
    def token_sha256(self) -> str:
        return token_sha256(self.token)


def _check_status_fields(status: object, note: object, register_number: object,
                         receipt_sha256: object, error: type[Exception]) -> None:
    if status not in STATUSES:
        raise error(f"unknown status {status!r}; expected one of {', '.join(sorted(STATUSES))}")
    check_text(note, "note", MAX_NOTE, error, empty=status not in NEEDS_NOTE)
    if register_number is None:
        if status == "registered":
            raise error("a 'registered' status needs the incoming-register number")
    else:
        if status in RECALL_ANSWERS:
            raise error(f"a {status!r} status carries no register number")
        check_text(register_number, "register_number", MAX_REGISTER_NUMBER, error, empty=False)
    if receipt_sha256 is None:
        if status != "recall-refused":
            raise error(f"a {status!r} status must name the receipt it follows")
    else:
        check_hex(receipt_sha256, "receipt_sha256", 64, error)


def issue_status(identity: nacl.signing.SigningKey, *, message_id: str, sender: str,
                 recipient: str, status: str, time: str, receipt_sha256: str | None,
                 note: str = "", register_number: str | None = None) -> str:
    """Sign a status about ``message_id`` (from ``sender``) as ``recipient``.

    ``identity`` must be the identity key of ``recipient``. Deterministic for given inputs, so
    re-issuing an interrupted request with the same ``time`` gives the same token.
    """
    check_hex(message_id, "message_id", 32, MalformedStatus)
    check_node_id(sender, "sender", MalformedStatus)
    check_node_id(recipient, "recipient", MalformedStatus)
    if node_id_from_public_key(identity.verify_key.encode()) != recipient:
        raise ValueError("identity is not the signing key of node ID recipient")
    _check_status_fields(status, note, register_number, receipt_sha256, MalformedStatus)
    check_time(time, "time", MalformedStatus)
    payload = {"v": VERSION, "message_id": message_id, "sender": sender,
               "recipient": recipient, "status": status, "note": note,
               "register_number": register_number, "time": time,
               "receipt_sha256": receipt_sha256}
    return jws.sign(identity, STATUS_TYP, payload, kid=recipient)


def _decode_status(token: str | bytes) -> jws.Decoded:
    try:
        return jws.decode(token, STATUS_TYP)
    except key_errors.WrongType as exc:
        raise StatusWrongType(str(exc)) from exc
    except key_errors.MalformedToken as exc:
        raise MalformedStatus(f"status: {exc}") from exc


def _parse_status(decoded: jws.Decoded) -> StatusInfo:
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] != VERSION:
        raise MalformedStatus(f"unsupported status version {p.get('v')!r}; this node reads v1")
    if set(p) != _STATUS_FIELDS:
        missing, extra = sorted(_STATUS_FIELDS - set(p)), sorted(set(p) - _STATUS_FIELDS)
        raise MalformedStatus(f"status fields wrong: missing {missing}, unknown {extra}")
    recipient = check_node_id(p["recipient"], "recipient", MalformedStatus)
    if decoded.kid != recipient:
        raise MalformedStatus("the status's kid must be the reporting office's node ID")
    _check_status_fields(p["status"], p["note"], p["register_number"], p["receipt_sha256"],
                         MalformedStatus)
    return StatusInfo(
        message_id=check_hex(p["message_id"], "message_id", 32, MalformedStatus),
        sender=check_node_id(p["sender"], "sender", MalformedStatus), recipient=recipient,
        status=p["status"], note=p["note"], register_number=p["register_number"],
        time=check_time(p["time"], "time", MalformedStatus),
        receipt_sha256=p["receipt_sha256"], token=decoded.token)


def decode_status(token: str | bytes) -> StatusInfo:
    """Parse a status for display WITHOUT checking its signature; act on nothing in it."""
    return _parse_status(_decode_status(token))


def verify_status(token: str | bytes, recipient_verify_key: nacl.signing.VerifyKey, *,
                  recipient: str | None = None, sender: str | None = None,
                  message_id: str | None = None) -> StatusInfo:
    """Check a status's type, signature and schema, and whom it is from and about.

    ``recipient_verify_key`` is the identity key of the reporting office (it must hash to the
    ``recipient`` the token names). ``recipient``, ``sender`` and ``message_id``, when given,
    must match the token (the peer the status came from, this node, the message we sent).
    """
    decoded = _decode_status(token)
    try:
        jws.verify_decoded(decoded, recipient_verify_key)
    except key_errors.BadSignature as exc:
        raise StatusBadSignature("the status's signature does not verify") from exc
    info = _parse_status(decoded)
    if node_id_from_public_key(recipient_verify_key.encode()) != info.recipient:
        raise StatusBadSignature(f"the key that signed the status is not the identity of "
                                 f"{info.recipient}")
    for field, want in (("recipient", recipient), ("sender", sender),
                        ("message_id", message_id)):
        if want is not None and getattr(info, field) != want:
            raise StatusMismatch(f"the status's {field} is {getattr(info, field)!r}, "
                                 f"expected {want!r}")
    return info


def check_chain(info: StatusInfo, receipt_token: str) -> None:
    """Raise StatusMismatch unless ``info`` follows exactly ``receipt_token``."""
    if info.receipt_sha256 is None or info.receipt_sha256 != token_sha256(receipt_token):
        raise StatusMismatch(f"the {info.status!r} status of {info.message_id} does not follow "
                             "the receipt this office gave for it")


# -- recalls -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RecallInfo:
    """The fields of a recall token. Only trust one returned by :func:`verify_recall`."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    reason: str
    time: str
    replaced_by: str | None
    token: str
    version: int = VERSION

    @property
    def token_sha256(self) -> str:
        return token_sha256(self.token)


def _check_recall_fields(message_id: object, recipients: object, reason: object,
                         replaced_by: object) -> tuple[str, ...]:
    check_hex(message_id, "message_id", 32, MalformedRecall)
    if (not isinstance(recipients, list | tuple) or not recipients
            or len(recipients) > MAX_RECIPIENTS):
        raise MalformedRecall(f"recipients must be a list of 1 to {MAX_RECIPIENTS} node IDs")
    checked = tuple(check_node_id(r, "recipient", MalformedRecall) for r in recipients)
    if len(set(checked)) != len(checked):
        raise MalformedRecall("recipients must not repeat")
    check_text(reason, "reason", MAX_NOTE, MalformedRecall, empty=False)
    if replaced_by is not None:
        check_hex(replaced_by, "replaced_by", 32, MalformedRecall)
        if replaced_by == message_id:
            raise MalformedRecall("a document cannot replace itself")
    return checked


def issue_recall(identity: nacl.signing.SigningKey, *, message_id: str, sender: str,
                 recipients: tuple[str, ...] | list[str], reason: str, time: str,
                 replaced_by: str | None = None) -> str:
    """Sign, as ``sender``, the recall of ``message_id`` from ``recipients``."""
    check_node_id(sender, "sender", MalformedRecall)
    if node_id_from_public_key(identity.verify_key.encode()) != sender:
        raise ValueError("identity is not the signing key of node ID sender")
    checked = _check_recall_fields(message_id, list(recipients), reason, replaced_by)
    check_time(time, "time", MalformedRecall)
    payload: dict[str, object] = {"v": VERSION, "message_id": message_id, "sender": sender,
                                  "recipients": list(checked), "reason": reason, "time": time}
    if replaced_by is not None:
        payload["replaced_by"] = replaced_by
    return jws.sign(identity, RECALL_TYP, payload, kid=sender)


def _decode_recall(token: str | bytes) -> jws.Decoded:
    try:
        return jws.decode(token, RECALL_TYP)
    except key_errors.WrongType as exc:
        raise RecallWrongType(str(exc)) from exc
    except key_errors.MalformedToken as exc:
        raise MalformedRecall(f"recall: {exc}") from exc


def _parse_recall(decoded: jws.Decoded) -> RecallInfo:
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] != VERSION:
        raise MalformedRecall(f"unsupported recall version {p.get('v')!r}; this node reads v1")
    fields = set(p)
    if not _RECALL_REQUIRED <= fields or fields - _RECALL_REQUIRED - _RECALL_OPTIONAL:
        missing = sorted(_RECALL_REQUIRED - fields)
        extra = sorted(fields - _RECALL_REQUIRED - _RECALL_OPTIONAL)
        raise MalformedRecall(f"recall fields wrong: missing {missing}, unknown {extra}")
    sender = check_node_id(p["sender"], "sender", MalformedRecall)
    if decoded.kid != sender:
        raise MalformedRecall("the recall's kid must be the sender's node ID")
    if "replaced_by" in p and p["replaced_by"] is None:
        raise MalformedRecall("replaced_by, when present, names a message")
    recipients = _check_recall_fields(p["message_id"], p["recipients"], p["reason"],
                                      p.get("replaced_by"))
    return RecallInfo(message_id=p["message_id"], sender=sender, recipients=recipients,
                      reason=p["reason"], time=check_time(p["time"], "time", MalformedRecall),
                      replaced_by=p.get("replaced_by"), token=decoded.token)


def decode_recall(token: str | bytes) -> RecallInfo:
    """Parse a recall for display WITHOUT checking its signature; act on nothing in it."""
    return _parse_recall(_decode_recall(token))


def verify_recall(token: str | bytes, sender_verify_key: nacl.signing.VerifyKey, *,
                  sender: str | None = None, recipient: str | None = None) -> RecallInfo:
    """Check a recall's type, signature and schema; that it comes from ``sender`` (the peer
    the document came from) and is addressed to ``recipient`` (this node), when given."""
    decoded = _decode_recall(token)
    try:
        jws.verify_decoded(decoded, sender_verify_key)
    except key_errors.BadSignature as exc:
        raise RecallBadSignature("the recall's signature does not verify") from exc
    info = _parse_recall(decoded)
    if node_id_from_public_key(sender_verify_key.encode()) != info.sender:
        raise RecallBadSignature(f"the key that signed the recall is not the identity of "
                                 f"{info.sender}")
    if sender is not None and info.sender != sender:
        raise RecallMismatch(f"the recall is signed by {info.sender}, not {sender}")
    if recipient is not None and recipient not in info.recipients:
        raise RecallMismatch(f"{recipient} is not among the recall's recipients")
    return info
