"""The home folder as the status sees it: free space, folders writable, files waiting, and
what others on the machine could read (node/core/access.py).

Blocking I/O, done before the store is read; the snapshot carries the result as ``probe``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lienthong.node.core.access import AccessError, Wider, access_policy

#: Counting files waiting in outbox/ stops here (the number is shown as "N+").
OUTBOX_COUNT_CAP = 10_000
WRITABLE_FOLDERS = ("state", "spool", "tmp", "inbox", "sent", "failed", "outbox")


def probe_home(home: Path, clerks_group: str | None) -> dict[str, Any]:
    """Free space, writable folders, files waiting in outbox/, and what is wider than the
    access rule for ``[node] clerks_group`` (blocking I/O)."""
    disk: dict[str, int | str | None]
    try:
        usage = shutil.disk_usage(home)
        disk = {"free_bytes": usage.free, "total_bytes": usage.total}
    except OSError as exc:
        disk = {"free_bytes": None, "total_bytes": None, "error": exc.strerror}
    not_writable = [name for name in WRITABLE_FOLDERS
                    if not (home / name).is_dir() or not os.access(home / name, os.W_OK)]
    store_files = [p for p in (home / "state").glob("*.db") if not os.access(p, os.W_OK)] \
        if (home / "state").is_dir() else []
    not_writable += [str(p.relative_to(home)) for p in store_files]
    try:
        too_wide: list[dict[str, Any]] | None = too_wide_by_folder(
            home, access_policy(clerks_group).survey(home))
        access_problem = None
    except AccessError as exc:
        too_wide, access_problem = None, str(exc)
    return {"disk": disk, "not_writable": not_writable, "too_wide": too_wide,
            "access_problem": access_problem,
            "outbox_waiting": _count_waiting(home / "outbox"),
            "failed_files": _count_files(home / "failed", skip_suffix=".reason.txt")}


def too_wide_by_folder(home: Path, found: list[Wider]) -> list[dict[str, Any]]:
    """What ``survey`` found, one entry per folder of the home's first two levels
    (``inbox/hdnd``): that folder's own mode if it is too wide, and how many files or folders
    below it are. Deeper paths are counted, not named: a document's name (an edXML
    attachments folder is named after one) is the office's business, not the status page's."""
    folders: dict[Path, dict[str, Any]] = {}
    for wider in found:
        parts = wider.path.relative_to(home).parts
        shown = len(parts) <= 2 and wider.is_dir
        folder = wider.path if shown else home.joinpath(*parts[:min(len(parts) - 1, 2)])
        entry = folders.setdefault(folder, {
            "folder": str(folder.relative_to(home)) if folder != home else ".",
            "folder_mode": None, "files": 0, "file_modes": [], "allowed": None,
            "group": wider.group})
        if shown:
            entry["folder_mode"] = f"{wider.mode:04o}"
            entry["allowed_folder_mode"] = f"{wider.expected:04o}"
        else:
            entry["files"] += 1
            mode = f"{wider.mode:04o}"
            if mode not in entry["file_modes"]:
                entry["file_modes"].append(mode)
            entry["allowed"] = f"{wider.expected:04o}"
    out = []
    for folder, entry in folders.items():
        entry["fix"] = _fix(folder, entry)
        out.append(entry)
    return out


def _fix(folder: Path, entry: dict[str, Any]) -> str:
    """The command that narrows what ``entry`` found (as root, for another user's files)."""
    quoted = f"'{folder}'"
    group = entry["group"]
    if group is None:
        return f"chmod -R go-rwx {quoted}"
    if entry["folder"].split("/")[0] == "outbox":
        return f"chgrp {group} {quoted} && chmod 2770 {quoted}"
    return f"chgrp -R {group} {quoted} && chmod -R o-rwx,g-w {quoted}"


def _visible(name: str) -> bool:
    return not name.startswith((".", "~$")) and not name.endswith((".part", ".tmp", "~"))


def _count_waiting(outbox: Path) -> int:
    count = 0
    try:
        targets = [e for e in os.scandir(outbox) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    for target in targets:
        try:
            with os.scandir(target.path) as entries:
                for entry in entries:
                    if _visible(entry.name):
                        count += 1
                        if count >= OUTBOX_COUNT_CAP:
                            return count
        except OSError:
            continue
    return count


def _count_files(folder: Path, *, skip_suffix: str) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if _visible(e.name) and not e.name.endswith(skip_suffix))
    except OSError:
        return 0
