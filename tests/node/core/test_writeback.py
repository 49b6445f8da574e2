"""Early writeback asks the kernel for each written range once, in order, and changes no data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lienthong.node.core import writeback
from lienthong.node.core.writeback import Writeback


def test_ranges_are_contiguous_and_each_at_least_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte written is handed over exactly once, in steps of at least ``step`` bytes."""
    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", lambda *args: calls.append(args) or 0)
    early = Writeback(7, step=4 << 20)
    for _ in range(10):
        early.wrote(3 << 20)
    assert [(fd, flags) for fd, _o, _n, flags in calls] == [(7, 2)] * len(calls)
    assert [offset for _fd, offset, _n, _f in calls] == [0] + [
        sum(n for _fd, _o, n, _f in calls[:i]) for i in range(1, len(calls))]
    assert all(n >= 4 << 20 for _fd, _o, n, _f in calls)
    assert sum(n for _fd, _o, n, _f in calls) == 30 << 20  # here every byte was handed over


def test_without_sync_file_range_nothing_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the call does not exist, wrote() is a no-op and raises nothing."""
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", None)
    Writeback(-1, step=1).wrote(10)


def test_a_real_file_keeps_its_bytes(tmp_path: Path) -> None:
    """On the real system call (or none), the file's content is exactly what was written."""
    path = tmp_path / "envelope.part"
    data = os.urandom(3 << 20)
    with open(path, "wb") as sink:
        early = Writeback(sink.fileno(), step=1 << 20)
        for start in range(0, len(data), 256 << 10):
            piece = data[start:start + (256 << 10)]
            sink.write(piece)
            sink.flush()
            early.wrote(len(piece))
        os.fsync(sink.fileno())
    assert path.read_bytes() == data
