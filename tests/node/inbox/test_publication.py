"""publish_batch: documents finishing together share their folder fsyncs, in the same order of
steps as one document alone, and one document's failure does not stop the others."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lienthong.node.core import syncfs
from lienthong.node.core.access import AccessPolicy
from lienthong.node.inbox import layout, publication
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.layout import Sidecars
from lienthong.node.inbox.publication import Publication, publish_batch, store_batch
from lienthong.node.store.database import Store
from lienthong.node.store.records import ReceiptMismatch
from tests.node.storehelp import T0, T1, make_received


class _Keys:
    identity = None
    node_id = "RECEIVER"


def _item(staging: Path, inbox: Path, names: InboxNames, n: int) -> Publication:
    path = staging / f"{n:032x}-SENDER"
    path.write_bytes(b"document %d" % n)
    final = names.reserve(inbox, f"doc-{n}.txt")
    return Publication(signer="SENDER", header=f"header-{n}", staging=path,
                       resume_record=path.with_name(path.name + ".resume"), final=final,
                       receiving=_Keys(), meta={"n": n}, now="2026-01-01T00:00:00Z")


def _batch(tmp_path: Path, count: int) -> tuple[Path, Path, InboxNames, list[Publication]]:
    """``count`` staged documents with their inbox names reserved, ready to publish."""
    staging, inbox = tmp_path / "staging", tmp_path / "inbox"
    staging.mkdir()
    names = InboxNames(lambda: 0.0, AccessPolicy())
    return staging, inbox, names, [_item(staging, inbox, names, n) for n in range(count)]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Every folder fsync and every step publish_batch takes, in order."""
    steps: list[tuple[str, Path]] = []
    monkeypatch.setattr(publication, "fsync_dir", lambda folder: steps.append(("fsync", folder)))
    real_link = publication.os.link

    def link(source: Any, target: Any) -> None:
        steps.append(("link", Path(target)))
        real_link(source, target)

    monkeypatch.setattr(publication.os, "link", link)
    real_drop = publication._drop_staging

    def drop(item: Publication) -> None:
        steps.append(("drop", item.staging))
        real_drop(item)

    monkeypatch.setattr(publication, "_drop_staging", drop)
    monkeypatch.setattr(publication, "issue_receipt",
                        lambda identity, *, recipient, header, time: f"receipt-of-{header}")
    return steps


def test_a_batch_shares_two_folder_fsyncs_and_keeps_the_order(
        tmp_path: Path, synced: list[tuple[str, Path]]) -> None:
    staging, inbox, names, items = _batch(tmp_path, 5)
    outcomes = publish_batch(names, items)
    assert outcomes == [f"receipt-of-header-{n}" for n in range(5)]
    # Every link before the ONE inbox fsync; the staging names go only after it, then their
    # folder's fsync: 2 folder fsyncs for 5 documents (was 15, then 3). No sidecar is
    # written before the receipt (they follow the ``stored`` commit: place_sidecar_batch).
    assert [kind for kind, _ in synced] == (["link"] * 5 + ["fsync"]
                                            + ["drop"] * 5 + ["fsync"])
    assert [folder for kind, folder in synced if kind == "fsync"] == [inbox, staging]
    assert list(staging.iterdir()) == []
    for n, item in enumerate(items):
        assert item.final.read_bytes() == b"document %d" % n
        assert not item.final.with_name(item.final.name + ".receipt.jws").exists()
        assert not item.final.with_name(item.final.name + ".meta.json").exists()


def test_one_failed_link_fails_only_its_document(
        tmp_path: Path, synced: list[tuple[str, Path]]) -> None:
    staging, inbox, names, items = _batch(tmp_path, 3)
    items[1].final.write_bytes(b"a clerk's file")    # appeared after the reservation
    outcomes = publish_batch(names, items)
    assert isinstance(outcomes[1], FileExistsError)
    assert outcomes[0] == "receipt-of-header-0" and outcomes[2] == "receipt-of-header-2"
    assert items[1].final.read_bytes() == b"a clerk's file"      # never overwritten
    assert items[1].staging.exists()                             # kept for recovery
    assert not items[1].final.with_name(items[1].final.name + ".receipt.jws").exists()


class _Header:
    """What ``store_batch`` reads of a verified header."""

    version = 3
    size = 42

    def __init__(self, message_id: str, sha256: str) -> None:
        self.message_id, self.sha256, self.name = message_id, sha256, f"{message_id[-2:]}.pdf"


def test_store_batch_marks_a_batch_stored_with_each_documents_audit_entries_in_order(
        tmp_path: Path, store: Store) -> None:
    """One unit of work: every row ``stored`` with its receipt, the two audit entries of each
    document in its order; a document the store refuses (its row is not ``publishing``: a
    second receipt for a stored one) fails alone, and the others still commit."""
    items = [make_received(n, "SENDER") for n in (1, 2, 3)]
    store.begin_publishes([(item, T0, None) for item in items])
    store.mark_stored("SENDER", items[1].message_id, "earlier-receipt", T0)
    done = [(Publication(signer="SENDER", header=_Header(item.message_id, item.sha256),
                         staging=tmp_path / "s", resume_record=tmp_path / "r",
                         final=tmp_path / "inbox" / f"{n}.pdf", receiving=_Keys(), meta={},
                         now=T1), f"receipt-{n}") for n, item in enumerate(items)]
    results = store_batch(store, done, T1)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ReceiptMismatch)
    assert [(row.state, row.receipt) for row in
            (store.get_received("SENDER", item.message_id) for item in items) if row] == [
        ("stored", "receipt-0"), ("stored", "earlier-receipt"), ("stored", "receipt-2")]
    entries = [(e.kind, e.message_id) for e in store.audit_entries()
               if e.kind in ("received", "receipt-issued")]
    assert entries == [(kind, items[n].message_id) for n in (0, 2)
                       for kind in ("received", "receipt-issued")]


def test_the_sidecars_of_a_batch_are_written_whole_then_renamed_and_flushed_later_in_one_call(
        tmp_path: Path, synced: list[tuple[str, Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    """After the ``stored`` commit (place_sidecar_batch) every sidecar is written whole under
    a temporary name, then renamed into place: a clerk never sees a partial one (short of a
    power cut before the flush, which the next start repairs), and no temporary name is left.
    Nothing is fsynced there; ``flush_sidecar_batch`` later makes them durable with one
    ``syncfs`` per file system, however many folders."""
    staging, inbox, names, items = _batch(tmp_path, 4)
    assert publish_batch(names, items) == [f"receipt-of-header-{n}" for n in range(4)]
    del synced[:]
    real_rename = os.rename
    sidecars = [item.final.with_name(item.final.name + suffix) for item in items
                for suffix in (".meta.json", ".receipt.jws")]
    fsynced: list[int] = []

    def rename(source: Any, target: Any) -> None:
        # Whole before its name exists: the temporary file holds every byte.
        assert Path(source).read_bytes() and Path(source).name.startswith(".lienthong-")
        synced.append(("rename", Path(target)))
        real_rename(source, target)

    monkeypatch.setattr(os, "fsync", fsynced.append)
    monkeypatch.setattr(os, "rename", rename)
    placed = publication.place_sidecar_batch(names, [
        Sidecars(item.final, {"n": n}, f"receipt-of-header-{n}")
        for n, item in enumerate(items)])
    assert placed == [None] * 4
    for n, item in enumerate(items):
        assert item.final.with_name(item.final.name + ".receipt.jws").read_text() == \
            f"receipt-of-header-{n}\n"
        assert json.loads(item.final.with_name(item.final.name + ".meta.json").read_text()) \
            == {"n": n}
    assert sorted(path for kind, path in synced) == sorted(sidecars)
    assert fsynced == [] and [kind for kind, _ in synced] == ["rename"] * 8
    assert not [p for p in inbox.iterdir() if p.name.startswith(".lienthong-")]
    # The flush: one syncfs for the two folders of one file system (a real call).
    flushed: list[int] = []
    real_syncfs = syncfs._SYNCFS
    assert real_syncfs is not None, "this test runs on Linux"

    def counted(fd: int) -> int:
        flushed.append(os.fstat(fd).st_dev)
        return real_syncfs(fd)

    monkeypatch.setattr(syncfs, "_SYNCFS", counted)
    publication.flush_sidecar_batch([inbox, staging])
    assert flushed == [inbox.stat().st_dev]


def test_a_failed_flush_is_an_error_and_a_gone_folder_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush the kernel reports as failed raises, so the rows stay due; a folder removed
    since its sidecars were written (a clerk's doing) has nothing left to flush."""
    calls: list[int] = []
    monkeypatch.setattr(syncfs, "_SYNCFS", lambda fd: calls.append(fd) or -1)
    publication.flush_sidecar_batch([tmp_path / "gone"])
    assert calls == []
    with pytest.raises(OSError):
        publication.flush_sidecar_batch([tmp_path])
    assert len(calls) == 1


def test_a_sidecar_a_crash_cut_short_is_replaced_whole_and_a_gone_document_gets_none(
        tmp_path: Path, synced: list[tuple[str, Path]]) -> None:
    """The repair at start-up writes over a partial sidecar and a leftover temporary file; a
    document a clerk has moved away meanwhile gets no sidecar (and its leftovers go)."""
    staging, inbox, names, items = _batch(tmp_path, 2)
    publish_batch(names, items)
    kept, gone = items
    meta = kept.final.with_name(kept.final.name + ".meta.json")
    meta.write_text('{"n": ')                     # partial, as a power cut could leave it
    leftover = layout.sidecar_temporary(gone.final.with_name(gone.final.name + ".receipt.jws"))
    leftover.write_text("half")
    gone.final.unlink()
    placed = publication.place_sidecar_batch(names, [
        Sidecars(kept.final, {"n": 0}, "receipt-0"), Sidecars(gone.final, {"n": 1}, "r-1")])
    assert placed == [None, None]
    assert json.loads(meta.read_text()) == {"n": 0}
    assert sorted(p.name for p in inbox.iterdir()) == sorted(
        [kept.final.name, meta.name, kept.final.name + ".receipt.jws"])


def test_a_petitions_sidecars_are_the_petition_staffs_before_a_byte_is_written(
        tmp_path: Path, synced: list[tuple[str, Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A petition's sidecars get the petition staff's group and modes while still under their
    temporary names, before anything is written into them (the clerks' group never reads a
    citizen's petition metadata, not even for a moment)."""
    import grp

    from lienthong.node.core.restricted import petition_access
    group = grp.getgrgid(os.getgid()).gr_name
    staging, inbox, names, items = _batch(tmp_path, 1)
    publish_batch(names, items)
    final = items[0].final
    sizes_when_restricted: list[int] = []
    real_restrict = layout.restrict

    def restrict(path: Path, group_name: str) -> None:
        sizes_when_restricted.append(path.stat().st_size)
        real_restrict(path, group_name)

    monkeypatch.setattr(layout, "restrict", restrict)
    assert publication.place_sidecar_batch(names, [Sidecars(final, {"n": 0}, "r", group)]) \
        == [None]
    assert sizes_when_restricted == [0, 0]
    rule = petition_access(group)
    for suffix in (".meta.json", ".receipt.jws"):
        st = final.with_name(final.name + suffix).stat()
        assert (st.st_gid, st.st_mode & 0o7777) == (rule.gid, rule.file_mode)
