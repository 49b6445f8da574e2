"""Who on this machine may read what the node keeps: one rule for every folder and file.

What a clerk or a peer's content lands in (``inbox/``, ``sent/``, ``failed/``, ``recalled/``,
``logs/`` and everything the node makes inside them) is readable by the node's own user and,
when ``[node] clerks_group`` names a Unix group, by that group; by nobody else
(docs/operations.md §5):

==========================  ================  =========
                            with a group      without
==========================  ================  =========
clerks' folders, the home   2750 (setgid)     0700
clerks' files               0640              0600
``outbox/`` and below       2770 (setgid)     0700
keys/ spool/ tmp/ state/    0700              0700
==========================  ================  =========

Clerks drop files into ``outbox/`` and may make ``outbox/a+b/`` folders, so the group may
write there. The setgid bit makes whatever is created in a folder belong to the folder's
group, so a file made by any path lands in the group; the node still sets the group and mode
of what it makes itself, because a folder made before a group was configured lacks the bit.

A document taken from a clerk's outbox is the clerk's own inode: renamed into ``sent/`` or
``failed/`` it would keep the clerk's owner and mode, which only its owner may change.
``settle`` then replaces it by a copy the node owns (fsynced, renamed over the name), so
every file in the clerks' folders follows the rule, whoever wrote it first.

At every start the node gives what it owns there exactly the rule (``enforce``: an upgraded
node's older files, a group configured since); ``survey`` lists what is still wider, owned by
another user, for ``lienthong status`` to name with the command that fixes it.
"""
from __future__ import annotations

import functools
import grp
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lienthong.node.core.errors import NodeError

#: The node's own folders and files: nobody else, whatever the group.
PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
#: Folders of the home whose contents are the clerks' to read, and the outbox they write into.
CLERK_FOLDERS = ("inbox", "sent", "failed", "recalled", "consolidated", "logs")
DROP_FOLDERS = ("outbox",)
NODE_FOLDERS = ("keys", "spool", "tmp", "state")
#: Folders inside those that the node makes at start, 0700 like them: what is being received
#: is decrypted into tmp/staging/ (node/inbox/stream.py).
NODE_SUBFOLDERS = ("tmp/staging",)
#: Prefix of the temporary copy ``settle`` makes (core/names.py TEMP_PREFIX, never taken).
_COPY_PREFIX = ".lienthong-settle-"
_COPY_BLOCK = 1 << 20


class AccessError(NodeError):
    """The configured clerks' group cannot be used on this machine."""

    code = "clerks-group-unusable"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The modes and group of everything the node makes for its clerks (module docstring)."""

    group: str | None = None
    gid: int | None = None

    @property
    def folder_mode(self) -> int:
        return 0o2750 if self.gid is not None else PRIVATE_FOLDER_MODE

    @property
    def drop_folder_mode(self) -> int:
        return 0o2770 if self.gid is not None else PRIVATE_FOLDER_MODE

    @property
    def file_mode(self) -> int:
        return 0o640 if self.gid is not None else PRIVATE_FILE_MODE

    @property
    def umask(self) -> int:
        """The daemon's umask: the rule for a file made by a path that forgot it."""
        return 0o027 if self.gid is not None else 0o077

    def make_folder(self, path: Path, *, drop: bool = False) -> None:
        """Create ``path`` and its missing parents with the folder rule (``drop``: the
        outbox's); an existing folder is left as it is."""
        missing: list[Path] = []
        current = path
        while not current.exists():
            missing.append(current)
            current = current.parent
        for folder in reversed(missing):
            try:
                os.mkdir(folder, PRIVATE_FOLDER_MODE)
            except FileExistsError:
                continue  # made meanwhile by someone else: theirs to set
            self.apply_folder(folder, drop=drop)

    def apply_folder(self, folder: Path, *, drop: bool = False) -> None:
        """Give an existing folder the rule's group and mode (group first: chmod drops the
        setgid bit of a folder whose group the node is not in)."""
        if self.gid is not None:
            os.chown(folder, -1, self.gid)
        os.chmod(folder, self.drop_folder_mode if drop else self.folder_mode)

    def apply_file(self, path: Path) -> None:
        """Give an existing file the node owns the rule's group and mode, never through a
        link (O_NOFOLLOW: a link planted in its place raises OSError)."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            self.settle_fd(fd)
        finally:
            os.close(fd)

    def settle_fd(self, fd: int) -> None:
        """Give a file the node just created (open descriptor) the rule's group and mode."""
        if self.gid is not None:
            os.fchown(fd, -1, self.gid)
        os.fchmod(fd, self.file_mode)

    def create(self, path: Path, flags: int, *, dir_fd: int | None = None) -> int:
        """Open a file the node creates (``flags`` include ``O_CREAT``), with the rule."""
        fd = os.open(path, flags, PRIVATE_FILE_MODE, dir_fd=dir_fd)
        try:
            self.settle_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write_synced(self, path: Path, data: bytes, *, exclusive: bool = True) -> None:
        """Write a small file with the rule and fsync it; with ``exclusive``, refuse to replace
        one that exists (FileExistsError). The caller fsyncs the folder."""
        self.write_file(path, data, exclusive=exclusive, sync=True)

    def write_file(self, path: Path, data: bytes, *, exclusive: bool = False,
                   sync: bool = False) -> None:
        """Write a small file with the rule (``sync``: and fsync its contents)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
        with os.fdopen(self.create(path, flags), "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())

    def write_replacing(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` whole or not at all, with the rule: a temporary name in
        the same folder, fsynced, then renamed over ``path`` (a reader sees the old file or
        the new one, never half of one)."""
        tmp = path.with_name(f".lienthong-{os.getpid()}-{path.name[:40]}.part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        with os.fdopen(self.create(tmp, flags), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def settle(self, path: Path, *, refused: bool = False) -> None:
        """Give a file the node placed in a clerks' folder (by link or rename) the rule. A file
        another user owns (a clerk's, renamed from the outbox) is replaced by the node's own
        copy of it, so neither its owner's mode nor its owner stays. Anything but a regular
        file (a refused symbolic link or FIFO) is left as it is: its folder keeps it private.
        ``refused``: an entry refused from the outbox as it was, which may be too large to copy
        or have other names (hard links) whose mode is not the node's to change; only the
        node's own single-named file is given the rule."""
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return
        if refused and (info.st_uid != os.geteuid() or info.st_nlink != 1):
            return
        if info.st_uid == os.geteuid():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except PermissionError:
                # Our own file that we may not read (mode 000, refused as unreadable): set the
                # rule by name. lstat said it is no link, and the folder is the node's alone.
                if self.gid is not None:
                    os.chown(path, -1, self.gid, follow_symlinks=False)
                os.chmod(path, self.file_mode)
                return
            try:
                self.settle_fd(fd)
            finally:
                os.close(fd)
            return
        copy = path.with_name(f"{_COPY_PREFIX}{path.name}"[:255])
        reading = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(reading, "rb") as source, os.fdopen(self.create(
                copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW),
                "wb") as out:
            while block := source.read(_COPY_BLOCK):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(copy, path)

    def survey(self, home: Path) -> list[Wider]:
        """Every folder and file under ``home`` the rule covers that others can read more of:
        the home, the clerks' folders and all inside them, the outbox's folders, and the
        node's own folders (not their contents: a 0700 folder keeps them private)."""
        return [found for found in (self._wider(path, info, expected) for path, info, expected
                                    in self._covered(home)) if found is not None]

    def enforce(self, home: Path) -> tuple[int, list[Wider]]:
        """Give every path ``survey`` covers exactly the rule's mode and group (start-up);
        returns how many were changed and what is still wider than the rule because another
        user owns it (only its owner or root can change it)."""
        changed, left = 0, []
        me = os.geteuid()
        for path, info, expected in self._covered(home):
            group_right = self.gid is None or info.st_gid == self.gid
            if stat.S_IMODE(info.st_mode) == expected and group_right:
                continue
            if info.st_uid != me:
                found = self._wider(path, info, expected)
                if found is not None:
                    left.append(found)
                continue
            try:
                if self.gid is not None and not group_right:
                    os.chown(path, -1, self.gid, follow_symlinks=False)
                os.chmod(path, expected)
            except FileNotFoundError:
                continue
            changed += 1
        return changed, left

    def _covered(self, home: Path) -> Iterator[tuple[str, os.stat_result, int]]:
        """The paths ``survey`` checks, with their lstat (links are not followed) and the mode
        the rule gives them; as text, because a home may hold a hundred thousand files."""
        yield str(home), os.lstat(home), self.folder_mode
        for name in (*NODE_FOLDERS, *NODE_SUBFOLDERS):
            path = home / name
            if path.is_dir():
                yield str(path), os.lstat(path), PRIVATE_FOLDER_MODE
        for name in CLERK_FOLDERS:
            yield from _tree(str(home / name), self.folder_mode, self.file_mode)
        for name in DROP_FOLDERS:
            yield from _tree(str(home / name), self.drop_folder_mode, None)

    def _wider(self, path: str, info: os.stat_result, expected: int) -> Wider | None:
        mode = stat.S_IMODE(info.st_mode)
        group_wrong = bool(mode & 0o070) and self.gid is not None and info.st_gid != self.gid
        if not (mode & 0o777 & ~expected) and not group_wrong:
            return None
        return Wider(path=Path(path), mode=mode, expected=expected,
                     is_dir=stat.S_ISDIR(info.st_mode), group_wrong=group_wrong,
                     group=self.group)


@dataclass(frozen=True, slots=True)
class Wider:
    """A folder or file others can read more of than the rule allows."""

    path: Path
    mode: int
    expected: int
    is_dir: bool
    group_wrong: bool
    group: str | None

    @property
    def fix(self) -> str:
        """The command that narrows it (as root when another user owns it)."""
        chmod = f"chmod {self.mode & self.expected:04o} '{self.path}'"
        return f"chgrp {self.group} '{self.path}' && {chmod}" if self.group_wrong else chmod


def _tree(top: str, folder_mode: int,
          file_mode: int | None) -> Iterator[tuple[str, os.stat_result, int]]:
    """``top`` and every folder below it (and file, unless ``file_mode`` is None)."""
    try:
        info = os.lstat(top)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        return
    yield top, info, folder_mode
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _tree(entry.path, folder_mode, file_mode)
            elif file_mode is not None and entry.is_file(follow_symlinks=False):
                yield entry.path, entry.stat(follow_symlinks=False), file_mode
        except FileNotFoundError:
            continue  # removed while we looked


@functools.cache
def access_policy(group: str | None) -> AccessPolicy:
    """The policy for ``[node] clerks_group`` (None: the node's user only). AccessError when
    the group does not exist, or this user is not in it (the node could not give it files)."""
    if group is None:
        return AccessPolicy()
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise AccessError(f"The clerks' group {group!r} ([node] clerks_group) does not exist "
                          f"on this machine: create it with 'groupadd {group}', or remove the "
                          "setting.") from None
    if os.geteuid() != 0 and gid not in (os.getegid(), *os.getgroups()):
        raise AccessError(f"This user is not a member of the clerks' group {group!r} ([node] "
                          f"clerks_group), so the node cannot give it the files: add it with "
                          f"'usermod -aG {group} <node user>' and start the node again.")
    return AccessPolicy(group=group, gid=gid)
