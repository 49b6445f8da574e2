"""The store's schema is versioned: created, kept, refused when newer, and matches node.schema."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect

from lienthong.node.store import migrations, schema
from lienthong.node.store.database import open_store
from lienthong.node.store.records import SchemaTooNew, StoreError
from tests.node.storehelp import T0, make_peer, raw_engine, raw_sql


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def stored_version(store_url: str) -> int:
    return int(raw_sql(store_url, "SELECT version FROM schema_meta")[0][0])


def table_names(store_url: str) -> set[str]:
    engine = raw_engine(store_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_fresh_database_gets_the_current_version(tmp_path: Path) -> None:
    """Opening a missing file creates its folder, the tables, and the current schema version."""
    path = tmp_path / "home" / "state" / "store.db"
    store = open_store(url(path))
    store.close()
    assert stored_version(url(path)) == schema.SCHEMA_VERSION == 10
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_reopening_keeps_data_and_version(store_url: str) -> None:
    """A second open is a no-op migration: the data written before is still there."""
    store = open_store(store_url)
    store.add_peer(make_peer("so-tu-phap", 1), "card-token", T0)
    store.close()
    again = open_store(store_url)
    try:
        assert [r.peer.name for r in again.list_peers()] == ["so-tu-phap"]
        assert stored_version(store_url) == schema.SCHEMA_VERSION
    finally:
        again.close()


def test_newer_database_is_refused_with_a_clear_message(store_url: str) -> None:
    """A store written by a newer lienthong (version 99) is refused, naming both versions."""
    open_store(store_url).close()
    raw_sql(store_url, "UPDATE schema_meta SET version = 99")
    with pytest.raises(SchemaTooNew) as caught:
        open_store(store_url)
    message = str(caught.value)
    assert "99" in message and f"version {schema.SCHEMA_VERSION}" in message
    assert "upgrade lienthong" in message
    assert stored_version(store_url) == 99  # untouched


def test_foreign_database_is_refused(store_url: str) -> None:
    """A database with other tables and no schema_meta is not taken over."""
    raw_sql(store_url, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a lienthong store"):
        open_store(store_url)
    assert table_names(store_url) == {"invoices"}


def test_a_failing_migration_leaves_nothing_behind(store_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration runs in one transaction: a step failing after creating tables rolls back all."""
    def broken(conn: object) -> None:
        migrations._v1(conn)  # type: ignore[arg-type]
        raise RuntimeError("disk full, say")

    monkeypatch.setattr(migrations, "MIGRATIONS", ((1, broken),))
    with pytest.raises(RuntimeError, match="disk full"):
        open_store(store_url)
    assert table_names(store_url) == set()


def test_pragmas_are_set_on_the_store_connection(tmp_path: Path) -> None:
    """WAL, synchronous=FULL, foreign keys and a busy timeout are really in effect."""
    path = tmp_path / "store.db"
    store = open_store(url(path))
    try:
        with store.transaction() as conn:
            values = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                      for name in ("journal_mode", "synchronous", "foreign_keys",
                                   "busy_timeout")}
    finally:
        store.close()
    assert values == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                      "busy_timeout": 5000}
    with sqlite3.connect(path) as raw:  # WAL is a property of the file, seen by the CLI too
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def describe(engine_url: str) -> dict[str, object]:
    engine = raw_engine(engine_url)
    try:
        inspector = inspect(engine)
        out: dict[str, object] = {}
        for table in sorted(inspector.get_table_names()):
            out[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"])
                            for c in inspector.get_columns(table)],
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(tuple(u["column_names"])
                                 for u in inspector.get_unique_constraints(table)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes(table)),
                "fks": [(f["constrained_columns"], f["referred_table"])
                        for f in inspector.get_foreign_keys(table)],
                "checks": sorted(c["sqltext"] for c in inspector.get_check_constraints(table)),
            }
        return out
    finally:
        engine.dispose()


def test_migrated_database_matches_node_schema(new_store_url: Callable[[], str]) -> None:
    """The frozen migration steps build exactly the tables node.schema describes."""
    migrated = new_store_url()
    open_store(migrated).close()
    reference = new_store_url()
    engine = raw_engine(reference)
    schema.metadata.create_all(engine)
    engine.dispose()
    assert describe(migrated) == describe(reference)
    assert "peers" in describe(migrated)


def test_memory_url_works_for_quick_tools() -> None:
    """A sqlite:// in-memory store opens and migrates (one shared connection)."""
    store = open_store("sqlite://")
    try:
        assert store.directory_version() == 0
    finally:
        store.close()


def test_a_version_1_store_is_upgraded_in_place(store_url: str) -> None:
    """A store written before documents had statuses gains the v2 tables and keeps its data."""
    from sqlalchemy import insert
    engine = raw_engine(store_url)
    with engine.begin() as conn:
        schema.schema_meta.create(conn)
        conn.execute(insert(schema.schema_meta).values(id=1, version=1))
        migrations._v1(conn)
    engine.dispose()
    raw_sql(store_url, "INSERT INTO peers VALUES ('hdnd', 'X', 'card', '[]', 'trusted', NULL, "
            "NULL, '2026-01-05T08:00:00Z')")
    store = open_store(store_url)
    try:
        request = store.add_control_request("status", "a" * 32, {"status": "registered"}, T0)
        assert store.control_requests()[0].id == request.id
    finally:
        store.close()
    assert stored_version(store_url) == schema.SCHEMA_VERSION
    assert raw_sql(store_url, "SELECT name FROM peers") == [("hdnd",)]
    assert {"control_requests", "document_status", "recalls"} <= set(describe(store_url))


def test_a_version_3_store_gets_its_edxml_document_ids_indexed(tmp_path: Path) -> None:
    """Documents sent and received as edXML before version 5 are found by DocumentId after the
    upgrade (filled in from their metadata); other documents and control documents are not
    indexed."""
    import json

    from sqlalchemy import create_engine, insert
    path = tmp_path / "v3.db"
    engine = create_engine(url(path))
    with engine.begin() as conn:
        schema.schema_meta.create(conn)
        conn.execute(insert(schema.schema_meta).values(id=1, version=3))
        migrations._v1(conn)
        migrations._v2(conn)
        migrations._v3(conn)
    engine.dispose()

    def meta(document_id: str | None, kind: str = "document") -> str:
        return json.dumps({"kind": kind} if document_id is None else
                          {"kind": kind, "edxml": {"document_id": document_id}})
    with sqlite3.connect(path) as raw:
        for seq, (mid, text) in enumerate([("a" * 32, meta("000.00.01.H41,2026/11/20,12-NQ/TU")),
                                           ("b" * 32, meta(None)),
                                           ("c" * 32, meta("X", kind="status"))], 1):
            raw.execute("INSERT INTO dispatches VALUES (?, ?, 'n', 't', 's', 'h', 1, ?, 1, 3, ?, "
                        "'sent', ?, NULL, NULL, NULL)", (mid, seq, "0" * 64, text, T0))
        raw.execute("INSERT INTO received VALUES ('SENDER', ?, 'n', 'p', 1, ?, 'h', 'stored', "
                    "'r', ?, ?)", ("d" * 32, "0" * 64, T0, meta("000.00.03.H41,2026/11/01,45")))
    store = open_store(url(path))
    try:
        assert store.sent_by_document_id("000.00.01.H41,2026/11/20,12-NQ/TU") == "a" * 32
        assert store.sent_by_document_id("X") is None
        assert store.received_by_document_id("000.00.03.H41,2026/11/01,45") == ("d" * 32,
                                                                                 "SENDER")
        assert store.received_by_document_id("000.00.01.H41,2026/11/20,12-NQ/TU") is None
    finally:
        store.close()
    assert stored_version(url(path)) == schema.SCHEMA_VERSION
    with sqlite3.connect(path) as raw:
        plan = " ".join(str(row) for row in raw.execute(
            "EXPLAIN QUERY PLAN SELECT message_id FROM edxml_documents "
            "WHERE direction = 'sent' AND document_key = 'k'"))
    assert "edxml_documents_by_key" in plan  # an index, not a scan


def test_a_version_8_store_keeps_its_dispatches_and_deliveries_when_the_digest_may_wait(
        store_url: str) -> None:
    """Version 9 lets ``dispatches.sha256`` wait for the trailer; the rows of a version 8 store
    (and the deliveries that refer to them) come through the rebuild unchanged."""
    from sqlalchemy import insert
    engine = raw_engine(store_url)
    with engine.begin() as conn:
        schema.schema_meta.create(conn)
        conn.execute(insert(schema.schema_meta).values(id=1, version=8))
        for _number, step in migrations.MIGRATIONS[:8]:
            step(conn)
    engine.dispose()
    raw_sql(store_url, "INSERT INTO dispatches VALUES ('" + "a" * 32 + "', 1, 'n', 't', 's', "
            "'h', 1, '" + "0" * 64 + "', 42, 3, '{}', 'sending', '" + T0 + "', NULL, NULL, NULL)")
    raw_sql(store_url, "INSERT INTO deliveries (message_id, peer_node_id, state, attempts, "
            "bytes_sent) VALUES ('" + "a" * 32 + "', 'PEER', 'queued', 0, 0)")
    open_store(store_url).close()
    assert stored_version(store_url) == schema.SCHEMA_VERSION
    assert raw_sql(store_url, "SELECT message_id, seq, sha256, ciphertext_size FROM dispatches"
                   ) == [("a" * 32, 1, "0" * 64, 42)]
    assert raw_sql(store_url, "SELECT message_id, state FROM deliveries") == [("a" * 32, "queued")]
    raw_sql(store_url, "UPDATE dispatches SET sha256 = NULL")
    assert raw_sql(store_url, "SELECT sha256 FROM dispatches") == [(None,)]
    engine = raw_engine(store_url)
    try:   # still the parent of deliveries, under its own name
        assert [key["referred_table"] for key in inspect(engine).get_foreign_keys("deliveries")
                ] == ["dispatches"]
    finally:
        engine.dispose()
