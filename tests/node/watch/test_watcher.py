"""The outbox watcher: real watchdog observers for hints, a fake Clock for stability timing.

The observer's thread hands hints over through ``call_from_thread``, which here just queues
them; the test thread drains the queue (as the reactor would) and advances the Clock, so
"ready after stability" is checked exactly, without sleeping through real quiet windows.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from lienthong.node.watch import events as watch_events
from lienthong.node.watch import watcher as watcher_module
from lienthong.node.watch.watcher import State
from tests.node.watchhelp import SCAN, STABLE, Harness, write


def test_closed_file_becomes_ready_once_after_stability(harness: Harness, outbox: Path) -> None:
    """A file written and closed is reported once, only after a full quiet window."""
    path = write(outbox / "peer" / "report.pdf")
    harness.settle()
    assert harness.watcher.state_of(path) is State.SETTLING
    harness.clock.advance(STABLE * 0.9)
    assert harness.ready == []
    harness.clock.advance(STABLE * 0.2)
    assert harness.ready == [(path, "peer")]
    harness.clock.advance(SCAN * 3)  # periodic scans see it again: still handed over
    harness.settle()
    assert harness.ready == [(path, "peer")]


def test_growing_file_is_not_ready_while_it_grows(harness: Harness, outbox: Path) -> None:
    """Each change (seen through events) restarts the quiet window."""
    path = write(outbox / "peer" / "big.pdf", b"a")
    harness.settle()
    for _ in range(5):
        harness.clock.advance(STABLE * 0.6)
        with open(path, "ab") as handle:
            handle.write(b"more")
        harness.settle()
    harness.clock.advance(STABLE * 0.6)
    assert harness.ready == []
    harness.clock.advance(STABLE * 0.5)
    assert harness.ready == [(path, "peer")]


def test_growing_file_without_events_is_caught_by_the_second_look(
        blind: Harness, outbox: Path) -> None:
    """With no events at all, the look itself sees the change and waits again."""
    path = write(outbox / "peer" / "big.pdf", b"a")
    blind.clock.advance(SCAN)
    assert blind.watcher.state_of(path) is State.SETTLING
    for _ in range(3):
        blind.clock.advance(STABLE * 0.5)
        with open(path, "ab") as handle:
            handle.write(b"more")
        blind.clock.advance(STABLE * 0.5)
        assert blind.ready == []
    blind.clock.advance(STABLE)
    assert blind.ready == [(path, "peer")]


@pytest.mark.parametrize("name", [
    ".~lock.report.odt#", "~$report.docx", "~WRL0001.tmp", "report.pdf.part", "x.crdownload",
    ".hidden.pdf", "report.pdf~", "4913", "report.pdf.meta.toml", ".lienthong-abc.part",
])
def test_noise_is_never_ready(harness: Harness, outbox: Path, name: str) -> None:
    """Lock, temp, hidden and sidecar files are never reported, by events or by scans."""
    write(outbox / "peer" / name)
    (outbox / "peer" / ".git").mkdir()
    write(outbox / "peer" / ".git" / "inside.pdf")
    harness.settle()
    harness.clock.advance(SCAN + STABLE * 2)
    harness.settle()
    harness.clock.advance(STABLE * 2)
    assert harness.ready == []
    assert harness.watcher.pending == 0


def test_startup_scan_finds_files_dropped_while_down(outbox: Path) -> None:
    """Files present before start are found by the start-up scan."""
    path = write(outbox / "peer" / "while-down.pdf")
    h = Harness(outbox)
    h.start()
    try:
        h.clock.advance(STABLE)
        assert h.ready == [(path, "peer")]
    finally:
        h.stop()


def test_periodic_scan_finds_what_events_missed(blind: Harness, outbox: Path) -> None:
    """When every event is lost, the periodic scan is the truth."""
    path = write(outbox / "peer" / "missed.pdf")
    blind.settle()
    blind.clock.advance(SCAN - 1)
    assert blind.ready == [] and blind.watcher.pending == 0
    blind.clock.advance(1)
    blind.clock.advance(STABLE)
    assert blind.ready == [(path, "peer")]


def test_polling_observer_delivers_hints(outbox: Path) -> None:
    """The PollingObserver (network shares) also turns a new file into a hint, then ready."""
    h = Harness(outbox, observer="polling")
    h.start()
    try:
        assert h.watcher.watching
        path = write(outbox / "peer" / "over-smb.pdf")
        h.wait_for(lambda: h.watcher.state_of(path) is State.SETTLING)
        h.settle(quiet=1.5)  # polling reports once per second
        h.clock.advance(STABLE)
        assert h.ready == [(path, "peer")]
    finally:
        h.stop()


def test_polling_observer_startup_and_periodic_scan(outbox: Path) -> None:
    """With the PollingObserver, files dropped while down are found at start too."""
    early = write(outbox / "peer" / "early.pdf")
    h = Harness(outbox, observer="polling", drop_hints=True)
    h.start()
    try:
        h.clock.advance(STABLE)
        late = write(outbox / "peer" / "late.pdf")
        h.clock.advance(SCAN)
        h.clock.advance(STABLE)
        assert h.ready == [(early, "peer"), (late, "peer")]
    finally:
        h.stop()


@pytest.mark.parametrize("drop_hints", [False, True], ids=["events", "events-lost"])
def test_two_thousand_files_at_once_all_become_ready(outbox: Path, drop_hints: bool) -> None:
    """A burst of 2,000 files: every one is reported exactly once, even if every event is lost."""
    h = Harness(outbox, drop_hints=drop_hints, scan_batch=300)
    h.start()
    try:
        paths = {write(outbox / "peer" / f"doc-{i:04d}.pdf", b"x" * 100) for i in range(2000)}
        h.settle()
        h.clock.advance(SCAN)
        h.clock.advance(STABLE)
        h.clock.advance(SCAN)  # a further scan must not report any of them again
        reported = [path for path, _ in h.ready]
        assert len(reported) == 2000 and set(reported) == paths
        assert {target for _, target in h.ready} == {"peer"}
    finally:
        h.stop()


def test_pending_limit_bounds_memory_and_scans_catch_up(outbox: Path) -> None:
    """With max_pending, excess files wait for a later scan; all are reported eventually."""
    paths = {write(outbox / "peer" / f"d{i}.pdf") for i in range(50)}
    h = Harness(outbox, drop_hints=True, max_pending=10)
    h.start()
    try:
        seen: list[Path] = []
        for _ in range(10):
            h.clock.advance(STABLE)
            assert h.watcher.pending <= 10
            for path, _ in h.ready:
                path.unlink()  # the node takes it
                h.watcher.done(path)
            seen.extend(path for path, _ in h.ready)
            h.ready.clear()
            h.clock.advance(SCAN)
        assert sorted(seen) == sorted(paths)
    finally:
        h.stop()


def test_special_entries_are_ready_at_once(harness: Harness, outbox: Path) -> None:
    """Symlinks, dangling symlinks, FIFOs and linked folders are handed over without waiting."""
    secret = outbox.parent / "keystore"
    write(secret, b"SECRET")
    (outbox / "peer" / "evil.pdf").symlink_to(secret)
    (outbox / "peer" / ".#dangling").symlink_to(outbox / "nowhere")  # emacs lock: noise
    (outbox / "peer" / "dangling.pdf").symlink_to(outbox / "nowhere")
    os.mkfifo(outbox / "peer" / "pipe.pdf")
    (outbox / "linked").symlink_to(outbox.parent, target_is_directory=True)
    harness.settle()
    harness.clock.advance(SCAN)  # also via the scan, in case the events were not seen
    ready = dict(harness.ready)
    assert ready == {outbox / "peer" / "evil.pdf": "peer",
                     outbox / "peer" / "dangling.pdf": "peer",
                     outbox / "peer" / "pipe.pdf": "peer", outbox / "linked": ""}
    assert len(harness.ready) == 4


def test_file_directly_in_outbox_is_ready_without_target(harness: Harness, outbox: Path) -> None:
    """A file dropped next to the target folders is reported with target '' once still."""
    path = write(outbox / "stray.pdf")
    harness.settle()
    harness.clock.advance(STABLE)
    assert harness.ready == [(path, "")]


def test_subfolder_keeps_first_folder_as_target(harness: Harness, outbox: Path) -> None:
    """outbox/<target>/<type>/... files are reported with the target folder's name."""
    (outbox / "peer" / "cong-van" / "2026").mkdir(parents=True)
    path = write(outbox / "peer" / "cong-van" / "2026" / "x.pdf")
    harness.settle()
    harness.clock.advance(STABLE)
    assert harness.ready == [(path, "peer")]


def test_moved_in_file_is_ready_at_once_and_a_moved_in_folder_after_one_look(
        harness: Harness, outbox: Path) -> None:
    """A rename into the outbox is complete (inotify says so): no quiet window for it. The
    files of a folder moved in arrive as created hints and get one stability look."""
    staging = outbox.parent / "staging"
    (staging / "batch").mkdir(parents=True)
    write(staging / "one.pdf")
    write(staging / "batch" / "two.pdf")
    os.rename(staging / "one.pdf", outbox / "peer" / "one.pdf")
    os.rename(staging / "batch", outbox / "peer" / "batch")
    harness.settle()
    assert harness.ready == [(outbox / "peer" / "one.pdf", "peer")]
    harness.clock.advance(STABLE)
    assert sorted(harness.ready) == [(outbox / "peer" / "batch" / "two.pdf", "peer"),
                                     (outbox / "peer" / "one.pdf", "peer")]


def test_moved_in_hard_linked_file_still_waits(harness: Harness, outbox: Path) -> None:
    """Only a regular file with one link skips the window (intake refuses the other)."""
    staging = outbox.parent / "staging"
    staging.mkdir()
    write(staging / "linked.pdf")
    os.link(staging / "linked.pdf", staging / "other-name.pdf")
    os.rename(staging / "linked.pdf", outbox / "peer" / "linked.pdf")
    harness.settle()
    assert harness.ready == []
    harness.clock.advance(STABLE)
    assert harness.ready == [(outbox / "peer" / "linked.pdf", "peer")]


def test_polling_observer_never_skips_the_window(outbox: Path) -> None:
    """The polling observer's moves are guesses from snapshots: they get the window."""
    h = Harness(outbox, observer="polling")
    h.start()
    try:
        staging = outbox.parent / "staging"
        staging.mkdir()
        write(staging / "one.pdf")
        time.sleep(0.05)
        os.rename(staging / "one.pdf", outbox / "peer" / "one.pdf")
        h.wait_for(lambda: h.watcher.state_of(outbox / "peer" / "one.pdf") is not None)
        assert h.ready == []
        h.clock.advance(STABLE)
        assert h.ready == [(outbox / "peer" / "one.pdf", "peer")]
    finally:
        h.stop()


def test_done_after_take_forgets_the_path(harness: Harness, outbox: Path) -> None:
    """Once the node has taken the file and said done, nothing more is reported."""
    path = write(outbox / "peer" / "a.pdf")
    harness.settle()
    harness.clock.advance(STABLE)
    path.unlink()
    harness.watcher.done(path)
    harness.settle()
    harness.clock.advance(SCAN + STABLE)
    assert harness.ready == [(path, "peer")] and harness.watcher.pending == 0


def test_name_reused_while_handed_over_is_reported_again_after_done(
        harness: Harness, outbox: Path) -> None:
    """A new file saved under a handed-over name is looked at again as soon as done() comes."""
    path = write(outbox / "peer" / "a.pdf", b"first")
    harness.settle()
    harness.clock.advance(STABLE)
    os.rename(path, outbox.parent / "taken")  # the node moves it to its spool...
    write(path, b"second version")  # ...and the clerk saves again before done()
    # watchdog holds events after an unpaired move-out for up to a second (move grouping).
    harness.settle(quiet=1.5)
    harness.watcher.done(path)
    assert harness.watcher.state_of(path) is State.SETTLING
    harness.clock.advance(STABLE)
    assert harness.ready == [(path, "peer"), (path, "peer")]


def test_folder_replacing_a_settling_file_is_walked(harness: Harness, outbox: Path) -> None:
    """A path that turns from a file into a folder is walked, not reported as a file."""
    path = write(outbox / "peer" / "thing")
    harness.settle()
    path.unlink()
    path.mkdir()
    inner = write(path / "inner.pdf")
    harness.settle()
    harness.clock.advance(STABLE)
    assert harness.ready == [(inner, "peer")]
    shutil.rmtree(path)


def test_a_burst_of_hints_wakes_the_reactor_once_and_is_looked_at_in_batches(
        outbox: Path) -> None:
    """Thousands of events (several per file) cost one hand-over to the reactor, and each
    turn of the reactor looks at no more than HINT_BATCH paths, so it stays responsive."""
    h = Harness(outbox, stable_seconds=0.5)
    h.start()
    h.drain()
    count = watch_events.HINT_BATCH * 2 + 10
    paths = [write(outbox / "peer" / f"doc-{i}.pdf") for i in range(count)]
    while h.calls.qsize():  # the observer's own events for these files, if already queued
        h.calls.get_nowait()
    hints = h.watcher._hints
    hints.stop()   # forget what the real observer noted for these files so far
    hints.start()
    for _ in range(3):  # created, modified, closed: three events a file
        for path in paths:
            hints.note(str(path))
    assert h.calls.qsize() == 1
    fn, args = h.calls.get_nowait()
    fn(*args)
    looked_at = sum(1 for p in paths if h.watcher.state_of(p) is not None)
    # (the real observer may have noted the folder itself too, so "at most", not "exactly")
    assert watch_events.HINT_BATCH - 5 <= looked_at <= watch_events.HINT_BATCH
    h.clock.advance(0)
    h.clock.advance(0)
    assert all(h.watcher.state_of(p) is not None for p in paths)
    h.clock.advance(1)
    h.settle(quiet=0.2)
    h.clock.advance(1)
    assert sorted(p for p, _ in h.ready) == sorted(paths)
    h.stop()


def test_scan_notes_files_waiting_at_intake_without_looking_at_them(
        blind: Harness, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A periodic scan does no lstat for files already handed over (a backlog waiting its
    turn at intake), yet still notes them: a name reused meanwhile is looked at after done()."""
    paths = [write(outbox / "peer" / f"cho-{index}.pdf", b"first") for index in range(50)]
    blind.clock.advance(SCAN)  # only scans see files here
    blind.clock.advance(STABLE)
    assert sorted(p for p, _ in blind.ready) == sorted(paths)
    looked: list[str] = []
    real_lstat = watcher_module.os.lstat
    monkeypatch.setattr(watcher_module.os, "lstat",
                        lambda path, *a, **kw: looked.append(str(path))
                        or real_lstat(path, *a, **kw))
    os.rename(paths[0], outbox.parent / "taken")  # the node takes the first one...
    write(paths[0], b"second version")  # ...and the clerk saves it again before done()
    blind.clock.advance(SCAN)
    assert looked == []
    assert all(blind.watcher.state_of(p) is State.HANDED_OVER for p in paths)
    blind.watcher.done(paths[0])  # seen by the scan meanwhile: looked at again at once
    assert looked == [str(paths[0])]
    assert blind.watcher.state_of(paths[0]) is State.SETTLING
    blind.clock.advance(STABLE)
    assert [p for p, _ in blind.ready].count(paths[0]) == 2
