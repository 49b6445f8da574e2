"""Takes in batches (node/outbox/batches.py, file_work.take_and_seal_batch) and the spool layout
they write, including spool folders of the older layout that must still be delivered."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.python.failure import Failure

from lienthong.keys.jws import canonical_json
from lienthong.node.outbox import intake
from lienthong.node.outbox.batches import ALONE_BYTES, TakeBatches
from lienthong.node.outbox.file_work import take_and_seal_batch
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.outbox.refusals import Refused
from lienthong.node.outbox.sidecars import SidecarFound, sidecar_of
from lienthong.node.spool.record import (
    INTAKE_FILE,
    PAYLOAD_FILE,
    TakenFile,
    read_record,
    recorded_stream_ends,
)
from lienthong.node.spool.recovery import SpoolState, recover_spool
from lienthong.node.spool.sealing import STREAM_HEADER, kept_stream_ends, open_envelope
from lienthong.protocol.envelope import decode_header
from lienthong.protocol.layout import HEADER_BYTES
from lienthong.protocol.sealing import Opener
from tests.node.runtimehelp import FakeReactor, InlineWorkers, Office, enrol, make_office

NOW = "2026-11-26T07:00:00.000Z"


@pytest.fixture
def alpha(tmp_path: Path) -> Office:
    reactor = FakeReactor()
    office = make_office(tmp_path, "alpha", reactor)
    enrol(office, make_office(tmp_path, "beta", reactor, port=7444))
    return office


def _items(office: Office, paths: list[Path]) -> list[tuple[Any, ...]]:
    rt = office.runtime
    (beta,) = rt.directory.resolve_target("beta", rt.config.groups)
    seal = {"spool_dir": rt.config.spool, "node_keys": rt.keys, "created": NOW,
            "recipients": {beta.node_id: rt.directory.encryption_key_for(beta.node_id)}}
    return [(path, {"outbox": rt.config.outbox, "spool_dir": rt.config.spool,
                    "message_id": f"{index + 1:032x}", "max_bytes": 1 << 20, "now": NOW,
                    "meta": {"kind": "document", "priority": 3, "urgency": "normal"}},
             seal, None, None) for index, path in enumerate(paths)]


def test_a_batch_fsyncs_shared_folders_once_and_refuses_one_file_alone(
        alpha: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three files, the middle one empty: the other two are taken and sealed, the empty one
    fails with its own refusal; spool/ and the outbox folder are fsynced once for the batch,
    each document's folder once, before the batch returns. The batch's documents share ONE
    record, written and fsynced once before any folder (node/outbox/intake.py, "One record per
    batch"): each folder's ``intake.json`` is a hard link to it and reads as its own
    document's record. Each small document was sealed before its take: its stream ends are in
    that record, with no file of their own (docs/design.md §6)."""
    rt = alpha.runtime
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    paths = [folder / "a.pdf", folder / "empty.pdf", folder / "c.pdf"]
    paths[0].write_bytes(b"a" * 10240)
    paths[1].write_bytes(b"")
    paths[2].write_bytes(b"c" * 10240)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    results = take_and_seal_batch(_items(alpha, paths))
    assert isinstance(results[1], Failure) and isinstance(results[1].value, Refused)
    assert results[1].value.code == "empty" and paths[1].exists()
    records = [name for name in synced if name.endswith(f"/{INTAKE_FILE}")]
    assert len(records) == 1   # one record for the batch, fsynced once
    inodes = set()
    for index in (0, 2):
        taken, (meta, sealed) = results[index]
        assert isinstance(taken, TakenFile) and not paths[index].exists()
        assert meta["urgency"] == "normal" and sealed.header.size == 10240
        spooled = rt.config.spool / taken.message_id
        assert sorted(os.listdir(spooled)) == [INTAKE_FILE, PAYLOAD_FILE]
        assert read_record(spooled / INTAKE_FILE)["message_id"] == taken.message_id
        assert read_record(spooled / INTAKE_FILE)["original_name"] == paths[index].name
        inodes.add(os.stat(spooled / INTAKE_FILE).st_ino)
        assert recorded_stream_ends(spooled) == kept_stream_ends(spooled, HEADER_BYTES)
        assert len(recorded_stream_ends(spooled) or b"") == HEADER_BYTES  # v2: no trailer
        assert synced.count(str(spooled)) == 1
        # The record is fsynced before the folders that name it.
        assert synced.index(records[0]) < synced.index(str(spooled))
    assert len(inodes) == 1   # hard links to the one record
    assert synced.count(str(rt.config.spool)) == 1
    assert synced.count(str(folder)) == 1
    # The folders are fsynced once the batch is done (together, in one pass): after the record.
    assert synced.index(str(rt.config.spool)) > synced.index(records[0])
    assert synced.index(str(folder)) > synced.index(records[0])


class HeldWorkers(InlineWorkers):
    """Worker jobs that wait until the test runs them."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Callable[..., Any]]] = []

    def callInThreadWithCallback(self, on_result: Callable[[bool, Any], None],  # noqa: N802
                                 fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.jobs.append((fn, args, on_result))

    def run_next(self) -> None:
        fn, args, on_result = self.jobs.pop(0)
        super().callInThreadWithCallback(on_result, fn, *args)


def test_files_waiting_for_a_hop_go_together_most_urgent_first(alpha: Office) -> None:
    """While a hop runs, arrivals wait; the next hop takes them all, flash before normal and
    first come first among equals; every file's Deferred gets its own result."""
    rt = alpha.runtime
    workers = HeldWorkers()
    rt.workers = workers  # type: ignore[assignment]
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    names = ["first.pdf", "normal.pdf", "flash.pdf", "later.pdf"]
    for name in names:
        (folder / name).write_bytes(name.encode() * 100)
    items = _items(alpha, [folder / name for name in names])
    batches = TakeBatches(rt, hops=1)
    results: list[Any] = []
    for priority, item in zip([3, 3, 0, 3], items, strict=True):
        batches.submit(priority, *item).addBoth(results.append)
    assert len(workers.jobs) == 1  # one hop at a time here: the first file alone
    assert [item[0].name for item in workers.jobs[0][1][0]] == ["first.pdf"]
    workers.run_next()
    assert len(results) == 1 and results[0][0].original_name == "first.pdf"
    (batch,) = [job[1][0] for job in workers.jobs]
    assert [item[0].name for item in batch] == ["flash.pdf", "normal.pdf", "later.pdf"]
    workers.run_next()
    assert [r[0].original_name for r in results] == ["first.pdf", "flash.pdf", "normal.pdf",
                                                      "later.pdf"]


def test_a_failed_batch_fails_each_of_its_files(alpha: Office) -> None:
    """If the hop itself fails (the shared fsync, say), every file in it hears so."""
    rt = alpha.runtime
    workers = HeldWorkers()
    rt.workers = workers  # type: ignore[assignment]
    batches = TakeBatches(rt, hops=1)
    results: list[Any] = []
    for name in ("a.pdf", "b.pdf"):
        batches.submit(3, rt.config.outbox / "beta" / name, {}, None, None).addBoth(
            results.append)
    workers.jobs[0] = (lambda *args: (_ for _ in ()).throw(OSError(5, "EIO")),
                       workers.jobs[0][1], workers.jobs[0][2])
    workers.run_next()
    workers.jobs[0] = (lambda *args: (_ for _ in ()).throw(OSError(5, "EIO")),
                       workers.jobs[0][1], workers.jobs[0][2])
    workers.run_next()
    assert [r.value.errno for r in results] == [5, 5]


def test_a_spool_folder_of_the_older_layout_is_still_sealed_and_recorded(
        alpha: Office) -> None:
    """A version-1 spool folder (metadata in meta.json, not in intake.json) left by a crash
    before the upgrade is sealed with that metadata at start-up, and its dispatch recorded."""
    rt = alpha.runtime
    folder = rt.config.spool / "0123456789abcdef0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / PAYLOAD_FILE).write_bytes(b"old layout\n" * 50)
    (folder / "meta.json").write_bytes(canonical_json(
        {"kind": "document", "priority": 0, "urgency": "flash", "subject": "Hoa toc"}))
    (folder / INTAKE_FILE).write_bytes(canonical_json({
        "format": "lienthong-intake", "version": 1, "message_id": folder.name,
        "target": "beta", "original_name": "cu.pdf", "hint": None, "size": 550,
        "mtime_ns": 1, "taken_at": NOW}))
    dispatched: list[object] = []
    done: list[Any] = []
    Outbox(rt, on_dispatch=dispatched.append).recover().addBoth(done.append)
    assert done == [None] and len(dispatched) == 1
    (row,) = rt.store.recent_dispatches(5)
    assert row.message_id == folder.name and row.name == "cu.pdf" and row.priority == 0
    assert json.loads(json.dumps(dict(row.meta)))["subject"] == "Hoa toc"
    assert (folder / STREAM_HEADER).is_file()


def test_a_new_spool_folder_is_recovered_with_the_metadata_in_its_record(
        alpha: Office) -> None:
    """A version-3 folder (taken, never recorded) is sealed with the ``meta`` of intake.json."""
    rt = alpha.runtime
    outbox = rt.config.outbox / "beta"
    outbox.mkdir(parents=True)
    (outbox / "moi.pdf").write_bytes(b"new layout\n" * 50)
    (item,) = _items(alpha, [outbox / "moi.pdf"])
    item[1]["meta"] = {"kind": "document", "priority": 1, "urgency": "very-urgent"}
    (result,) = take_and_seal_batch([(item[0], item[1], None, None, None)])  # taken, not sealed
    taken, _ = result
    record = json.loads((taken.spool_path.parent / INTAKE_FILE).read_bytes())
    assert record["version"] == 3 and record["meta"]["urgency"] == "very-urgent"
    done: list[Any] = []
    Outbox(rt, on_dispatch=lambda ids: None).recover().addBoth(done.append)
    assert done == [None]
    (row,) = rt.store.recent_dispatches(5)
    assert row.message_id == taken.message_id and row.priority == 1


def test_a_take_that_expected_no_sidecar_and_finds_one_takes_nothing(alpha: Office) -> None:
    """A document prepared without looking for a sidecar (``plain_document``) is not taken
    if its hop finds one: the outbox must read and validate it first. The other file of the
    batch is taken regardless."""
    rt = alpha.runtime
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    paths = [folder / "with.pdf", folder / "without.pdf"]
    for path in paths:
        path.write_bytes(b"x" * 100)
    sidecar_of(paths[0]).write_text('subject = "Co"\n', encoding="utf-8")
    items = [item[:4] + (sidecar_of(item[0]),) for item in _items(alpha, paths)]
    results = take_and_seal_batch(items)
    assert isinstance(results[0], Failure) and isinstance(results[0].value, SidecarFound)
    assert paths[0].exists() and sidecar_of(paths[0]).exists()
    assert not (rt.config.spool / items[0][1]["message_id"]).exists()
    assert results[1][0].original_name == "without.pdf" and not paths[1].exists()


def test_a_large_file_gets_a_hop_of_its_own_at_once(alpha: Office) -> None:
    """Sealing a large file takes seconds: it is never batched, nor made to wait for a hop,
    so small (urgent) files are not stuck behind it."""
    rt = alpha.runtime
    workers = HeldWorkers()
    rt.workers = workers  # type: ignore[assignment]
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    names = ["small.pdf", "large.pdf", "urgent.pdf"]
    for name in names:
        (folder / name).write_bytes(b"x" * 100)
    items = _items(alpha, [folder / name for name in names])
    batches = TakeBatches(rt, hops=1)
    batches.submit(3, *items[0])
    batches.submit(3, *items[1], size=ALONE_BYTES + 1)
    batches.submit(0, *items[2])
    assert [[item[0].name for item in job[1][0]] for job in workers.jobs] == [
        ["small.pdf"], ["large.pdf"]]
    workers.run_next()
    assert [[item[0].name for item in job[1][0]] for job in workers.jobs] == [
        ["large.pdf"], ["urgent.pdf"]]


def _beta(office: Office) -> Any:
    rt = office.runtime
    (beta,) = rt.directory.resolve_target("beta", rt.config.groups)
    return beta


def _opened_by_beta(office: Office, beta_keys: Any, folder: Path, header_token: str,
                    header: Any) -> bytes:
    """The plaintext beta reads from the stream the sender re-creates from ``folder``."""
    source = open_envelope(folder, header_token, office.runtime.keys)
    try:
        ciphertext = b"".join(iter(lambda: source.read(1 << 16), b""))
    finally:
        source.close()
    opener = Opener(header, node_id=_beta(office).node_id,
                    encryption_keys=beta_keys.encryption_private_by_kid())
    plain = opener.feed(ciphertext)
    opener.finish()
    return plain


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Office, Office]:
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    return alpha, beta


@pytest.mark.parametrize("version", [2, 3])
def test_a_small_file_sealed_before_its_take_is_sent_from_the_ends_in_its_record(
        pair: tuple[Office, Office], version: int) -> None:
    """A small file is sealed before its take: no stream-ends file, the ends in intake.json,
    and the stream re-created from them is the one the recipient opens (v3: its trailer
    verifies)."""
    alpha, beta = pair
    rt = alpha.runtime
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    plain = os.urandom(300_000)
    (folder / "nho.pdf").write_bytes(plain)
    (item,) = _items(alpha, [folder / "nho.pdf"])
    item[2]["version"] = version
    ((taken, (meta, sealed)),) = take_and_seal_batch([item])
    spooled = taken.spool_path.parent
    assert sorted(os.listdir(spooled)) == [INTAKE_FILE, PAYLOAD_FILE]
    ends = recorded_stream_ends(spooled)
    assert ends is not None and len(ends) == HEADER_BYTES + sealed.header.trailer_bytes
    assert (sealed.header.trailer_bytes > 0) == (version == 3)
    assert _opened_by_beta(alpha, beta.runtime.keys, spooled, sealed.header_token,
                           sealed.header) == plain


def test_a_reseal_after_a_crash_wins_over_the_stream_ends_in_the_record(
        pair: tuple[Office, Office]) -> None:
    """Crash after the take, before the dispatch commit: the ends recorded at the take belong
    to a header token nobody kept. Recovery seals again (a new file key and stream header),
    keeps the new ends in a file, and that file is what the stream is re-created from."""
    alpha, beta = pair
    rt = alpha.runtime
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    plain = b"cong van so 7\n" * 700
    (folder / "cv.txt").write_bytes(plain)
    (item,) = _items(alpha, [folder / "cv.txt"])
    ((taken, _),) = take_and_seal_batch([item])   # the dispatch is never recorded
    spooled = taken.spool_path.parent
    first = recorded_stream_ends(spooled)
    done: list[Any] = []
    Outbox(rt, on_dispatch=lambda ids: None).recover().addBoth(done.append)
    assert done == [None]
    (row,) = rt.store.recent_dispatches(5)
    assert row.message_id == taken.message_id
    kept = (spooled / STREAM_HEADER).read_bytes()
    assert kept != first and recorded_stream_ends(spooled) == first
    header = decode_header(row.header_token)
    assert _opened_by_beta(alpha, beta.runtime.keys, spooled, row.header_token,
                           header) == plain


def test_a_folder_of_the_previous_layout_is_recovered_and_sent(
        pair: tuple[Office, Office]) -> None:
    """An upgrade with work in the spool: a version-2 ``intake.json`` (no ``stream_ends``),
    taken before the upgrade and never recorded, is read, sealed, recorded and sent."""
    alpha, beta = pair
    rt = alpha.runtime
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    plain = b"truoc khi nang cap\n" * 300
    (folder / "cu.txt").write_bytes(plain)
    (item,) = _items(alpha, [folder / "cu.txt"])
    ((taken, _),) = take_and_seal_batch([(item[0], item[1], None, None, None)])
    spooled = taken.spool_path.parent
    record = json.loads((spooled / INTAKE_FILE).read_bytes())
    del record["stream_ends"]
    record["version"] = 2
    (spooled / INTAKE_FILE).write_bytes(canonical_json(record))
    (found,) = recover_spool(rt.config.spool)
    assert found.state is SpoolState.TAKEN and recorded_stream_ends(spooled) is None
    done: list[Any] = []
    Outbox(rt, on_dispatch=lambda ids: None).recover().addBoth(done.append)
    assert done == [None]
    (row,) = rt.store.recent_dispatches(5)
    assert row.message_id == taken.message_id
    assert _opened_by_beta(alpha, beta.runtime.keys, spooled, row.header_token,
                           decode_header(row.header_token)) == plain


class _Killed(BaseException):
    """Stands for the SIGKILL of the fault tests (tests/faults), inside one process."""


def test_a_batch_cut_after_its_first_move_is_recovered_from_its_share_of_the_record(
        alpha: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut where ``sender-during-batch-take:1`` kills the node: the batch's record is in all
    three folders and only the first file was moved in. Recovery finds that one taken, named
    by its own share of the record, and the two others incomplete (their files are still in
    the outbox, to be taken again)."""
    rt = alpha.runtime
    folder = rt.config.outbox / "beta"
    folder.mkdir(parents=True)
    paths = [folder / f"{name}.pdf" for name in ("a", "b", "c")]
    for path in paths:
        path.write_bytes(path.name.encode() * 1000)

    def killed(stage: str) -> None:
        if stage == "sender-during-batch-take":
            raise _Killed(stage)

    monkeypatch.setattr(intake, "failpoint", killed)
    with pytest.raises(_Killed):
        take_and_seal_batch(_items(alpha, paths))
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()
    found = {item.message_id: item for item in recover_spool(rt.config.spool)}
    assert [item.state for item in found.values()] == [
        SpoolState.TAKEN, SpoolState.INCOMPLETE, SpoolState.INCOMPLETE]
    first = found[f"{1:032x}"]
    assert first.taken is not None and first.taken.original_name == "a.pdf"
    assert first.taken.size == len(b"a.pdf" * 1000)
    assert found[f"{2:032x}"].taken.original_name == "b.pdf"   # its share, though not moved


def test_a_batch_record_naming_no_such_document_is_unusable(alpha: Office) -> None:
    rt = alpha.runtime
    spooled = rt.config.spool / f"{9:032x}"
    spooled.mkdir(parents=True)
    (spooled / INTAKE_FILE).write_text(
        '{"format":"lienthong-intake","version":4,"records":[]}')
    (spooled / PAYLOAD_FILE).write_bytes(b"x")
    (item,) = recover_spool(rt.config.spool)
    assert item.state is SpoolState.DAMAGED and "names no document" in (item.problem or "")
