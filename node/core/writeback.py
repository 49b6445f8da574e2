"""Start writing a large file's pages to disk while it is still being written (Linux).

A file written in one go and fsynced at the end leaves all of its dirty pages for that one
fsync: with 1 GiB and a disk that takes 150-250 MB/s, the sealer (or the receiver, after
verifying) then sits idle for seconds while the disk catches up, although it had been
computing the whole time. ``Writeback`` asks the kernel every ``step`` bytes to start writing
what has been written so far (``sync_file_range(SYNC_FILE_RANGE_WRITE)``: start, do not wait),
so the disk works *while* the CPU encrypts or decrypts, and the final fsync, still required
before anything is recorded or receipted, finds little left to do.

With ``drop_behind`` (the receiver's staging file), each step also drops from the page cache
what the writeback started two steps before has made clean (``posix_fadvise(DONTNEED)``; a
page still dirty or being written is skipped by the kernel). A 1 GiB file otherwise fills the
cache with pages nobody reads soon, and on a machine whose memory is full of cache the writer
pays for reclaiming other pages for each new one: 1.5-2.0 s of kernel time per GiB at the
receiver, against about 0.5 s with the drop (docs/benchmarks.md, History 49).

It changes no guarantee: durability still comes only from the caller's fsync. Where
``sync_file_range`` does not exist (not Linux, or no libc found), ``Writeback`` does nothing.
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from lienthong.node.core.libc import linux_function

SYNC_FILE_RANGE_WRITE = 2
DEFAULT_STEP = 8 << 20


_SYNC_FILE_RANGE: Callable[[int, int, int, int], int] | None = linux_function(
    "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])


class Writeback:
    """Call ``wrote(n)`` after each write to ``fd``; writeback starts every ``step`` bytes.
    ``start`` is where the writes begin (a file appended to after its first ``start`` bytes)."""

    def __init__(self, fd: int, *, step: int = DEFAULT_STEP, start: int = 0,
                 drop_behind: bool = False) -> None:
        self._fd = fd
        self._step = step
        self._written = start
        self._started = start
        #: Drop from the page cache what the writeback started two steps ago has made clean.
        self._drop_behind = drop_behind and hasattr(os, "posix_fadvise")
        self._previous = start
        self._dropped = start

    def wrote(self, count: int) -> None:
        self._written += count
        if _SYNC_FILE_RANGE is None or self._written - self._started < self._step:
            return
        # Errors are ignored on purpose: this is only a hint, and the caller's fsync reports
        # any real failure to write.
        _SYNC_FILE_RANGE(self._fd, self._started, self._written - self._started,
                         SYNC_FILE_RANGE_WRITE)
        if self._drop_behind and self._previous > self._dropped:
            # Pages still dirty or being written are skipped by the kernel: only a hint, and a
            # file system that refuses it (EINVAL) costs the transfer nothing.
            try:
                os.posix_fadvise(self._fd, self._dropped, self._previous - self._dropped,
                                 os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            self._dropped = self._previous
        self._previous = self._started
        self._started = self._written


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing all of ``fd``'s dirty pages now, without waiting (a
    hint; does nothing where ``sync_file_range`` is missing).

    Why: files fsynced one after another each wait for a journal commit of their own. Started
    together first, their blocks are allocated in one journal transaction, which the first
    fsync commits for all; the fsyncs that follow find their data written and their inode
    committed (a batch's "one fsync pass": node/inbox/publication.py, node/inbox/finishing.py).
    """
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, 0, 0, SYNC_FILE_RANGE_WRITE)


def write_whole(fd: int, data: bytes) -> None:
    """Write ``data`` whole to ``fd``, starting no writeback (a later flush of the file
    system makes it durable: node/core/syncfs.py)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_started(fd: int, data: bytes) -> None:
    """Write ``data`` whole to ``fd`` and start its writeback without waiting: the first half
    of a batch's fsync pass, ``sync_and_close`` the second."""
    write_whole(fd, data)
    start_writeback(fd)


def sync_and_close(fds: list[int]) -> None:
    """fsync each descriptor, then close them all (even when an fsync fails)."""
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)
