"""publish_batch: documents finishing together share their folder fsyncs, in the same order of
steps as one document alone, and one document's failure does not stop the others."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.inbox import publication
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.publication import Publication, publish_batch


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
    real_drop, real_sidecars = publication._drop_staging, publication.write_sidecar_files

    def drop(item: Publication) -> None:
        steps.append(("drop", item.staging))
        real_drop(item)

    def sidecars(final: Path, *args: Any) -> None:
        steps.append(("sidecars", final))
        real_sidecars(final, *args)

    monkeypatch.setattr(publication, "_drop_staging", drop)
    monkeypatch.setattr(publication, "write_sidecar_files", sidecars)
    monkeypatch.setattr(publication, "issue_receipt",
                        lambda identity, *, recipient, header, time: f"receipt-of-{header}")
    return steps


def test_a_batch_shares_two_folder_fsyncs_and_keeps_the_order(
        tmp_path: Path, synced: list[tuple[str, Path]]) -> None:
    staging, inbox, names, items = _batch(tmp_path, 5)
    outcomes = publish_batch(names, items)
    assert outcomes == [f"receipt-of-header-{n}" for n in range(5)]
    # Every link and every sidecar before the ONE inbox fsync; the staging names go only
    # after it, then their folder's fsync: 2 folder fsyncs for 5 documents (was 15, then 3).
    assert [kind for kind, _ in synced] == (["link"] * 5 + ["sidecars"] * 5 + ["fsync"]
                                            + ["drop"] * 5 + ["fsync"])
    assert [folder for kind, folder in synced if kind == "fsync"] == [inbox, staging]
    assert list(staging.iterdir()) == []
    for n, item in enumerate(items):
        assert item.final.read_bytes() == b"document %d" % n
        assert item.final.with_name(item.final.name + ".receipt.jws").read_text() == \
            f"receipt-of-header-{n}\n"
        assert item.final.with_name(item.final.name + ".meta.json").exists()


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
