"""Make everything written on one file system durable in one call (Linux ``syncfs(2)``).

Why: files that can be written again from the store (the inbox's sidecars) need not each be
fsynced on its own; one flush of their file system, late and for many, makes them durable
together, and only then is their record of being due dropped (node/inbox/publication.py).
Where ``syncfs`` is missing (not Linux, or no libc found) ``os.sync`` does the same for every
file system, which is slower but as safe.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Iterable
from pathlib import Path


def _load() -> Callable[[int], int] | None:
    if not hasattr(os, "sched_getaffinity"):  # a cheap "is this Linux" test
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int
    return call


_SYNCFS = _load()


def sync_file_systems(folders: Iterable[Path]) -> None:
    """Flush the file system of each of ``folders`` once (one call per file system). Raises
    OSError if a folder cannot be opened or the flush reports an error (Linux reports write
    errors through ``syncfs`` since 5.8; older kernels say nothing, as ``sync`` does)."""
    if _SYNCFS is None:
        os.sync()
        return
    done: set[int] = set()
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            device = os.fstat(fd).st_dev
            if device in done:
                continue
            if _SYNCFS(fd) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno), str(folder))
            done.add(device)
        finally:
            os.close(fd)
