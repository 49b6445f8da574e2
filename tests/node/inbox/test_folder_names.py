"""InboxNames: inbox names chosen from a remembered listing, never a clash on disk."""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.names import clash_key
from lienthong.node.inbox import folder_names as inbox_names
from lienthong.node.inbox.folder_names import InboxNames


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the folder listings InboxNames makes (the cost it exists to avoid)."""
    calls: list[str] = []
    real = os.listdir

    def counting(path: object) -> list[str]:
        calls.append(str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(inbox_names.os, "listdir", counting)
    return calls


def test_reservations_in_a_row_never_share_a_name_even_by_case(tmp_path: Path) -> None:
    names = InboxNames(FakeClock(), AccessPolicy())
    first = names.reserve(tmp_path, "Báo cáo.pdf")
    second = names.reserve(tmp_path, "Báo cáo.pdf")
    third = names.reserve(tmp_path, "BÁO CÁO.PDF")
    assert len({first.name.casefold(), second.name.casefold(), third.name.casefold()}) == 3
    assert first.name == "Báo cáo.pdf"


def test_a_released_name_stays_taken_while_the_listing_is_fresh(tmp_path: Path) -> None:
    """The reserved document and its sidecars are about to exist: a released name must not be
    handed out again just because the publication finished in between."""
    names = InboxNames(FakeClock(), AccessPolicy())
    first = names.reserve(tmp_path, "a.txt")
    names.release(first)
    assert names.reserve(tmp_path, "a.txt") != first
    assert names.reserve(tmp_path, "a.txt.meta.json").name != "a.txt.meta.json"


def test_the_folder_is_listed_once_per_max_age(tmp_path: Path, listings: list[str]) -> None:
    clock = FakeClock()
    names = InboxNames(clock, AccessPolicy(), max_age=10)
    for i in range(50):
        names.reserve(tmp_path, f"doc-{i}.txt")
    assert len(listings) == 1
    clock.now += 11
    names.reserve(tmp_path, "late.txt")
    assert len(listings) == 2


def test_an_exact_name_a_clerk_made_since_the_listing_is_never_reused(tmp_path: Path) -> None:
    names = InboxNames(FakeClock(), AccessPolicy())
    names.reserve(tmp_path, "other.txt")                 # lists the (empty) folder
    (tmp_path / "ke-hoach.docx").write_bytes(b"clerk's own file")
    chosen = names.reserve(tmp_path, "ke-hoach.docx")
    assert chosen.name != "ke-hoach.docx"
    assert (tmp_path / "ke-hoach.docx").read_bytes() == b"clerk's own file"


def test_a_name_an_smb_client_wrote_in_nfd_is_seen_at_once(tmp_path: Path) -> None:
    """Someone else changed the folder (its modification time moved): it is listed again."""
    names = InboxNames(FakeClock(), AccessPolicy())
    names.reserve(tmp_path, "other.txt")
    (tmp_path / unicodedata.normalize("NFD", "Công văn số 9.pdf")).write_bytes(b"smb")
    chosen = names.reserve(tmp_path, "CÔNG VĂN SỐ 9.pdf")
    assert clash_key(chosen.name) != clash_key("Công văn số 9.pdf")


def test_the_nodes_own_publications_do_not_force_a_listing(tmp_path: Path,
                                                          listings: list[str]) -> None:
    names = InboxNames(FakeClock(), AccessPolicy())
    staging = tmp_path / "staging"
    staging.mkdir()
    inbox = tmp_path / "inbox"
    for i in range(20):
        final = names.reserve(inbox, "Báo cáo.pdf")
        (staging / "doc").write_bytes(f"doc {i}".encode())
        names.publish(staging / "doc", final)
        names.write_sidecars(final, {"n": i}, "receipt")
        names.release(final)
    assert len(listings) == 1
    assert len({clash_key(p.name) for p in inbox.iterdir()}) == 60  # 20 documents + sidecars


def test_a_change_hidden_by_a_coarse_timestamp_is_seen_after_max_age(tmp_path: Path) -> None:
    clock = FakeClock()
    names = InboxNames(clock, AccessPolicy(), max_age=10)
    names.reserve(tmp_path, "other.txt")
    before = os.stat(tmp_path)
    (tmp_path / "KE-HOACH.DOCX").write_bytes(b"x")
    os.utime(tmp_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if in the same tick
    assert names.reserve(tmp_path, "ke-hoach.docx").name == "ke-hoach.docx"  # the known miss
    clock.now += 11
    assert clash_key(names.reserve(tmp_path, "ke-hoach.docx").name) != "ke-hoach.docx"


def test_a_clock_that_steps_back_forces_a_fresh_listing(tmp_path: Path,
                                                        listings: list[str]) -> None:
    clock = FakeClock()
    names = InboxNames(clock, AccessPolicy(), max_age=10)
    names.reserve(tmp_path, "a.txt")
    clock.now -= 100
    names.reserve(tmp_path, "b.txt")
    assert len(listings) == 2


def test_a_name_is_looked_up_on_disk_once_and_its_look_alikes_in_the_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``lstat`` a name (the candidate itself), not one for each look-alike: a look-alike
    the listing holds still keeps the name from being chosen."""
    from lienthong.node.inbox import layout
    names = InboxNames(FakeClock(), AccessPolicy())
    (tmp_path / "to-trinh.pdf.receipt.jws").write_bytes(b"planted")
    looked_up: list[str] = []
    real = layout.os.path.lexists

    def lexists(path: Any) -> bool:
        looked_up.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(layout.os.path, "lexists", lexists)
    assert names.reserve(tmp_path, "bao-cao.pdf").name == "bao-cao.pdf"
    assert looked_up == ["bao-cao.pdf"]
    assert names.reserve(tmp_path, "to-trinh.pdf").name == "to-trinh (2).pdf"
