"""The restricted folder of citizens' petitions: who may read what is in it.

Folders are 2750 and files 0640, owned by the node's user and the petition staff's Unix group
(``[petitions] group``); nobody else reads anything (docs/petitions.md §5). Without a group,
only the node's user reads them (0700/0600). The modes are the access rule's
(``core/access.py``) for that group: one rule for every folder the node shares with a group of
people, the clerks' or the petition staff's.
"""
from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from lienthong.node.core.access import PRIVATE_FOLDER_MODE, AccessPolicy
from lienthong.node.core.errors import NodeError


class RestrictedFolderError(NodeError):
    """The petition staff's group does not exist, or the node may not give files to it."""

    code = "restricted-folder"


def petition_access(group: str) -> AccessPolicy:
    """The access rule for the petition staff's ``group`` ("" for none); raise
    RestrictedFolderError when it does not exist."""
    if not group:
        return AccessPolicy()
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise RestrictedFolderError(
            f"the petition staff's group {group!r} ([petitions] group) does not exist on this "
            f"machine; create it (groupadd {group}) and add the node's user to it") from None
    return AccessPolicy(group=group, gid=gid)


def restrict(path: Path, group: str) -> None:
    """Give ``path`` (a folder or a file) the petition modes and group; never follows a link."""
    access = petition_access(group)
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise RestrictedFolderError(f"{path} is a symbolic link, not a petition file")
    try:
        if path.is_dir():
            access.apply_folder(path)
        else:
            access.apply_file(path)
    except PermissionError:
        raise RestrictedFolderError(
            f"the node cannot give its petition files to the group {group!r}: add the "
            "node's user to that group and restart the node") from None


def restricted_folder(path: Path, group: str, *, below: Path) -> Path:
    """Make ``path`` and every folder between ``below`` and it, restricted; return it."""
    below.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER_MODE)
    restrict(below, group)
    current = below
    for part in path.relative_to(below).parts:
        current = current / part
        current.mkdir(exist_ok=True, mode=PRIVATE_FOLDER_MODE)
        restrict(current, group)
    return path
