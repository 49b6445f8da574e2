"""Spool folders made ahead of the take, so that a lone document's take allocates no inode.

Why: on the node's disk an ``mkdir`` and the creation of a new file each cost about 0.8-1 ms
of kernel time (inode allocation on ext4; a rename or a write into an existing file costs a
few microseconds). A lone document's take made both -- its ``spool/<message_id>/`` folder
and the ``intake.json`` in it -- on the way from drop to offer (docs/benchmarks.md,
History 56). A few folders, each holding an empty ``intake.json``, are made in the
background while nothing is being taken; a take renames one to its message ID and writes
its record into the file already there (node/outbox/intake.py ``_make_folders``).

Crash argument (docs/design.md §6). A ready folder is named ``.lienthong-ready-<random>``:
``recover_spool`` skips every dot-name, so one left by a crash is never mistaken for a take,
and it is removed at the next refill (``make``). Once renamed to a message ID it is exactly
what ``mkdir`` plus an empty record would be: a folder without a payload (its record empty
or written and fsynced), which recovery reports ``INCOMPLETE`` and removes -- the file is
still in the outbox, because it moves in only after the record is fsynced, as before. Nothing
about a ready folder needs to be durable: if a crash loses one, nothing refers to it.

Recycled folders. A filed document's spool folder, emptied, is renamed to a ready name
(``recycle``, from node/outbox/sent.py) instead of removed, and a later take of a batch renames
it to its message ID instead of making a folder (``take_empty``): one ``mkdir`` and one
``rmdir`` fewer per document. On this file system (ext4 without a journal) freeing inodes is
what made allocating them dear: each allocation skips the inodes freed in the last half
minute, so a burst that removed a folder per document paid more for every later ``mkdir``
and sent/ file (docs/benchmarks.md, History 61). A recycled folder holds nothing (no
record): only the takes that hard-link the batch's record use one, never the first take,
which writes into a ready folder's empty record. The crash argument is the one above: until
it is renamed to a message ID it is a dot-name that ``recover_spool`` skips and the next
start's sweep removes; renamed, it is what ``mkdir`` makes, an empty folder, until the
batch's record is linked into it. Recycling starts only once the start's sweep is over, so
the sweep never removes a folder a take was handed.

``take``, ``take_empty``, ``recycle`` and ``make`` are called on worker threads (a deque's
append and popleft are atomic; the length bound may be passed by a folder or two).
"""
from __future__ import annotations

import os
import secrets
import stat
from collections import deque
from pathlib import Path

from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.names import TEMP_PREFIX
from lienthong.node.spool.record import INTAKE_FILE

#: Name of a ready folder in ``spool/`` (a dot-name: never a take to ``recover_spool``).
READY_PREFIX = TEMP_PREFIX + "ready-"
#: Folders kept ready: one for a lone document, one for the next while the first refills.
KEEP = 2
#: Most recycled (empty) folders kept: about a burst's takes running ahead of its filing.
RECYCLE_KEEP = 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RECORD_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class ReadyFolders:
    """Ready spool folders of one ``spool/``: ``take`` one for a take, ``make`` more."""

    def __init__(self, spool_dir: Path, *, keep: int = KEEP,
                 recycle_keep: int = RECYCLE_KEEP) -> None:
        self.spool_dir = spool_dir
        self.keep = keep
        self.recycle_keep = recycle_keep
        self._names: deque[str] = deque()
        #: Recycled folders: empty, no record (module docstring).
        self._empty: deque[str] = deque()
        self._sweeping = False
        self._swept = False

    def __len__(self) -> int:
        return len(self._names)

    def take(self) -> str | None:
        """The name (in ``spool/``) of a ready folder now the caller's, or None."""
        try:
            return self._names.popleft()
        except IndexError:
            return None

    def make(self) -> None:
        """Make folders until ``keep`` are ready (blocking); the first call also removes the
        ready folders a previous run left (module docstring)."""
        spool_fd = os.open(self.spool_dir, _DIR_FLAGS)
        try:
            if not self._sweeping:
                self._sweeping = True
                _sweep(spool_fd)
                self._swept = True
            while len(self._names) < self.keep:
                name = READY_PREFIX + secrets.token_hex(8)
                os.mkdir(name, 0o700, dir_fd=spool_fd)
                folder_fd = os.open(name, _DIR_FLAGS, dir_fd=spool_fd)
                try:
                    os.close(os.open(INTAKE_FILE, _RECORD_FLAGS | os.O_CREAT | os.O_EXCL,
                                     0o600, dir_fd=folder_fd))
                finally:
                    os.close(folder_fd)
                self._names.append(name)
        finally:
            os.close(spool_fd)


    def take_empty(self) -> str | None:
        """The name (in ``spool/``) of a recycled, empty folder now the caller's, or None."""
        try:
            return self._empty.popleft()
        except IndexError:
            return None

    def recycle(self, folder: Path) -> bool:
        """Rename ``folder`` (a filed document's spool folder, already emptied by the caller)
        to a ready name for a later take; False (nothing done) when enough are kept or the
        start's sweep is not over: the caller removes it."""
        if not self._swept or len(self._empty) >= self.recycle_keep:
            return False
        name = READY_PREFIX + secrets.token_hex(8)
        os.rename(folder, self.spool_dir / name)
        # The document's folder is a ready one now, nothing refers to it: swept if we stop.
        failpoint("sender-after-spool-folder-recycled")
        self._empty.append(name)
        return True


def open_empty_record(folder_fd: int) -> int:
    """The ready folder's empty ``intake.json``, open for writing; OSError if it is anything
    else (then the take fails as a failed ``mkdir`` would)."""
    fd = os.open(INTAKE_FILE, _RECORD_FLAGS, dir_fd=folder_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size or st.st_nlink != 1:
        os.close(fd)
        raise OSError(f"the ready folder's {INTAKE_FILE} is not an empty file of its own")
    return fd


def _sweep(spool_fd: int) -> None:
    """Remove ready folders left by an earlier run (each holds at most an empty record)."""
    for name in os.listdir(spool_fd):
        if not name.startswith(READY_PREFIX) or not stat.S_ISDIR(
                os.stat(name, dir_fd=spool_fd, follow_symlinks=False).st_mode):
            continue
        try:
            os.unlink(f"{name}/{INTAKE_FILE}", dir_fd=spool_fd)
        except FileNotFoundError:
            pass
        os.rmdir(name, dir_fd=spool_fd)
