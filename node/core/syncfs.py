"""Make everything written on one file system durable in one call (Linux ``syncfs(2)``).

Why: files written in a burst need not each be fsynced on its own; one flush of their file
system, for many, makes them durable together. The inbox's sidecars are flushed so, late, and
only then is their record of being due dropped; a publication batch's staging files and inbox
links so, before their receipts are signed (node/inbox/publication.py).
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


class Flusher:
    """One kind of flush, with its own descriptors kept open per file system (by device).

    A descriptor is opened before the first write a flush must cover: Linux reports through
    ``syncfs`` only the write errors since the descriptor was opened or last reported them,
    once per descriptor, so one opened at flush time would miss a writeback that failed
    before it, and one shared by two kinds of flush would report an error to whichever
    flushed first. Each kind runs one flush at a time (its caller's loop)."""

    def __init__(self) -> None:
        self._kept: dict[int, int] = {}
        self._lock = threading.Lock()

    def watch(self, folder: Path) -> None:
        """Call before writing in ``folder`` what a later ``sync`` must cover."""
        self._kept_descriptor(folder)

    def _kept_descriptor(self, folder: Path) -> int:
        device = os.stat(folder).st_dev
        with self._lock:
            fd = self._kept.get(device)
            if fd is None:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self._kept[device] = fd
            return fd

    def sync(self, folders: Iterable[Path]) -> None:
        """Flush the file system of each of ``folders`` once (one call per file system; a
        folder gone since is skipped). Raises OSError if a folder cannot be reached or the
        flush reports a write error since this flusher's ``watch`` of its file system (Linux
        5.8 and later; older kernels say nothing, as ``sync`` does)."""
        if _SYNCFS is None:
            os.sync()
            return
        done: set[int] = set()
        for folder in folders:
            try:
                fd = self._kept_descriptor(folder)
            except FileNotFoundError:
                continue    # gone since: nothing written there is left to flush
            if fd in done:
                continue
            if _SYNCFS(fd) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno), str(folder))
            done.add(fd)


#: The inbox's sidecars (node/inbox/publication.py ``place_sidecar_batch``).
SIDECARS = Flusher()
#: A publication batch's staging files and inbox links (``publish_batch``): its own
#: descriptors, so a staging file's failed writeback is reported to it even when the
#: sidecars' flush saw it first.
PUBLICATIONS = Flusher()

