"""The home folder as the status sees it: free space, folders writable, files waiting, and
what others on the machine could read (node/core/access.py).

Blocking I/O, done before the store is read; the snapshot carries the result as ``probe``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lienthong.node.core.access import AccessError, Wider, access_policy
from lienthong.node.documents.metadata import SIDECAR_SUFFIX
from lienthong.node.language.text import Phrase, from_error

#: Counting files waiting in outbox/ stops here (the number is shown as "N+").
OUTBOX_COUNT_CAP = 10_000
WRITABLE_FOLDERS = ("state", "spool", "tmp", "inbox", "sent", "failed", "outbox")
#: Seconds the daemon's status API reuses one survey of the access rule: it reads the mode of
#: every file in the clerks' folders (about a second for 90,000 files), which a Prometheus
#: scrape every 15 s should not repeat.
SURVEY_SECONDS = 300.0


#: Why the clerks' group cannot be used: ``Phrase.as_json`` (shown in the reader's language) or
#: an English sentence.
Problem = dict[str, Any] | str


def _as_json(problem: Phrase | str) -> Problem:
    return problem.as_json() if isinstance(problem, Phrase) else problem


class AccessSurvey:
    """What is wider than the access rule, surveyed at most every ``max_age`` seconds (one
    per status API; the CLI surveys once per run). Called on the status thread only."""

    def __init__(self, home: Path, clerks_group: str | None, *,
                 clock: Callable[[], float] = time.monotonic,
                 max_age: float = SURVEY_SECONDS) -> None:
        self.home, self.clerks_group = home, clerks_group
        self._clock, self._max_age = clock, max_age
        self._last: tuple[float, list[dict[str, Any]] | None, Problem | None] | None = None

    def current(self) -> tuple[list[dict[str, Any]] | None, Problem | None]:
        """(what is too wide, by folder; or None and why the group cannot be used, as a
        phrase carried in JSON when the error has one)."""
        now = self._clock()
        if self._last is None or not 0 <= now - self._last[0] < self._max_age:
            try:
                found = access_policy(self.clerks_group).survey(self.home)
                self._last = (now, too_wide_by_folder(self.home, found), None)
            except AccessError as exc:
                self._last = (now, None, _as_json(from_error(exc)))
        return self._last[1], self._last[2]


def probe_home(home: Path, clerks_group: str | None,
               survey: AccessSurvey | None = None) -> dict[str, Any]:
    """Free space, writable folders, files waiting in outbox/, and what is wider than the
    access rule for ``[node] clerks_group`` (``survey``: a kept one; blocking I/O)."""
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
    too_wide, access_problem = (survey or AccessSurvey(home, clerks_group)).current()
    return {"disk": disk, "not_writable": not_writable, "too_wide": too_wide,
            "access_problem": access_problem,
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
