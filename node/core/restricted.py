"""The restricted folder of citizens' petitions: who may read what is in it.

Folders are 0750 and files 0640, owned by the node's user and the petition staff's Unix group
(``[petitions] group``); nobody else reads anything (docs/petitions.md §5). Without a group,
only the node's user reads them (0700/0600).

:func:`restrict` is the ONE place that sets these modes and the group, so that the node-wide
file-permission policy can take it over in one change.
"""
from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from lienthong.node.core.errors import NodeError

FOLDER_MODE = 0o750
FILE_MODE = 0o640


class RestrictedFolderError(NodeError):
    """The petition staff's group does not exist, or the node may not give files to it."""

    code = "restricted-folder"


def group_id(group: str) -> int | None:
    """The Unix group ID of ``group`` (None without a group); raise RestrictedFolderError."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise RestrictedFolderError(
            f"the petition staff's group {group!r} ([petitions] group) does not exist on this "
            f"machine; create it (groupadd {group}) and add the node's user to it") from None


def restrict(path: Path, group: str) -> None:
    """Give ``path`` (a folder or a file) the petition modes and group; never follows a link."""
    gid = group_id(group)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise RestrictedFolderError(f"{path} is a symbolic link, not a petition file")
    folder = stat.S_ISDIR(st.st_mode)
    mode = FOLDER_MODE if folder else FILE_MODE
    if gid is None:
        mode &= 0o700
    elif st.st_gid != gid:
        try:
            os.chown(path, -1, gid, follow_symlinks=False)
        except PermissionError:
            raise RestrictedFolderError(
                f"the node cannot give its petition files to the group {group!r}: add the "
                "node's user to that group and restart the node") from None
    os.chmod(path, mode)  # checked above not to be a link (Linux has no lchmod)


def restricted_folder(path: Path, group: str, *, below: Path) -> Path:
    """Make ``path`` and every folder between ``below`` and it, restricted; return it."""
    below.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    restrict(below, group)
    current = below
    for part in path.relative_to(below).parts:
        current = current / part
        current.mkdir(exist_ok=True, mode=FOLDER_MODE)
        restrict(current, group)
    return path

