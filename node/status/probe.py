"""The home folder as the status sees it: free space, folders writable, files waiting.

Blocking I/O, done before the store is read; the snapshot carries the result as ``probe``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from lienthong.node.documents.metadata import SIDECAR_SUFFIX

#: Counting files waiting in outbox/ stops here (the number is shown as "N+").
OUTBOX_COUNT_CAP = 10_000
WRITABLE_FOLDERS = ("state", "spool", "tmp", "inbox", "sent", "failed", "outbox")


def probe_home(home: Path) -> dict[str, Any]:
    """Free space, writable folders and files waiting in outbox/ (blocking I/O)."""
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
    return {"disk": disk, "not_writable": not_writable,
            "outbox_waiting": _count_waiting(home / "outbox"),
            "failed_files": _count_files(home / "failed", skip_suffix=".reason.txt"),
            "standby": _standby(home / "state")}


def _standby(state: Path) -> list[dict[str, Any]]:
    """What the waiting members of an active/standby pair say (``state/standby-HOST.json``,
    written by node/app/standby.py): process, host, state, since."""
    found = []
    for path in sorted(state.glob("standby-*.json")) if state.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and not _gone(record):
            found.append({key: record.get(key) for key in ("pid", "host", "state", "since")})
    return found


def _gone(record: dict[str, Any]) -> bool:
    """A standby of this machine whose process has ended (killed while waiting): not shown.
    One on the other machine cannot be checked from here, and is shown with its time."""
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _visible(name: str) -> bool:
    return not name.startswith((".", "~$")) and not name.endswith((".part", ".tmp", "~"))


def _count_waiting(outbox: Path) -> int:
    """Documents waiting in ``outbox/<target>/`` and its hint folders (``hoa-toc/``...): files
    only, not the folders themselves nor the sidecars that travel with a document."""
    count = 0
    try:
        folders = [e.path for e in os.scandir(outbox) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    while folders:
        folder = folders.pop()
        hints = folder.count(os.sep) - str(outbox).count(os.sep) < 2
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not _visible(entry.name):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if hints:  # a hint folder inside a target folder
                            folders.append(entry.path)
                    elif not entry.name.endswith(SIDECAR_SUFFIX):
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
