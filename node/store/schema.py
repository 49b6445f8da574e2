"""The store's tables as the code queries them today (SQLAlchemy Core, no ORM).

This module describes the *current* schema, for building queries. It is not how a database gets
that shape: ``lienthong.node.store.migrations`` does that, with frozen steps, so an office's
existing database is upgraded rather than recreated. A test checks that a freshly migrated
database has exactly these tables, columns and indexes, so the two cannot drift apart silently.

Conventions: times are RFC 3339 text given by the caller (``now``), except
``peer_schedule.next_attempt_at`` which is epoch seconds for cheap comparison; JSON is stored as
canonical text; key and indexed columns are bounded ``String`` so any SQL database can index
them; enumerated states are also enforced by CHECK constraints (fail closed at the bottom).
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: The schema version this code writes and understands (``lienthong.node.store.migrations``
#: reaches it).
SCHEMA_VERSION = 10

NODE_ID = 100  # "XXXXXXX-" * 8 is 63 characters; leave room.
NAME = 200
TIME = 40
MESSAGE_ID = 32
DIGEST = 64

metadata = MetaData()

#: One row: the schema version. Created by ``migrate`` itself (not by a step), so its shape
#: must never change.
schema_meta = Table(
    "schema_meta", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    CheckConstraint("id = 1", name="schema_meta_single_row"),
)

peers = Table(
    "peers", metadata,
    Column("name", String(NAME), primary_key=True),
    Column("node_id", String(NODE_ID), nullable=False, unique=True),
    Column("card", Text, nullable=False),
    Column("addresses", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("revoked_at", String(TIME)),
    Column("reason", Text),
    Column("added_at", String(TIME), nullable=False),
    CheckConstraint("state IN ('trusted', 'revoked')", name="peers_state"),
)

#: Every key a peer has ever used (never deleted, even when the peer is removed), so old
#: signatures and receipts stay verifiable.
peer_keys = Table(
    "peer_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node_id", String(NODE_ID), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),
    Column("kid", String(NAME), nullable=False),
    Column("valid_from", String(TIME), nullable=False),
    Column("valid_until", String(TIME)),
    CheckConstraint("kind IN ('identity', 'encryption', 'tls')", name="peer_keys_kind"),
    Index("peer_keys_by_node", "node_id", "kind"),
)

#: One row, bumped in the same transaction as any change to peers or peer_keys, so a daemon can
#: notice enrolment or revocation done by the CLI in another process with one cheap query.
directory_version = Table(
    "directory_version", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    CheckConstraint("id = 1", name="directory_version_single_row"),
)

dispatches = Table(
    "dispatches", metadata,
    Column("message_id", String(MESSAGE_ID), primary_key=True),
    # Queue order within a priority: assigned by the store (last + 1), so "oldest first" holds
    # even when two documents are taken in the same second or the clock steps back.
    Column("seq", Integer, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("target", String(NAME), nullable=False),
    Column("spool_dir", Text, nullable=False),
    Column("header_token", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    # NULL while a large v3 document is still being read and sent: set when the sender signs
    # its trailer (and at the latest with its first receipt), docs/design.md §5.3.
    Column("sha256", String(DIGEST)),
    Column("ciphertext_size", BigInteger, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("meta", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", String(TIME), nullable=False),
    Column("finished_at", String(TIME)),
    Column("sent_path", Text),
    Column("error", Text),
    CheckConstraint("state IN ('sending', 'sent', 'failed')", name="dispatches_state"),
    CheckConstraint("priority BETWEEN 0 AND 3", name="dispatches_priority"),
    Index("dispatches_by_state", "state", "created_at"),
    # The send queue in order, so "next 32 for this peer" never sorts the whole queue.
    Index("dispatches_queue", "state", "priority", "seq"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("message_id", String(MESSAGE_ID), ForeignKey("dispatches.message_id"),
           primary_key=True),
    Column("peer_node_id", String(NODE_ID), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("bytes_sent", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("receipt", Text),
    Column("receipt_at", String(TIME)),
    Column("offered_at", String(TIME)),
    CheckConstraint("state IN ('queued', 'delivered', 'failed')", name="deliveries_state"),
    Index("deliveries_by_peer", "peer_node_id", "state"),
)

peer_schedule = Table(
    "peer_schedule", metadata,
    Column("node_id", String(NODE_ID), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Column("last_connected_at", String(TIME)),
    Column("last_seen_at", String(TIME)),
)

received = Table(
    "received", metadata,
    Column("sender_node_id", String(NODE_ID), primary_key=True),
    Column("message_id", String(MESSAGE_ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("stored_path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(DIGEST), nullable=False),
    Column("header_token", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("receipt", Text),
    Column("received_at", String(TIME), nullable=False),
    Column("meta", Text, nullable=False),
    CheckConstraint("state IN ('publishing', 'stored')", name="received_state"),
    Index("received_by_state", "state"),
    Index("received_by_message", "message_id"),
)

#: ``seq`` is assigned by the store (last + 1), not by the database, because it is part of the
#: hashed fields; the primary key and the UNIQUE ``prev_hash`` make a forked chain impossible
#: even if two processes append at once on a database without SQLite's write lock.
audit = Table(
    "audit", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time", String(TIME), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("peer", String(NAME)),
    Column("message_id", String(MESSAGE_ID)),
    Column("digest", String(128)),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(DIGEST), nullable=False, unique=True),
    Column("hash", String(DIGEST), nullable=False),
    Index("audit_by_kind", "kind"),
    Index("audit_by_peer", "peer"),
    Index("audit_by_message", "message_id"),
)

audit_heads = Table(
    "audit_heads", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(DIGEST), nullable=False),
    Column("signature", Text, nullable=False),
    Column("time", String(TIME), nullable=False),
)

# -- version 2: documents as the offices know them (node/store/documents.py) -----------------

#: Work the CLI asks of the running daemon without its keystore passphrase (``lienthong mark``,
#: ``lienthong recall``); the daemon polls for ``new`` rows and turns them into signed objects.
control_requests = Table(
    "control_requests", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("message_id", String(MESSAGE_ID), nullable=False),
    Column("peer", String(NODE_ID)),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", String(TIME), nullable=False),
    Column("done_at", String(TIME)),
    Column("error", Text),
    CheckConstraint("kind IN ('status', 'recall')", name="control_requests_kind"),
    CheckConstraint("state IN ('new', 'done', 'failed')", name="control_requests_state"),
    Index("control_requests_by_state", "state", "id"),
)

#: Signed processing statuses: reported to us by the offices we sent to, and our own reports
#: about documents we received (``peer_node_id`` is the office that signed the status).
document_status = Table(
    "document_status", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(MESSAGE_ID), nullable=False),
    Column("peer_node_id", String(NODE_ID), nullable=False),
    Column("sender_node_id", String(NODE_ID), nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False),
    Column("register_number", String(NAME)),
    Column("token", Text, nullable=False),
    Column("token_sha256", String(DIGEST), nullable=False, unique=True),
    Column("receipt_sha256", String(DIGEST)),
    Column("time", String(TIME), nullable=False),
    Column("received_at", String(TIME), nullable=False),
    CheckConstraint("status IN ('registered', 'assigned', 'in-progress', 'completed', "
                    "'rejected', 'recall-accepted', 'recall-refused')",
                    name="document_status_status"),
    Index("document_status_by_message", "message_id", "peer_node_id"),
)

#: Signed recalls: those we sent (``sent``) and those we received and answered
#: (``accepted``: the document is in recalled/; ``refused``: ``refusal`` says why).
recalls = Table(
    "recalls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(MESSAGE_ID), nullable=False),
    Column("sender_node_id", String(NODE_ID), nullable=False),
    Column("token", Text, nullable=False),
    Column("token_sha256", String(DIGEST), nullable=False, unique=True),
    Column("reason", Text, nullable=False),
    Column("replaced_by", String(MESSAGE_ID)),
    Column("state", String(16), nullable=False),
    Column("refusal", Text),
    Column("recalled_path", Text),
    Column("time", String(TIME), nullable=False),
    Column("recorded_at", String(TIME), nullable=False),
    CheckConstraint("state IN ('sent', 'accepted', 'refused')", name="recalls_state"),
    Index("recalls_by_message", "message_id", "sender_node_id"),
)

# -- version 4: the yearly review: witnessed audit heads, reconciliation (docs/review.md) --------

#: Heads of peers' audit chains that this node witnessed: the peer's signed head token and the
#: witness this node signed for it (``witness_index`` counts per peer, from 1). Never updated:
#: a head that contradicts one held is refused, not stored.
peer_heads = Table(
    "peer_heads", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node_id", String(NODE_ID), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(DIGEST), nullable=False),
    Column("head_time", String(TIME), nullable=False),
    Column("head", Text, nullable=False),
    Column("head_sha256", String(DIGEST), nullable=False, unique=True),
    Column("witness", Text, nullable=False),
    Column("witness_index", Integer, nullable=False),
    Column("witness_sha256", String(DIGEST), nullable=False),
    Column("received_at", String(TIME), nullable=False),
    UniqueConstraint("node_id", "seq", name="peer_heads_one_per_seq"),
    UniqueConstraint("node_id", "witness_index", name="peer_heads_one_per_index"),
)

#: Witnesses peers signed for this node's own heads (``lienthong-audit-witness/1`` tokens).
head_witnesses = Table(
    "head_witnesses", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("witness_node_id", String(NODE_ID), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(DIGEST), nullable=False),
    Column("head_sha256", String(DIGEST), nullable=False),
    Column("witness_index", Integer, nullable=False),
    Column("token", Text, nullable=False),
    Column("token_sha256", String(DIGEST), nullable=False, unique=True),
    Column("witnessed_at", String(TIME), nullable=False),
    Column("received_at", String(TIME), nullable=False),
    UniqueConstraint("witness_node_id", "witness_index", name="head_witnesses_one_per_index"),
)

#: Reconciliation exchanges with a peer for a period: asked for here (``initiator``) or by
#: the peer (``responder``); ``differences`` is the JSON list of what the records disagree on.
reconciliations = Table(
    "reconciliations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange", String(MESSAGE_ID), nullable=False),
    Column("peer_node_id", String(NODE_ID), nullable=False),
    Column("period", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("requested_at", String(TIME), nullable=False),
    Column("updated_at", String(TIME), nullable=False),
    Column("next_attempt_at", String(TIME)),
    Column("attempts", Integer, nullable=False),
    Column("own_summary", Text),
    Column("peer_summary", Text),
    Column("differences", Text),
    Column("error", Text),
    CheckConstraint("role IN ('initiator', 'responder')", name="reconciliations_role"),
    CheckConstraint("state IN ('requested', 'pending', 'agreed', 'differs')",
                    name="reconciliations_state"),
    UniqueConstraint("exchange", "peer_node_id", name="reconciliations_one_per_exchange"),
    Index("reconciliations_by_state", "state"),
    Index("reconciliations_by_peer", "peer_node_id", "period"),
)

# -- version 5: edXML DocumentIds and copies due (docs/edxml.md) ------------------------------

#: The edXML DocumentId of each document sent or received as edXML (docs/edxml.md), so a
#: recall, replacement or status message naming it is found by an index, not a scan. Keyed by
#: the SHA-256 of the DocumentId (free text of up to 2000 characters, too long to index on
#: every database); ``document_id`` keeps the text itself.
edxml_documents = Table(
    "edxml_documents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("direction", String(8), nullable=False),
    Column("document_key", String(DIGEST), nullable=False),
    Column("document_id", Text, nullable=False),
    Column("message_id", String(MESSAGE_ID), nullable=False),
    Column("sender_node_id", String(NODE_ID)),
    CheckConstraint("direction IN ('sent', 'received')", name="edxml_documents_direction"),
    Index("edxml_documents_by_key", "direction", "document_key"),
)

#: Received documents whose edXML copies (an unpacked folder, an .edxml beside) are still to be
#: written: recorded with the ``publishing`` row, removed once written, so start-up recovery
#: makes the copies a crash interrupted (docs/design.md §6).
edxml_copies_due = Table(
    "edxml_copies_due", metadata,
    Column("sender_node_id", String(NODE_ID), primary_key=True),
    Column("message_id", String(MESSAGE_ID), primary_key=True),
)

# -- version 6: the coordination regulation (node/store/coordination.py) ----------------------

#: Documents the coordination regulation follows (programmes, conclusions, anything with a
#: ``due`` date), indexed by type, period and due day so deadlines are found without reading
#: every document's metadata. ``direction`` is ``sent`` (``sender_node_id`` empty) or
#: ``received``; the row is written in the same transaction as the dispatch or reception.
tracked_documents = Table(
    "tracked_documents", metadata,
    Column("direction", String(8), primary_key=True),
    Column("sender_node_id", String(NODE_ID), primary_key=True),
    Column("message_id", String(MESSAGE_ID), primary_key=True),
    Column("doc_type", String(64), nullable=False),
    Column("period", String(16)),
    Column("due", String(10)),
    Column("consolidated", Integer, nullable=False),
    Column("recorded_at", String(TIME), nullable=False),
    CheckConstraint("direction IN ('sent', 'received')", name="tracked_documents_direction"),
    CheckConstraint("consolidated IN (0, 1)", name="tracked_documents_consolidated"),
    Index("tracked_by_period", "doc_type", "period"),
    Index("tracked_by_due", "due"),
)

# -- version 7: reminders sent to offices that owe a programme (node/coordination/reminders.py)

#: One row per programme obligation (office, kind, period) and step (``reminder``: the
#: reminder window opened; ``overdue``: the due day passed) for which the consolidating office
#: sent, or began sending, a signed reminder message. The primary key is what keeps a reminder
#: from being sent twice, across restarts; ``message_id`` is filled in once the message is
#: queued (NULL: a crash came between claiming and queueing it; it is not sent again).
programme_reminders = Table(
    "programme_reminders", metadata,
    Column("office", String(NAME), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("step", String(16), primary_key=True),
    Column("due", String(10), nullable=False),
    Column("claimed_at", String(TIME), nullable=False),
    Column("message_id", String(MESSAGE_ID)),
    CheckConstraint("step IN ('reminder', 'overdue')", name="programme_reminders_step"),
)

# -- version 8: the petition register (node/store/petitions.py) ---------------------------

#: The petition register (sổ theo dõi đơn, docs/petitions.md §4): one row per petition
#: received from a peer (``direction`` ``received``, ``peer_node_id`` its sender) or forwarded
#: to one (``sent``, the recipient). ``details`` is the petition's sealed metadata as JSON
#: (personal data: read only by ``lienthong petitions`` and the petition page). What the
#: handling office decided is kept at that office (``accepted_at``...) and travels back as
#: signed statuses; a refusal by the receiver is kept, signed, at the sender.
petitions = Table(
    "petitions", metadata,
    Column("direction", String(8), primary_key=True),
    Column("peer_node_id", String(NODE_ID), primary_key=True),
    Column("message_id", String(MESSAGE_ID), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("number", String(64)),
    Column("received_date", String(10), nullable=False),
    Column("details", Text, nullable=False),
    Column("recorded_at", String(TIME), nullable=False),
    Column("accepted_at", String(TIME)),
    Column("complex", Integer, nullable=False),
    Column("rejected_at", String(TIME)),
    Column("resolved_at", String(TIME)),
    Column("outcome", Text),
    Column("refusal_token", Text),
    Column("refusal_code", String(64)),
    Column("refusal_reason", Text),
    CheckConstraint("direction IN ('sent', 'received')", name="petitions_direction"),
    CheckConstraint("complex IN (0, 1)", name="petitions_complex"),
    Index("petitions_by_received_date", "received_date"),
    Index("petitions_by_message", "message_id"),
)

# -- version 10: sidecars still to be written (node/inbox/publication.py) -----------------------

#: Received documents whose sidecars (``NAME.meta.json``, ``NAME.receipt.jws``) are not known
#: to be durable yet: recorded with the ``publishing`` row, removed once both are written,
#: fsynced and renamed into place after the ``stored`` commit (off the receipt's path).
#: Start-up writes the rest again from the store (docs/design.md §6).
sidecars_due = Table(
    "sidecars_due", metadata,
    Column("sender_node_id", String(NODE_ID), primary_key=True),
    Column("message_id", String(MESSAGE_ID), primary_key=True),
)
