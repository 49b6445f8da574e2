"""Make everything written on one file system durable in one call (Linux ``syncfs(2)``).

Why: files that can be written again from the store (the inbox's sidecars) need not each be
fsynced on its own; one flush of their file system, late and for many, makes them durable
together, and only then is their record of being due dropped (node/inbox/publication.py).
Where ``syncfs`` is missing (not Linux, or no libc found) ``os.sync`` does the same for every
file system, which is slower but as safe.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from lienthong.node.core.libc import linux_function

_SYNCFS: Callable[[int], int] | None = linux_function("syncfs", [ctypes.c_int])


#: One descriptor kept open per file system (by device), opened before the first write that
#: a flush must cover: Linux reports through ``syncfs`` only the write errors that happened
#: since the descriptor was opened (or since its last report), so one opened at flush time
#: would miss a writeback that failed before it.
_KEPT: dict[int, int] = {}
_LOCK = threading.Lock()


def watch(folder: Path) -> None:
    """Call before writing in ``folder`` what a later ``sync_file_systems`` must cover."""
    _kept_descriptor(folder)


def _kept_descriptor(folder: Path) -> int:
    device = os.stat(folder).st_dev
    with _LOCK:
        fd = _KEPT.get(device)
        if fd is None:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            _KEPT[device] = fd
        return fd


def sync_file_systems(folders: Iterable[Path]) -> None:
    """Flush the file system of each of ``folders`` once (one call per file system; a folder
    gone since is skipped). Raises OSError if a folder cannot be reached or the flush reports
    a write error since the ``watch`` of its file system (Linux 5.8 and later; older kernels
    say nothing, as ``sync`` does)."""
    if _SYNCFS is None:
        os.sync()
        return
    done: set[int] = set()
    for folder in folders:
        try:
            fd = _kept_descriptor(folder)
        except FileNotFoundError:
            continue    # gone since: nothing written there is left to flush
        if fd in done:
            continue
        if _SYNCFS(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), str(folder))
        done.add(fd)
