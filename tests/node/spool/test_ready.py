"""Spool folders made ahead of the take or recycled from filed documents
(node/spool/ready.py), and the takes that use them."""
from __future__ import annotations

import json
import os
from pathlib import Path

from lienthong.node.outbox import intake, sent
from lienthong.node.spool.ready import READY_PREFIX, ReadyFolders
from lienthong.node.spool.record import INTAKE_FILE, PAYLOAD_FILE
from lienthong.node.spool.recovery import SpoolState, recover_spool

NOW = "2026-12-07T23:00:00.000Z"


def _outbox_file(tmp_path: Path, name: str = "to-trinh.pdf") -> tuple[Path, Path]:
    outbox = tmp_path / "outbox"
    (outbox / "beta").mkdir(parents=True)
    path = outbox / "beta" / name
    path.write_bytes(b"noi dung " * 100)
    return outbox, path


def _take(outbox: Path, path: Path, spool: Path, message_id: str,
          ready: ReadyFolders | None) -> object:
    pending = intake.prepare_take(path, outbox=outbox, message_id=message_id,
                                  max_bytes=1 << 20, now=NOW)
    syncs = intake.DirSyncs()
    (result,) = intake.take_files([pending], spool, syncs, ready)
    syncs.flush()
    return result


def test_ready_folders_are_dot_names_holding_an_empty_record_that_recovery_skips(
        tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool)
    ready.make()
    names = sorted(os.listdir(spool))
    assert len(names) == len(ready) == ready.keep == 2
    for name in names:
        assert name.startswith(READY_PREFIX)
        assert os.listdir(spool / name) == [INTAKE_FILE]
        assert (spool / name / INTAKE_FILE).stat().st_size == 0
        assert (spool / name).stat().st_mode & 0o777 == 0o700
    assert recover_spool(spool) == []


def test_a_take_renames_a_ready_folder_and_writes_its_record_into_it(tmp_path: Path) -> None:
    outbox, path = _outbox_file(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool)
    ready.make()
    before = {name: (spool / name / INTAKE_FILE).stat().st_ino for name in os.listdir(spool)}
    taken = _take(outbox, path, spool, "a" * 32, ready)
    assert not isinstance(taken, Exception)
    folder = spool / ("a" * 32)
    # The folder's record is the ready folder's own file (no inode allocated for it).
    assert (folder / INTAKE_FILE).stat().st_ino in before.values()
    record = json.loads((folder / INTAKE_FILE).read_bytes())
    assert (record["message_id"], record["original_name"]) == ("a" * 32, "to-trinh.pdf")
    assert (folder / PAYLOAD_FILE).exists() and not path.exists()
    assert len(ready) == 1
    (found,) = recover_spool(spool)
    assert found.state is SpoolState.TAKEN


def test_without_a_ready_folder_the_take_makes_its_own(tmp_path: Path) -> None:
    outbox, path = _outbox_file(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    taken = _take(outbox, path, spool, "b" * 32, ReadyFolders(spool))   # none made
    assert not isinstance(taken, Exception)
    assert os.listdir(spool) == ["b" * 32]


def test_a_ready_folder_never_replaces_an_existing_spool_folder(tmp_path: Path) -> None:
    """A rename would silently replace an empty folder of that name; mkdir refuses."""
    outbox, path = _outbox_file(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / ("c" * 32)).mkdir()
    ready = ReadyFolders(spool)
    ready.make()
    result = _take(outbox, path, spool, "c" * 32, ready)
    assert isinstance(result, FileExistsError)
    assert path.exists()


def test_a_ready_folder_whose_record_is_not_empty_is_not_used(tmp_path: Path) -> None:
    outbox, path = _outbox_file(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool, keep=1)
    ready.make()
    (name,) = os.listdir(spool)
    (spool / name / INTAKE_FILE).write_bytes(b"{}")
    result = _take(outbox, path, spool, "d" * 32, ready)
    assert isinstance(result, OSError)
    assert path.exists() and not (spool / ("d" * 32)).exists()


def test_a_ready_folder_cut_after_its_rename_is_an_incomplete_take(tmp_path: Path) -> None:
    """The state a kill between the rename and the record leaves (the kill test's stage): an
    empty record and no payload, which recovery reports incomplete (removed at start)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool, keep=1)
    ready.make()
    name = ready.take()
    assert name is not None
    os.rename(spool / name, spool / ("e" * 32))
    (found,) = recover_spool(spool)
    assert (found.message_id, found.state) == ("e" * 32, SpoolState.INCOMPLETE)


def test_the_first_refill_removes_ready_folders_an_earlier_run_left(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ReadyFolders(spool).make()
    (spool / f"{READY_PREFIX}half").mkdir()   # cut before its record was made
    again = ReadyFolders(spool, keep=1)
    again.make()
    assert len(os.listdir(spool)) == 1 and len(again) == 1


def _filed_folder(spool: Path, name: str) -> Path:
    """A document's spool folder as filing leaves it: its payload gone to sent/."""
    folder = spool / name
    folder.mkdir()
    (folder / INTAKE_FILE).write_text("{}")
    return folder


def test_a_filed_documents_folder_is_recycled_once_the_starts_sweep_is_over(
        tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool, keep=1, recycle_keep=1)
    first = _filed_folder(spool, "f" * 32)
    # Before the sweep a recycled folder could be swept from under a take: removed instead.
    sent.remove_spool_folder(first, ready)
    assert not first.exists() and ready.take_empty() is None
    ready.make()
    second, third = _filed_folder(spool, "a" * 32), _filed_folder(spool, "b" * 32)
    inode = second.stat().st_ino
    sent.remove_spool_folder(second, ready)
    sent.remove_spool_folder(third, ready)   # past recycle_keep: removed
    assert not second.exists() and not third.exists()
    recycled = ready.take_empty()
    assert recycled is not None and recycled.startswith(READY_PREFIX)
    assert (spool / recycled).stat().st_ino == inode and os.listdir(spool / recycled) == []
    assert ready.take_empty() is None
    assert recover_spool(spool) == []


def test_a_folder_with_anything_left_in_it_is_removed_not_recycled(tmp_path: Path) -> None:
    """A later take must find its folder empty: a stray stream-ends file would win over its
    record (node/spool/sealing.py ``kept_stream_ends``)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool, keep=1)
    ready.make()
    folder = _filed_folder(spool, "c" * 32)
    (folder / "stray.tmp").write_bytes(b"left by a crash")
    sent.remove_spool_folder(folder, ready)
    assert not folder.exists() and ready.take_empty() is None


def test_the_later_takes_of_a_batch_rename_recycled_folders(tmp_path: Path) -> None:
    """The first take writes its record into a ready folder's empty one; the others link it
    into recycled folders: no folder made, none of them holding anything but the record."""
    outbox = tmp_path / "outbox"
    (outbox / "beta").mkdir(parents=True)
    paths = []
    for n in range(3):
        paths.append(outbox / "beta" / f"{n}.pdf")
        paths[-1].write_bytes(b"noi dung %d" % n)
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool, keep=1)
    ready.make()
    sent.remove_spool_folder(_filed_folder(spool, "d" * 32), ready)
    recycled_inode = next(p.stat().st_ino for p in spool.iterdir() if not os.listdir(p))
    pendings = [intake.prepare_take(path, outbox=outbox, message_id=f"{n:032x}",
                                    max_bytes=1 << 20, now=NOW) for n, path in enumerate(paths)]
    syncs = intake.DirSyncs()
    results = intake.take_files(pendings, spool, syncs, ready)
    syncs.flush()
    assert not any(isinstance(result, Exception) for result in results)
    assert sorted(os.listdir(spool)) == [f"{n:032x}" for n in range(3)]
    assert (spool / f"{1:032x}").stat().st_ino == recycled_inode   # the second take's
    records = {(spool / f"{n:032x}" / INTAKE_FILE).stat().st_ino for n in range(3)}
    assert len(records) == 1
    for n in range(3):
        assert sorted(os.listdir(spool / f"{n:032x}")) == [INTAKE_FILE, PAYLOAD_FILE]
    assert [found.state for found in recover_spool(spool)] == [SpoolState.TAKEN] * 3


def test_the_first_refill_removes_recycled_folders_an_earlier_run_left(
        tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ready = ReadyFolders(spool, keep=1)
    ready.make()
    sent.remove_spool_folder(_filed_folder(spool, "e" * 32), ready)
    assert len(os.listdir(spool)) == 2
    again = ReadyFolders(spool, keep=1)
    again.make()
    (left,) = os.listdir(spool)
    assert os.listdir(spool / left) == [INTAKE_FILE] and again.take_empty() is None
