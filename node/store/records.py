"""Plain values the store takes and returns, the state machines of its rows, and its errors.

Units of work run on the database thread and hand their results to reactor code, so everything
here is a frozen dataclass of plain values: no ORM object, no SQLAlchemy ``Row``, nothing that
could run SQL lazily on the reactor thread (alchimia's rule).

State machines (one transition table each; the store refuses anything not listed)::

    dispatch:  sending -> sent      every recipient's receipt is recorded, file moved to sent/
               sending -> failed    could not be sent at all (reason kept, file in failed/)
    delivery:  queued  -> delivered a verified receipt came back (final)
               queued  -> failed    this recipient will not get it (revoked, refused)
               failed  -> delivered a receipt still wins: it is proof of delivery
    received:  publishing -> stored the file is durably in inbox/ and the receipt is signed
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.keys.directory import Peer
from lienthong.keys.jws import canonical_json
from lienthong.node.core.errors import NodeError

PRIORITY_FLASH = 0        # hỏa tốc
PRIORITY_VERY_URGENT = 1  # thượng khẩn
PRIORITY_URGENT = 2       # khẩn
PRIORITY_NORMAL = 3       # thường

DISPATCH_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "sending": frozenset({"sent", "failed"}),
    "sent": frozenset(),
    "failed": frozenset(),
}
DELIVERY_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "queued": frozenset({"delivered", "failed"}),
    "failed": frozenset({"delivered"}),
    "delivered": frozenset(),
}
RECEIVED_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "publishing": frozenset({"stored"}),
    "stored": frozenset(),
}

_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoreError(NodeError):
    """Base class: the store refused an operation or found itself inconsistent."""

    code = "store-error"


class SchemaTooNew(StoreError):
    """The database was written by a newer lienthong; this code refuses to touch it."""


class NotFound(StoreError):
    """The peer, dispatch, delivery or received document named does not exist."""


class Conflict(StoreError):
    """The change would duplicate or contradict something already recorded."""


class DuplicatePeer(Conflict):
    """A peer with that name or node ID is already in the directory."""


class DuplicateMessage(Conflict):
    """A dispatch or received document with that message ID is already recorded."""


class ReceiptMismatch(Conflict):
    """A different receipt is already recorded for the same document (the first one is kept)."""


class PeerRevoked(StoreError):
    """The peer was revoked: nothing more from it is accepted (receipt, status, document),
    checked in the very transaction that would have recorded it (docs/operations.md)."""

    code = "peer-revoked"


class InvalidTransition(StoreError):
    """The row's state machine does not allow this change from its current state."""


def check_transition(table: Mapping[str, frozenset[str]], what: str, current: str,
                     new: str) -> None:
    if new not in table.get(current, frozenset()):
        raise InvalidTransition(f"{what} is {current!r}; it cannot become {new!r}")


def check_message_id(message_id: str) -> str:
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"message ID {message_id!r} is not 32 lowercase hex characters")
    return message_id


def _check_sha256(value: str) -> None:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"SHA-256 {value!r} is not 64 lowercase hex characters")


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")


def meta_json(meta: Mapping[str, Any]) -> str:
    """The stored form of document metadata (canonical JSON; raises ValueError/TypeError)."""
    return canonical_json(dict(meta)).decode("utf-8")


#: Document types the coordination regulation follows (besides any document with a due date).
TRACKED_TYPES = ("programme", "conclusion")


def tracked_row(direction: str, sender_node_id: str, message_id: str, meta: Mapping[str, Any],
                now: str) -> dict[str, Any] | None:
    """The ``tracked_documents`` row of a document, or None when the regulation ignores it."""
    doc_type, period, due = meta.get("type"), meta.get("period"), meta.get("due")
    if not isinstance(doc_type, str) or len(doc_type) > 64:
        doc_type = ""
    period = period if isinstance(period, str) and len(period) <= 16 else None
    due = due if isinstance(due, str) and len(due) == 10 else None
    if doc_type not in TRACKED_TYPES and due is None:
        return None
    return {"direction": direction, "sender_node_id": sender_node_id, "message_id": message_id,
            "doc_type": doc_type, "period": period, "due": due,
            "consolidated": int(meta.get("consolidated") is True), "recorded_at": now}


@dataclass(frozen=True, slots=True)
class TrackedRow:
    """A document the coordination regulation follows (``tracked_documents``)."""

    direction: str
    sender_node_id: str
    message_id: str
    doc_type: str
    period: str | None
    due: str | None
    consolidated: bool
    recorded_at: str


@dataclass(frozen=True, slots=True)
class ReminderRow:
    """A reminder message sent (or claimed) for a programme obligation (``programme_reminders``)."""

    office: str
    kind: str
    period: str
    step: str
    due: str
    claimed_at: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer as the store keeps it: the directory value, plus its card and enrolment time."""

    peer: Peer
    card: str
    added_at: str


@dataclass(frozen=True, slots=True)
class NewDispatch:
    """An outgoing document just packaged into the spool, with the peers it goes to."""

    message_id: str
    name: str
    target: str
    spool_dir: str
    header_token: str
    size: int
    #: None: a streamed seal, whose digest is recorded when its trailer is signed.
    sha256: str | None
    ciphertext_size: int
    priority: int
    meta: Mapping[str, Any]
    recipients: tuple[str, ...]

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        if self.sha256 is not None:
            _check_sha256(self.sha256)
        _check_size("size", self.size)
        _check_size("ciphertext_size", self.ciphertext_size)
        if self.priority not in (PRIORITY_FLASH, PRIORITY_VERY_URGENT, PRIORITY_URGENT,
                                 PRIORITY_NORMAL):
            raise ValueError(f"priority must be 0 (flash) to 3 (normal), not {self.priority!r}")
        if not isinstance(self.recipients, tuple) or not self.recipients:
            raise ValueError("a dispatch needs a tuple of one or more recipient node IDs")
        if len(set(self.recipients)) != len(self.recipients):
            raise ValueError("a recipient is listed twice")
        meta_json(self.meta)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One recipient of one dispatch."""

    message_id: str
    peer_node_id: str
    state: str
    attempts: int
    bytes_sent: int
    last_error: str | None
    receipt: str | None
    receipt_at: str | None
    offered_at: str | None


@dataclass(frozen=True, slots=True)
class DispatchRow:
    """An outgoing document and the state of each of its deliveries."""

    message_id: str
    name: str
    target: str
    spool_dir: str
    header_token: str
    size: int
    sha256: str | None   # None until a streamed seal's trailer is signed
    ciphertext_size: int
    priority: int
    meta: Mapping[str, Any]
    state: str
    created_at: str
    finished_at: str | None
    sent_path: str | None
    error: str | None
    deliveries: tuple[DeliveryRow, ...]


@dataclass(frozen=True, slots=True)
class QueuedDelivery:
    """What the sender needs to offer one queued document to one peer."""

    message_id: str
    peer_node_id: str
    spool_dir: str
    header_token: str
    ciphertext_size: int
    priority: int
    name: str
    size: int
    sha256: str | None   # None until a streamed seal's trailer is signed
    created_at: str
    attempts: int
    bytes_sent: int

    @classmethod
    def recorded(cls, dispatch: DispatchRow, peer_node_id: str) -> QueuedDelivery:
        """The delivery to ``peer_node_id`` of a dispatch just recorded (never attempted), as
        ``queued_deliveries`` would read it back."""
        return cls(message_id=dispatch.message_id, peer_node_id=peer_node_id,
                   spool_dir=dispatch.spool_dir, header_token=dispatch.header_token,
                   ciphertext_size=dispatch.ciphertext_size, priority=dispatch.priority,
                   name=dispatch.name, size=dispatch.size, sha256=dispatch.sha256,
                   created_at=dispatch.created_at, attempts=0, bytes_sent=0)

    @classmethod
    def sealed(cls, dispatch: NewDispatch, peer_node_id: str, now: str) -> QueuedDelivery:
        """The delivery to ``peer_node_id`` of a dispatch sealed and not yet committed, as
        ``recorded`` will read it once it is (``created_at`` is ``now``, a moment sooner)."""
        return cls(message_id=dispatch.message_id, peer_node_id=peer_node_id,
                   spool_dir=dispatch.spool_dir, header_token=dispatch.header_token,
                   ciphertext_size=dispatch.ciphertext_size, priority=dispatch.priority,
                   name=dispatch.name, size=dispatch.size, sha256=dispatch.sha256,
                   created_at=now, attempts=0, bytes_sent=0)


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """When to try a peer next, and how it went last time (failures 0 = never failed)."""

    node_id: str
    failures: int
    next_attempt_at: float
    last_error: str | None
    last_connected_at: str | None
    last_seen_at: str | None


@dataclass(frozen=True, slots=True)
class NewReceived:
    """A verified incoming document about to be published into ``inbox/<sender>/``."""

    sender_node_id: str
    message_id: str
    name: str
    stored_path: str
    size: int
    sha256: str
    header_token: str
    meta: Mapping[str, Any]
    #: edXML copies are to be written beside it once stored (node/store/edxml_ids.py).
    edxml_copies: bool = False

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        _check_sha256(self.sha256)
        _check_size("size", self.size)
        meta_json(self.meta)


@dataclass(frozen=True, slots=True)
class ReceivedRow:
    """An incoming document: ``publishing`` until it is durably in the inbox, then ``stored``."""

    sender_node_id: str
    message_id: str
    name: str
    stored_path: str
    size: int
    sha256: str
    header_token: str
    state: str
    receipt: str | None
    received_at: str
    meta: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuditHead:
    """A signed statement that the audit chain reached ``seq`` with ``hash`` at ``time``."""

    seq: int
    hash: str
    signature: str
    time: str


# -- documents as the offices know them (node/store/documents.py) ----------------------------
#
#    control request: new -> done | failed   (the daemon turned it into signed objects, or not)
#    processing (an office's own reports, checked before it signs one; see PROCESSING_TRANSITIONS)

CONTROL_REQUEST_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "new": frozenset({"done", "failed"}),
    "done": frozenset(),
    "failed": frozenset(),
}
#: What an office may report next about a document it received (None: nothing reported yet).
#: Completed and rejected are final; "assigned" and "in-progress" may repeat (reassignment,
#: progress notes).
PROCESSING_TRANSITIONS: Mapping[str | None, frozenset[str]] = {
    None: frozenset({"registered", "assigned", "in-progress", "completed", "rejected"}),
    "registered": frozenset({"assigned", "in-progress", "completed", "rejected"}),
    "assigned": frozenset({"assigned", "in-progress", "completed", "rejected"}),
    "in-progress": frozenset({"in-progress", "completed", "rejected"}),
    "completed": frozenset(),
    "rejected": frozenset(),
}
CONTROL_REQUEST_KINDS = frozenset({"status", "recall"})


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """Work the CLI asked of the daemon (sign and send a status, or a recall)."""

    id: int
    kind: str
    message_id: str
    peer: str | None
    payload: Mapping[str, Any]
    state: str
    created_at: str
    done_at: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class NewStatus:
    """A verified status token, about to be kept (``peer_node_id`` signed it)."""

    message_id: str
    peer_node_id: str
    sender_node_id: str
    status: str
    note: str
    register_number: str | None
    token: str
    token_sha256: str
    receipt_sha256: str | None
    time: str

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        _check_sha256(self.token_sha256)
        if self.receipt_sha256 is not None:
            _check_sha256(self.receipt_sha256)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """A kept status, in the order it was recorded."""

    id: int
    message_id: str
    peer_node_id: str
    sender_node_id: str
    status: str
    note: str
    register_number: str | None
    token: str
    token_sha256: str
    receipt_sha256: str | None
    time: str
    received_at: str


@dataclass(frozen=True, slots=True)
class NewRecall:
    """A recall token we sent (``sent``) or received and answered (``accepted``/``refused``)."""

    message_id: str
    sender_node_id: str
    token: str
    token_sha256: str
    reason: str
    replaced_by: str | None
    state: str
    refusal: str | None
    recalled_path: str | None
    time: str

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        _check_sha256(self.token_sha256)
        if self.state not in ("sent", "accepted", "refused"):
            raise ValueError(f"recall state {self.state!r} is unknown")
        if (self.state == "refused") != (self.refusal is not None):
            raise ValueError("a refused recall, and only one, says why")


@dataclass(frozen=True, slots=True)
class RecallRow:
    """A kept recall."""

    id: int
    message_id: str
    sender_node_id: str
    token: str
    token_sha256: str
    reason: str
    replaced_by: str | None
    state: str
    refusal: str | None
    recalled_path: str | None
    time: str
    recorded_at: str


# -- the yearly review (schema version 4): witnessed heads and reconciliations ----------------

#: A reconciliation exchange::
#:
#:     requested -> pending     our summary was signed and sent; the peer's answer is awaited
#:     requested -> agreed      (responder) our answer was sent and the roots are the same
#:     requested -> differs     (responder) our answer was sent; the records differ
#:     pending   -> agreed      the roots are the same
#:     pending   -> differs     the item lists were compared; ``differences`` lists them
#:     differs   -> differs     the other side's lists arrived (the differences are refined)
RECONCILIATION_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "requested": frozenset({"pending", "agreed", "differs"}),
    "pending": frozenset({"pending", "agreed", "differs"}),
    "agreed": frozenset(),
    "differs": frozenset({"differs"}),
}


@dataclass(frozen=True, slots=True)
class PeerHeadRow:
    """A peer's signed audit head this node holds, and the witness this node signed for it."""

    id: int
    node_id: str
    seq: int
    hash: str
    head_time: str
    head: str
    head_sha256: str
    witness: str
    witness_index: int
    witness_sha256: str
    received_at: str


@dataclass(frozen=True, slots=True)
class HeadWitnessRow:
    """A witness a peer signed for one of this node's own heads."""

    id: int
    witness_node_id: str
    seq: int
    hash: str
    head_sha256: str
    witness_index: int
    token: str
    token_sha256: str
    witnessed_at: str
    received_at: str


@dataclass(frozen=True, slots=True)
class ReconciliationRow:
    """One reconciliation exchange with a peer for a period (node/reconciliation)."""

    id: int
    exchange: str
    peer_node_id: str
    period: str
    role: str
    state: str
    requested_at: str
    updated_at: str
    next_attempt_at: str | None
    attempts: int
    own_summary: str | None
    peer_summary: str | None
    differences: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RecordedDocument:
    """A document as one side's record knows it, for reconciliation: the header token (its
    signed ``created``), the digest and the receipt (None: never receipted)."""

    message_id: str
    sha256: str | None   # None: a streamed seal whose trailer is not signed yet
    header_token: str
    receipt: str | None
    meta: str


@dataclass(frozen=True, slots=True)
class PetitionRow:
    """A line of the petition register (``petitions``); ``details`` holds personal data."""

    direction: str
    peer_node_id: str
    message_id: str
    kind: str
    number: str | None
    received_date: str
    details: dict[str, Any]
    recorded_at: str
    accepted_at: str | None
    complex: bool
    rejected_at: str | None
    resolved_at: str | None
    outcome: str | None
    refusal_token: str | None
    refusal_code: str | None
    refusal_reason: str | None
