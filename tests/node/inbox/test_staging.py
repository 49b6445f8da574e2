"""The receiver's staging files (node/inbox/staging.py): what older versions or abandoned
transfers left in ``tmp/`` is cleaned up at start-up, and nothing else."""
from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.defer import Deferred

from lienthong.node.inbox.staging import (
    FREE_SPACE_MAX_AGE,
    FREE_SPACE_REFRESH,
    STALE_STAGING_SECONDS,
    FreeSpace,
    discard_legacy_partials,
    discard_stale_staging,
    free_or_error,
)
from lienthong.node.inbox.stream import RESUME_SUFFIX


def test_ciphertext_partials_of_an_older_version_are_removed(tmp_path: Path) -> None:
    """``tmp/receiving/<peer>/*.part`` (the old resume basis) is dropped; nothing else is."""
    folder = tmp_path / "receiving"
    (folder / "abcd1234").mkdir(parents=True)
    (folder / "abcd1234" / "0123-4567.part").write_bytes(b"x" * 100)
    (folder / "abcd1234" / "keep.txt").write_bytes(b"y")
    assert discard_legacy_partials(folder) == 1
    assert [p.name for p in (folder / "abcd1234").iterdir()] == ["keep.txt"]
    assert discard_legacy_partials(tmp_path / "missing") == 0


def test_staging_nobody_offered_again_for_a_week_is_removed(tmp_path: Path) -> None:
    """Decrypted plaintext of an abandoned transfer does not stay in tmp/staging for ever; a
    recent one, and one being received again right now, are kept."""
    folder = tmp_path / "staging"
    folder.mkdir()
    now = 2_000_000_000.0
    old, recent, busy = "a" * 32 + "-ABCD123", "b" * 32 + "-ABCD123", "c" * 32 + "-ABCD123"
    for name, age in ((old, STALE_STAGING_SECONDS + 60), (recent, 3600),
                      (busy, STALE_STAGING_SECONDS + 60)):
        for path in (folder / name, folder / (name + RESUME_SUFFIX)):
            path.write_bytes(b"plaintext")
            os.utime(path, (now - age, now - age))
    assert discard_stale_staging(folder, now, frozenset({"c" * 32})) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [recent, recent + RESUME_SUFFIX, busy, busy + RESUME_SUFFIX])
    assert discard_stale_staging(tmp_path / "missing", now) == 0


class Readings:
    """``FreeSpace``'s worker-pool reading, answered by the test; and its clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pending: list[Deferred] = []

    def read(self) -> Deferred:
        d: Deferred = Deferred()
        self.pending.append(d)
        return d

    def answer(self, value: object) -> None:
        self.pending.pop(0).callback(value)


def _result(d: Deferred) -> list[object]:
    got: list[object] = []
    d.addBoth(got.append)
    return got


def test_free_space_is_read_once_then_estimated_less_what_was_accepted() -> None:
    readings = Readings()
    space = FreeSpace(readings.read, lambda: readings.now)
    first, second = _result(space.estimate()), _result(space.estimate())
    assert first == second == [] and len(readings.pending) == 1   # one reading for both
    readings.answer(50_000_000)
    assert first == second == [50_000_000]
    space.accepted(10_000)
    readings.now += FREE_SPACE_REFRESH / 2
    assert _result(space.estimate()) == [49_990_000] and readings.pending == []


def test_an_aging_reading_is_renewed_in_the_background_and_an_old_one_is_waited_for() -> None:
    readings = Readings()
    space = FreeSpace(readings.read, lambda: readings.now)
    _result(space.estimate())
    readings.answer(40_000_000)
    space.accepted(5_000)
    readings.now += FREE_SPACE_REFRESH + 0.01
    assert _result(space.estimate()) == [39_995_000]     # answered at once...
    assert len(readings.pending) == 1                    # ...and the next reading started
    assert _result(space.estimate()) == [39_995_000] and len(readings.pending) == 1
    readings.answer(30_000_000)                          # the new reading; accepted reset
    assert _result(space.estimate()) == [30_000_000]
    readings.now += FREE_SPACE_MAX_AGE + 0.01            # idle: too old to trust
    waited = _result(space.estimate())
    assert waited == [] and len(readings.pending) == 1
    readings.answer(20_000_000)
    assert waited == [20_000_000]


def test_a_reading_that_fails_is_handed_to_the_offer_and_read_again_next_time(
        tmp_path: Path) -> None:
    readings = Readings()
    space = FreeSpace(readings.read, lambda: readings.now)
    error = free_or_error(tmp_path / "missing")
    assert isinstance(error, FileNotFoundError)
    got = _result(space.estimate())
    readings.answer(error)
    assert got == [error]
    again = _result(space.estimate())                    # nothing cached from an error
    assert again == [] and len(readings.pending) == 1
    assert isinstance(free_or_error(tmp_path), int)
