"""Early writeback asks the kernel for each written range once, in order, and changes no data."""
from __future__ import annotations

import ctypes
import mmap
import os
import sys
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


def test_drop_behind_asks_for_what_was_started_two_steps_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``drop_behind``, each step drops, once and in order, every byte whose writeback
    began at least two steps earlier, and never the two latest ranges; without it, nothing."""
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", lambda *args: 0)
    drops: list[tuple[int, int, int]] = []
    monkeypatch.setattr(os, "posix_fadvise",
                        lambda fd, offset, length, advice: drops.append((offset, length, advice)))
    early = Writeback(7, step=4 << 20, drop_behind=True)
    for _ in range(8):
        early.wrote(4 << 20)
    assert [offset for offset, _n, _a in drops] == [0] + [
        sum(n for _o, n, _a in drops[:i]) for i in range(1, len(drops))]
    assert {advice for _o, _n, advice in drops} == {os.POSIX_FADV_DONTNEED}
    assert sum(n for _o, n, _a in drops) == 24 << 20     # 32 MiB written, the last 8 kept
    drops.clear()
    plain = Writeback(7, step=4 << 20)
    for _ in range(8):
        plain.wrote(4 << 20)
    assert drops == []


def _resident(path: Path) -> list[bool]:
    """Which of ``path``'s pages are in the page cache (mincore of a shared mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = -(-size // os.sysconf("SC_PAGE_SIZE"))
    vector = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            assert libc.mincore(address, size, vector) == 0
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    return [bool(byte & 1) for byte in vector]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_a_real_file_written_back_leaves_the_page_cache_behind_it(tmp_path: Path) -> None:
    """On the real system calls: the pages dropped (clean, here, because each piece is
    fdatasync'ed before ``wrote``) are gone from the page cache, the last two steps' pages
    are still there, and the file's bytes are intact."""
    path = tmp_path / "staging"
    data = os.urandom(32 << 20)
    with open(path, "wb", buffering=0) as sink:
        early = Writeback(sink.fileno(), step=4 << 20, drop_behind=True)
        for start in range(0, len(data), 1 << 20):
            sink.write(data[start:start + (1 << 20)])
            os.fdatasync(sink.fileno())
            early.wrote(1 << 20)
    resident = _resident(path)
    page = os.sysconf("SC_PAGE_SIZE")
    dropped, kept = resident[:(24 << 20) // page], resident[(24 << 20) // page:]
    assert sum(dropped) < len(dropped) // 10
    assert sum(kept) > len(kept) // 2
    assert path.read_bytes() == data


def test_a_refused_drop_costs_the_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """posix_fadvise refused (a file system without it): wrote() still raises nothing."""
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", lambda *args: 0)

    def refuse(*args: object) -> None:
        raise OSError(22, "Invalid argument")
    monkeypatch.setattr(os, "posix_fadvise", refuse)
    early = Writeback(7, step=1 << 20, drop_behind=True)
    for _ in range(5):
        early.wrote(1 << 20)
