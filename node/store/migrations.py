"""Schema migrations: numbered, frozen steps that bring any older store up to this code's schema.

Theory of operation
-------------------
``schema_meta`` holds one row with the schema version. ``migrate(engine)`` reads it (0 when the
database is empty), refuses a database written by newer code (it could not understand it, and
writing to it could destroy what the newer code relies on), and applies each missing step in
order inside ONE transaction, setting the version last, so a crash leaves either the old
schema or the new one, never half of each. (SQLite's DDL is transactional; the store opens
write transactions with ``BEGIN IMMEDIATE``, so two processes starting at once cannot both
migrate.)

Steps are frozen history: a step's tables are written out here as they were at that version,
not imported from ``lienthong.node.store.schema`` (which describes today's tables and will
change). To change the schema, append a step ``(n + 1, function)``, raise
``schema.SCHEMA_VERSION``, and update ``lienthong.node.store.schema``; the test that compares a
migrated database with that module keeps them honest.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

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
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

from lienthong.node.store import schema
from lienthong.node.store.records import SchemaTooNew, StoreError


def _v1(conn: Connection) -> None:
    """Version 1: peer directory, outgoing dispatches and deliveries, reception, audit."""
    md = MetaData()
    Table("peers", md,
          Column("name", String(200), primary_key=True),
          Column("node_id", String(100), nullable=False, unique=True),
          Column("card", Text, nullable=False),
          Column("addresses", Text, nullable=False),
          Column("state", String(16), nullable=False),
          Column("revoked_at", String(40)),
          Column("reason", Text),
          Column("added_at", String(40), nullable=False),
          CheckConstraint("state IN ('trusted', 'revoked')", name="peers_state"))
    Table("peer_keys", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("node_id", String(100), nullable=False),
          Column("kind", String(16), nullable=False),
          Column("value", Text, nullable=False),
          Column("kid", String(200), nullable=False),
          Column("valid_from", String(40), nullable=False),
          Column("valid_until", String(40)),
          CheckConstraint("kind IN ('identity', 'encryption', 'tls')", name="peer_keys_kind"),
          Index("peer_keys_by_node", "node_id", "kind"))
    directory_version = Table(
        "directory_version", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("version", Integer, nullable=False),
        CheckConstraint("id = 1", name="directory_version_single_row"))
    Table("dispatches", md,
          Column("message_id", String(32), primary_key=True),
          Column("seq", Integer, nullable=False, unique=True),
          Column("name", Text, nullable=False),
          Column("target", String(200), nullable=False),
          Column("spool_dir", Text, nullable=False),
          Column("header_token", Text, nullable=False),
          Column("size", BigInteger, nullable=False),
          Column("sha256", String(64), nullable=False),
          Column("ciphertext_size", BigInteger, nullable=False),
          Column("priority", Integer, nullable=False),
          Column("meta", Text, nullable=False),
          Column("state", String(16), nullable=False),
          Column("created_at", String(40), nullable=False),
          Column("finished_at", String(40)),
          Column("sent_path", Text),
          Column("error", Text),
          CheckConstraint("state IN ('sending', 'sent', 'failed')", name="dispatches_state"),
          CheckConstraint("priority BETWEEN 0 AND 3", name="dispatches_priority"),
          Index("dispatches_by_state", "state", "created_at"))
    Table("deliveries", md,
          Column("message_id", String(32), ForeignKey("dispatches.message_id"),
                 primary_key=True),
          Column("peer_node_id", String(100), primary_key=True),
          Column("state", String(16), nullable=False),
          Column("attempts", Integer, nullable=False),
          Column("bytes_sent", BigInteger, nullable=False),
          Column("last_error", Text),
          Column("receipt", Text),
          Column("receipt_at", String(40)),
          Column("offered_at", String(40)),
          CheckConstraint("state IN ('queued', 'delivered', 'failed')",
                          name="deliveries_state"),
          Index("deliveries_by_peer", "peer_node_id", "state"))
    Table("peer_schedule", md,
          Column("node_id", String(100), primary_key=True),
          Column("failures", Integer, nullable=False),
          Column("next_attempt_at", Float, nullable=False),
          Column("last_error", Text),
          Column("last_connected_at", String(40)),
          Column("last_seen_at", String(40)))
    Table("received", md,
          Column("sender_node_id", String(100), primary_key=True),
          Column("message_id", String(32), primary_key=True),
          Column("name", Text, nullable=False),
          Column("stored_path", Text, nullable=False),
          Column("size", BigInteger, nullable=False),
          Column("sha256", String(64), nullable=False),
          Column("header_token", Text, nullable=False),
          Column("state", String(16), nullable=False),
          Column("receipt", Text),
          Column("received_at", String(40), nullable=False),
          Column("meta", Text, nullable=False),
          CheckConstraint("state IN ('publishing', 'stored')", name="received_state"),
          Index("received_by_state", "state"))
    Table("audit", md,
          Column("seq", Integer, primary_key=True, autoincrement=False),
          Column("time", String(40), nullable=False),
          Column("kind", String(64), nullable=False),
          Column("peer", String(200)),
          Column("message_id", String(32)),
          Column("digest", String(128)),
          Column("detail", Text, nullable=False),
          Column("prev_hash", String(64), nullable=False, unique=True),
          Column("hash", String(64), nullable=False),
          Index("audit_by_kind", "kind"),
          Index("audit_by_peer", "peer"),
          Index("audit_by_message", "message_id"))
    Table("audit_heads", md,
          Column("seq", Integer, primary_key=True, autoincrement=False),
          Column("hash", String(64), nullable=False),
          Column("signature", Text, nullable=False),
          Column("time", String(40), nullable=False))
    md.create_all(conn)
    conn.execute(insert(directory_version).values(id=1, version=0))


def _v2(conn: Connection) -> None:
    """Version 2: control requests from the CLI, processing statuses, recalls."""
    md = MetaData()
    Table("control_requests", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("kind", String(16), nullable=False),
          Column("message_id", String(32), nullable=False),
          Column("peer", String(100)),
          Column("payload", Text, nullable=False),
          Column("state", String(16), nullable=False),
          Column("created_at", String(40), nullable=False),
          Column("done_at", String(40)),
          Column("error", Text),
          CheckConstraint("kind IN ('status', 'recall')", name="control_requests_kind"),
          CheckConstraint("state IN ('new', 'done', 'failed')", name="control_requests_state"),
          Index("control_requests_by_state", "state", "id"))
    Table("document_status", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("message_id", String(32), nullable=False),
          Column("peer_node_id", String(100), nullable=False),
          Column("sender_node_id", String(100), nullable=False),
          Column("status", String(16), nullable=False),
          Column("note", Text, nullable=False),
          Column("register_number", String(200)),
          Column("token", Text, nullable=False),
          Column("token_sha256", String(64), nullable=False, unique=True),
          Column("receipt_sha256", String(64)),
          Column("time", String(40), nullable=False),
          Column("received_at", String(40), nullable=False),
          CheckConstraint("status IN ('registered', 'assigned', 'in-progress', 'completed', "
                          "'rejected', 'recall-accepted', 'recall-refused')",
                          name="document_status_status"),
          Index("document_status_by_message", "message_id", "peer_node_id"))
    Table("recalls", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("message_id", String(32), nullable=False),
          Column("sender_node_id", String(100), nullable=False),
          Column("token", Text, nullable=False),
          Column("token_sha256", String(64), nullable=False, unique=True),
          Column("reason", Text, nullable=False),
          Column("replaced_by", String(32)),
          Column("state", String(16), nullable=False),
          Column("refusal", Text),
          Column("recalled_path", Text),
          Column("time", String(40), nullable=False),
          Column("recorded_at", String(40), nullable=False),
          CheckConstraint("state IN ('sent', 'accepted', 'refused')", name="recalls_state"),
          Index("recalls_by_message", "message_id", "sender_node_id"))
    md.create_all(conn)


def _v3(conn: Connection) -> None:
    """Version 3: an index in queue order (state, priority, seq) for queued_deliveries."""
    conn.exec_driver_sql("CREATE INDEX dispatches_queue ON dispatches (state, priority, seq)")


def _v4(conn: Connection) -> None:
    """Version 4: witnessed audit heads (both ways) and reconciliation exchanges."""
    md = MetaData()
    Table("peer_heads", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("node_id", String(100), nullable=False),
          Column("seq", Integer, nullable=False),
          Column("hash", String(64), nullable=False),
          Column("head_time", String(40), nullable=False),
          Column("head", Text, nullable=False),
          Column("head_sha256", String(64), nullable=False, unique=True),
          Column("witness", Text, nullable=False),
          Column("witness_index", Integer, nullable=False),
          Column("witness_sha256", String(64), nullable=False),
          Column("received_at", String(40), nullable=False),
          UniqueConstraint("node_id", "seq", name="peer_heads_one_per_seq"),
          UniqueConstraint("node_id", "witness_index", name="peer_heads_one_per_index"))
    Table("head_witnesses", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("witness_node_id", String(100), nullable=False),
          Column("seq", Integer, nullable=False),
          Column("hash", String(64), nullable=False),
          Column("head_sha256", String(64), nullable=False),
          Column("witness_index", Integer, nullable=False),
          Column("token", Text, nullable=False),
          Column("token_sha256", String(64), nullable=False, unique=True),
          Column("witnessed_at", String(40), nullable=False),
          Column("received_at", String(40), nullable=False),
          UniqueConstraint("witness_node_id", "witness_index",
                           name="head_witnesses_one_per_index"))
    Table("reconciliations", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("exchange", String(32), nullable=False),
          Column("peer_node_id", String(100), nullable=False),
          Column("period", String(16), nullable=False),
          Column("role", String(16), nullable=False),
          Column("state", String(16), nullable=False),
          Column("requested_at", String(40), nullable=False),
          Column("updated_at", String(40), nullable=False),
          Column("next_attempt_at", String(40)),
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
          Index("reconciliations_by_peer", "peer_node_id", "period"))
    md.create_all(conn)


def _edxml_document_id(meta_text: str) -> str | None:
    """The edXML DocumentId a stored document's metadata JSON records, if any."""
    try:
        meta = json.loads(meta_text)
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    edxml = meta.get("edxml")
    if meta.get("kind", "document") != "document" or not isinstance(edxml, dict):
        return None
    found = edxml.get("document_id")
    return found if isinstance(found, str) and found else None


def _v5(conn: Connection) -> None:
    """Version 5: edXML DocumentIds by index, the edXML copies still due, and received
    documents by message ID. The DocumentIds of documents already sent or received as edXML
    are filled in from their metadata."""
    md = MetaData()
    documents = Table(
        "edxml_documents", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("direction", String(8), nullable=False),
        Column("document_key", String(64), nullable=False),
        Column("document_id", Text, nullable=False),
        Column("message_id", String(32), nullable=False),
        Column("sender_node_id", String(100)),
        CheckConstraint("direction IN ('sent', 'received')", name="edxml_documents_direction"),
        Index("edxml_documents_by_key", "direction", "document_key"))
    Table("edxml_copies_due", md,
          Column("sender_node_id", String(100), primary_key=True),
          Column("message_id", String(32), primary_key=True))
    md.create_all(conn)
    received = Table("received", MetaData(), autoload_with=conn)
    Index("received_by_message", received.c.message_id).create(conn)
    dispatches = Table("dispatches", MetaData(), autoload_with=conn)
    rows = []
    for message_id, meta in conn.execute(select(dispatches.c.message_id, dispatches.c.meta)
                                         .order_by(dispatches.c.seq)):
        document_id = _edxml_document_id(meta)
        if document_id is not None:
            rows.append({"direction": "sent", "document_id": document_id,
                         "document_key": hashlib.sha256(document_id.encode()).hexdigest(),
                         "message_id": message_id, "sender_node_id": None})
    for sender, message_id, meta in conn.execute(
            select(received.c.sender_node_id, received.c.message_id, received.c.meta)
            .order_by(received.c.received_at, received.c.message_id)):
        document_id = _edxml_document_id(meta)
        if document_id is not None:
            rows.append({"direction": "received", "document_id": document_id,
                         "document_key": hashlib.sha256(document_id.encode()).hexdigest(),
                         "message_id": message_id, "sender_node_id": sender})
    if rows:
        conn.execute(insert(documents), rows)


def _v6(conn: Connection) -> None:
    """Version 6: ``tracked_documents`` (programmes, conclusions, documents with a due date),
    filled from the metadata of the documents already sent and received."""
    md = MetaData()
    tracked = Table(
        "tracked_documents", md,
        Column("direction", String(8), primary_key=True),
        Column("sender_node_id", String(100), primary_key=True),
        Column("message_id", String(32), primary_key=True),
        Column("doc_type", String(64), nullable=False),
        Column("period", String(16)),
        Column("due", String(10)),
        Column("consolidated", Integer, nullable=False),
        Column("recorded_at", String(40), nullable=False),
        CheckConstraint("direction IN ('sent', 'received')", name="tracked_documents_direction"),
        CheckConstraint("consolidated IN (0, 1)", name="tracked_documents_consolidated"),
        Index("tracked_by_period", "doc_type", "period"),
        Index("tracked_by_due", "due"))
    md.create_all(conn)
    rows: list[dict[str, Any] | None] = []
    sent = conn.execute(text("SELECT message_id, meta, created_at FROM dispatches")).all()
    for message_id, meta, at in sent:
        rows.append(_v6_row("sent", "", message_id, _json(meta), at))
    received = conn.execute(text("SELECT sender_node_id, message_id, meta, received_at "
                                 "FROM received")).all()
    for sender, message_id, meta, at in received:
        rows.append(_v6_row("received", sender, message_id, _json(meta), at))
    kept = [row for row in rows if row is not None]
    if kept:
        conn.execute(insert(tracked), kept)


def _v6_row(direction: str, sender: str, message_id: str, meta: dict[str, Any],
            at: str) -> dict[str, Any] | None:
    """The row version 6 indexes for one document (frozen: records.tracked_row is today's)."""
    doc_type, period, due = meta.get("type"), meta.get("period"), meta.get("due")
    if not isinstance(doc_type, str) or len(doc_type) > 64:
        doc_type = ""
    period = period if isinstance(period, str) and len(period) <= 16 else None
    due = due if isinstance(due, str) and len(due) == 10 else None
    if doc_type not in ("programme", "conclusion") and due is None:
        return None
    return {"direction": direction, "sender_node_id": sender, "message_id": message_id,
            "doc_type": doc_type, "period": period, "due": due,
            "consolidated": int(meta.get("consolidated") is True), "recorded_at": at}


def _json(text_value: str) -> dict[str, Any]:
    try:
        value = json.loads(text_value)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _v7(conn: Connection) -> None:
    """Version 7: ``programme_reminders``, the reminder messages sent to offices that owe a
    programme (one per obligation and step)."""
    md = MetaData()
    Table("programme_reminders", md,
          Column("office", String(200), primary_key=True),
          Column("kind", String(16), primary_key=True),
          Column("period", String(16), primary_key=True),
          Column("step", String(16), primary_key=True),
          Column("due", String(10), nullable=False),
          Column("claimed_at", String(40), nullable=False),
          Column("message_id", String(32)),
          CheckConstraint("step IN ('reminder', 'overdue')", name="programme_reminders_step"))
    md.create_all(conn)


def _v8(conn: Connection) -> None:
    """Version 8: ``petitions``, the petition register (docs/petitions.md); it starts empty
    (no petition kind existed before)."""
    md = MetaData()
    Table("petitions", md,
          Column("direction", String(8), primary_key=True),
          Column("peer_node_id", String(100), primary_key=True),
          Column("message_id", String(32), primary_key=True),
          Column("kind", String(16), nullable=False),
          Column("number", String(64)),
          Column("received_date", String(10), nullable=False),
          Column("details", Text, nullable=False),
          Column("recorded_at", String(40), nullable=False),
          Column("accepted_at", String(40)),
          Column("complex", Integer, nullable=False),
          Column("rejected_at", String(40)),
          Column("resolved_at", String(40)),
          Column("outcome", Text),
          Column("refusal_token", Text),
          Column("refusal_code", String(64)),
          Column("refusal_reason", Text),
          CheckConstraint("direction IN ('sent', 'received')", name="petitions_direction"),
          CheckConstraint("complex IN (0, 1)", name="petitions_complex"),
          Index("petitions_by_received_date", "received_date"),
          Index("petitions_by_message", "message_id"))
    md.create_all(conn)


def _v9(conn: Connection) -> None:
    """Version 9: ``dispatches.sha256`` may be NULL. A large v3 document is offered before it
    has been read (docs/protocol.md Part A §8): its digest is recorded when the sender signs
    the trailer, at the end of the stream (docs/design.md §5.3).

    PostgreSQL drops the constraint in place. SQLite cannot alter a column, and renaming
    ``dispatches`` would point the foreign key of ``deliveries`` at the renamed table, so the
    rows are copied aside, the table dropped and created anew under its own name, and the rows
    copied back. Foreign keys are deferred to the commit: dropping the table leaves the
    deliveries without their parent rows for a moment, and copying each row back restores it.
    """
    if conn.dialect.name != "sqlite":
        conn.execute(text("ALTER TABLE dispatches ALTER COLUMN sha256 DROP NOT NULL"))
        return
    conn.execute(text("PRAGMA defer_foreign_keys = ON"))
    conn.execute(text("CREATE TABLE dispatches_v8 AS SELECT * FROM dispatches"))
    conn.execute(text("DROP TABLE dispatches"))
    md = MetaData()
    rebuilt = Table(
        "dispatches", md,
        Column("message_id", String(32), primary_key=True),
        Column("seq", Integer, nullable=False, unique=True),
        Column("name", Text, nullable=False),
        Column("target", String(200), nullable=False),
        Column("spool_dir", Text, nullable=False),
        Column("header_token", Text, nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("sha256", String(64)),
        Column("ciphertext_size", BigInteger, nullable=False),
        Column("priority", Integer, nullable=False),
        Column("meta", Text, nullable=False),
        Column("state", String(16), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("finished_at", String(40)),
        Column("sent_path", Text),
        Column("error", Text),
        CheckConstraint("state IN ('sending', 'sent', 'failed')", name="dispatches_state"),
        CheckConstraint("priority BETWEEN 0 AND 3", name="dispatches_priority"),
        Index("dispatches_by_state", "state", "created_at"),
        Index("dispatches_queue", "state", "priority", "seq"))
    rebuilt.create(conn)
    names = ", ".join(column.name for column in rebuilt.columns)
    conn.execute(text(f"INSERT INTO dispatches ({names}) SELECT {names} FROM dispatches_v8"))
    conn.execute(text("DROP TABLE dispatches_v8"))


def _v10(conn: Connection) -> None:
    """Version 10: ``sidecars_due``, the received documents whose sidecars are written after
    their ``stored`` commit and not yet known durable. Documents stored before this version
    had theirs written before the commit, so none is due."""
    md = MetaData()
    Table("sidecars_due", md,
          Column("sender_node_id", String(100), primary_key=True),
          Column("message_id", String(32), primary_key=True))
    md.create_all(conn)


#: The ordered history of the schema. Never edit a step that has shipped; append a new one.
MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (4, _v4),
    (5, _v5),
    (6, _v6),
    (7, _v7),
    (8, _v8),
    (9, _v9),
    (10, _v10),
)


def _check_steps() -> None:
    numbers = [number for number, _ in MIGRATIONS]
    if numbers != list(range(1, len(numbers) + 1)) or numbers[-1] != schema.SCHEMA_VERSION:
        raise RuntimeError(f"migration steps {numbers} do not lead to schema version "
                           f"{schema.SCHEMA_VERSION}")


_check_steps()


def current_version(conn: Connection) -> int:
    """The schema version of the database behind ``conn`` (0 when it has no schema yet)."""
    inspector = inspect(conn)
    if not inspector.has_table(schema.schema_meta.name):
        others = sorted(inspector.get_table_names())
        if others:
            raise StoreError(f"this database has tables ({', '.join(others)}) but no "
                             "schema_meta table: it is not a lienthong store; refusing to "
                             "use it")
        return 0
    version = conn.execute(select(schema.schema_meta.c.version)
                           .where(schema.schema_meta.c.id == 1)).scalar_one_or_none()
    if version is None:
        raise StoreError("schema_meta has no version row: the store is damaged")
    return int(version)


def migrate(engine: Engine) -> int:
    """Bring the database up to ``schema.SCHEMA_VERSION`` in one transaction; return it.

    Pass an engine whose transactions take the write lock at BEGIN (the store's writer), so
    that a concurrent process cannot read the old version and migrate at the same time.
    Raises ``SchemaTooNew`` for a database written by a newer lienthong.
    """
    latest = schema.SCHEMA_VERSION
    with engine.begin() as conn:
        found = current_version(conn)
        if found > latest:
            raise SchemaTooNew(
                f"the store has schema version {found}, but this lienthong understands only "
                f"up to version {latest}; upgrade lienthong (refusing to open it, so that "
                "nothing newer code relies on is damaged)")
        if found == latest:
            return found
        if found == 0:
            schema.schema_meta.create(conn)
            conn.execute(insert(schema.schema_meta).values(id=1, version=0))
        for number, step in MIGRATIONS:
            if number > found:
                step(conn)
        conn.execute(update(schema.schema_meta).where(schema.schema_meta.c.id == 1)
                     .values(version=latest))
    return latest
