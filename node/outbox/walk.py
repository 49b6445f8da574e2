"""Reaching a file under the outbox without following links, and refusing it into failed/.

Split out of node/outbox/intake.py (which takes files into the spool) because three modules
walk the outbox the same careful way: the take, the sidecar reader (node/outbox/sidecars.py)
and the refusal (:func:`refuse_file`). The walk opens each folder between ``outbox`` and the
entry with ``O_NOFOLLOW`` relative to the one before, so a symbolic link swapped in anywhere
on the way is refused, never followed into the node's own files.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.names import MAX_NAME_BYTES, clash_key, safe_file_name, unique_name
from lienthong.node.language.catalog import DEFAULT_LANGUAGE
from lienthong.node.language.names import show_time
from lienthong.node.language.text import Phrase
from lienthong.node.language.text import shown as shown_in
from lienthong.node.outbox.refusals import Refused, display, refused_for

REASON_SUFFIX = ".reason.txt"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def refuse_file(path: Path, *, outbox: Path, failed_dir: Path, reason: str | Phrase, code: str,
                now: str, access: AccessPolicy,
                companion: Callable[[str], object] | None = None,
                language: str = DEFAULT_LANGUAGE) -> Path:
    """Move the entry at ``path`` itself into ``failed_dir`` and explain why beside it.

    The entry is renamed, never opened or followed: a symlink arrives as a symlink, a FIFO
    as a FIFO, one name of a hard-linked file as that name. The folders between ``outbox``
    and the entry are reached without following links (a swapped-in link must not make us
    move the node's own files). If the entry cannot be moved, only the reason file is
    written. Returns the path of the ``<name>.reason.txt`` file, which has the access rule
    (node/core/access.py); the entry keeps what the clerk gave it, inside the rule's folder.

    ``companion(kept_name)`` runs after the move and before the reason file is written, so
    whatever travels with the file (its sidecar) is already beside it when the reason file --
    the clerk's and the tests' sign that the refusal is complete -- appears.

    The reason file is written in ``language`` (the node's ``language``, Vietnamese by
    default); the code stays as it is, so a clerk can quote it to the IT officer.
    """
    parts = parts_under(outbox, path)
    failed_fd = os.open(failed_dir, DIR_FLAGS)
    try:
        present = {clash_key(entry) for entry in os.listdir(failed_fd)}
        room = MAX_NAME_BYTES - len(REASON_SUFFIX)
        keep_as = unique_name(
            lambda candidate: clash_key(candidate) in present
            or clash_key(candidate + REASON_SUFFIX) in present,
            safe_file_name(parts[-1], max_bytes=room), max_bytes=room,
        )
        problem = None
        try:
            parent_fd = open_parent(outbox, parts)
            try:
                os.rename(parts[-1], keep_as, src_dir_fd=parent_fd, dst_dir_fd=failed_fd)
                os.fsync(parent_fd)
            finally:
                os.close(parent_fd)
        except (OSError, Refused) as exc:
            problem = exc.reason_text.in_language(language) if isinstance(exc, Refused) else (
                exc.strerror or str(exc))
        if problem is None:
            access.settle(failed_dir / keep_as, refused=True)
        shown = display("/".join(("outbox",) + parts))
        where = (Phrase("Kept as: {name} (in this folder)", name=display(keep_as))
                 if problem is None else
                 Phrase("Left where it is, because lienthong could not move it: {problem}",
                        problem=problem))
        text = Phrase("lienthong did not send this file.\n\nFile:    {file}\n{where}\n"
                      "When:    {time}\nWhy:     {reason}\nCode:    {code}\n", file=shown,
                      where=where, time=when_text(now, language),
                      reason=display(shown_in(reason, language)),
                      code=display(code)).in_language(language)
        if companion is not None:
            companion(keep_as)
        reason_name = keep_as + REASON_SUFFIX
        _write_reason(failed_fd, reason_name, text.encode("utf-8"), access)
        os.fsync(failed_fd)
    finally:
        os.close(failed_fd)
    return failed_dir / reason_name


def when_text(now: str, language: str) -> str:
    """The time of a refusal as offices write it (dd/mm/yyyy HH:MM, local time) with the exact
    RFC 3339 stamp the audit log carries, so the two can be matched."""
    return f"{show_time(now, language)} ({now})"


def parts_under(outbox: Path, path: Path) -> tuple[str, ...]:
    """Components of ``path`` below ``outbox``, lexically (symlinks are handled by the walk)."""
    relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(outbox))
    if not relative.parts:
        raise ValueError(f"{path} is the outbox itself")
    return relative.parts


def open_parent(outbox: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of the folder holding ``parts[-1]``, reached without following links."""
    fd = os.open(outbox, DIR_FLAGS)
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            try:
                child = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                here = outbox.joinpath(*parts[:depth])
                mode = lstat_mode(part, fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and mode and stat.S_ISLNK(mode):
                    raise Refused("symlink-folder", here) from exc
                raise refused_for(exc, here) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_mode(name: str | Path, dir_fd: int | None = None) -> int | None:
    """The entry's mode without following a link, or None if there is no such entry."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_reason(dir_fd: int, name: str, data: bytes, access: AccessPolicy) -> None:
    fd = access.create(Path(name), NEW_FILE_FLAGS, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    fd = os.open(name, NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
