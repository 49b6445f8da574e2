"""The node's home folder: what lives where, and creating it.

Layout (docs/design.md §5, docs/operations.md §5)::

    lienthong.toml        configuration
    keys/                 keystore (0600) and optional passphrase file, folder 0700
    <name>.card           this node's peer card, to give to other offices
    outbox/<peer|group>/  drop files here to send them
    inbox/<sender>/       delivered documents with their metadata and receipt
    sent/<peer|group>/    what was sent, with the receipts that came back
    failed/               what could not be sent, each with a .reason.txt
    recalled/<sender>/    documents their sender recalled, with the recall
    consolidated/<period>/  drafts consolidated from the offices' programmes
    spool/                documents taken from the outbox, sealed, awaiting receipts (0700)
    tmp/                  partial transfers and files being verified (0700)
    state/                the SQLite store (0700)
    logs/                 structured logs

Who may read each is node/core/access.py's rule (docs/operations.md §5).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from lienthong.node.core.access import (
    CLERK_FOLDERS,
    DROP_FOLDERS,
    NODE_FOLDERS,
    NODE_SUBFOLDERS,
    PRIVATE_FOLDER_MODE,
    AccessPolicy,
)

PUBLIC_FOLDERS = tuple(name for name in (*DROP_FOLDERS, *CLERK_FOLDERS)
                       if name not in ("recalled", "consolidated"))
PRIVATE_FOLDERS = NODE_FOLDERS


def make_folders(home: Path, access: AccessPolicy) -> None:
    """Create every folder of a home and give each, and the home, the rule of ``access``
    (private ones 0700 whatever the umask). ``recalled/`` and ``consolidated/`` are made
    when first needed."""
    access.make_folder(home)
    if home.stat().st_uid == os.geteuid():  # a home another user made is theirs to set
        access.apply_folder(home)
    for name in PUBLIC_FOLDERS:
        access.make_folder(home / name, drop=name in DROP_FOLDERS)
        access.apply_folder(home / name, drop=name in DROP_FOLDERS)
    for name in (*PRIVATE_FOLDERS, *NODE_SUBFOLDERS):
        path = home / name
        path.mkdir(exist_ok=True)
        os.chmod(path, PRIVATE_FOLDER_MODE)


def write_synced(path: Path, data: bytes, *, exclusive: bool = True, mode: int = 0o600) -> None:
    """Write a small file (private, 0600, unless ``mode`` says otherwise; the umask applies)
    and fsync it before returning; with ``exclusive``, refuse to replace one that exists
    (FileExistsError)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to a new 0600 file (temp name, fsync, rename, fsync folder)."""
    write_private_stream(path, lambda handle: handle.write(data))


def write_private_stream(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Like ``write_private_file``, for content ``write`` streams into the open file (a backup
    of many GiB is never held in memory)."""
    tmp = path.with_name(f".lienthong-{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=True) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_public_file(path: Path, data: bytes) -> None:
    """Like ``write_private_file`` but readable by anyone (0644): the configuration and the
    peer card, which hold nothing secret; never a document or its sidecars."""
    write_private_file(path, data)
    os.chmod(path, 0o644)


@contextmanager
def removed_on_failure(home: Path) -> Iterator[None]:
    """Undo a half-made home: a folder this call created is removed, an empty folder it was
    given is emptied again, so a failed ``init`` or ``restore`` leaves nothing behind. A
    folder that held anything is never touched (the callers refuse such a home first)."""
    existed = home.exists()
    if existed and any(home.iterdir()):
        yield
        return
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(home, ignore_errors=True)
        elif home.is_dir():
            for child in list(home.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
