"""The store's schema is versioned: created, kept, refused when newer, and matches node.schema."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from lienthong.node.store import migrations, schema
from lienthong.node.store.database import open_store
from lienthong.node.store.records import SchemaTooNew, StoreError
from tests.node.storehelp import T0, make_peer


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def stored_version(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        return raw.execute("SELECT version FROM schema_meta").fetchone()[0]


def test_fresh_database_gets_the_current_version(tmp_path: Path) -> None:
    """Opening a missing file creates its folder, the tables, and the current schema version."""
    path = tmp_path / "home" / "state" / "store.db"
    store = open_store(url(path))
    store.close()
    assert stored_version(path) == schema.SCHEMA_VERSION == 4
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_reopening_keeps_data_and_version(tmp_path: Path) -> None:
    """A second open is a no-op migration: the data written before is still there."""
    path = tmp_path / "store.db"
    store = open_store(url(path))
    store.add_peer(make_peer("so-tu-phap", 1), "card-token", T0)
    store.close()
    again = open_store(url(path))
    try:
        assert [r.peer.name for r in again.list_peers()] == ["so-tu-phap"]
        assert stored_version(path) == schema.SCHEMA_VERSION
    finally:
        again.close()


def test_newer_database_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """A store written by a newer lienthong (version 99) is refused, naming both versions."""
    path = tmp_path / "store.db"
    open_store(url(path)).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_meta SET version = 99")
    with pytest.raises(SchemaTooNew) as caught:
        open_store(url(path))
    message = str(caught.value)
    assert "99" in message and f"version {schema.SCHEMA_VERSION}" in message
    assert "upgrade lienthong" in message
    assert stored_version(path) == 99  # untouched


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file with other tables and no schema_meta is not taken over."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a lienthong store"):
        open_store(url(path))
    with sqlite3.connect(path) as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")}
    assert tables == {"invoices"}


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration runs in one transaction: a step failing after creating tables rolls back all."""
    def broken(conn: object) -> None:
        migrations._v1(conn)  # type: ignore[arg-type]
        raise RuntimeError("disk full, say")

    monkeypatch.setattr(migrations, "MIGRATIONS", ((1, broken),))
    path = tmp_path / "store.db"
    with pytest.raises(RuntimeError, match="disk full"):
        open_store(url(path))
    with sqlite3.connect(path) as raw:
        tables = list(raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    assert tables == []


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
    engine = create_engine(engine_url)
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


def test_migrated_database_matches_node_schema(tmp_path: Path) -> None:
    """The frozen migration steps build exactly the tables node.schema describes."""
    migrated = tmp_path / "migrated.db"
    open_store(url(migrated)).close()
    reference = tmp_path / "reference.db"
    engine = create_engine(url(reference))
    schema.metadata.create_all(engine)
    engine.dispose()
    assert describe(url(migrated)) == describe(url(reference))
    assert "peers" in describe(url(migrated))


def test_memory_url_works_for_quick_tools() -> None:
    """A sqlite:// in-memory store opens and migrates (one shared connection)."""
    store = open_store("sqlite://")
    try:
        assert store.directory_version() == 0
    finally:
        store.close()


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    """A store written before documents had statuses gains the v2 tables and keeps its data."""
    from sqlalchemy import insert
    path = tmp_path / "old.db"
    engine = create_engine(url(path))
    with engine.begin() as conn:
        schema.schema_meta.create(conn)
        conn.execute(insert(schema.schema_meta).values(id=1, version=1))
        migrations._v1(conn)
    engine.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO peers VALUES ('hdnd', 'X', 'card', '[]', 'trusted', NULL, "
                    "NULL, '2026-01-05T08:00:00Z')")
    store = open_store(url(path))
    try:
        request = store.add_control_request("status", "a" * 32, {"status": "registered"}, T0)
        assert store.control_requests()[0].id == request.id
    finally:
        store.close()
    assert stored_version(path) == schema.SCHEMA_VERSION
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT name FROM peers").fetchall() == [("hdnd",)]
    assert {"control_requests", "document_status", "recalls"} <= set(describe(url(path)))
