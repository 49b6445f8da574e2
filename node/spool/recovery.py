"""Crash recovery of the spool: what each ``spool/<message_id>/`` folder holds after a stop.

At start-up the outbox asks for every spool folder and is told, from the folder alone, whether
it is a complete take to seal and record (``TAKEN``), a take that never finished and can go
(``INCOMPLETE``), or something a human must look at (``DAMAGED``). Nothing here raises on a
folder's content: one bad folder must not stop the others from being delivered.

Versions from before the take wrote the metadata itself staged it as
``spool/.lienthong-meta-<id>.json`` first, and moved it into the spool folder as ``meta.json``
after the take. A staged file such a version left behind is adopted before its
document is sealed (``adopt_staged_meta``) or, its take never having happened, swept at
start-up (``sweep_staged``).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from lienthong.keys.errors import MalformedToken
from lienthong.keys.jws import canonical_json
from lienthong.node.core.home import fsync_dir
from lienthong.node.spool.record import (
    INTAKE_FILE,
    META_FILE,
    PAYLOAD_FILE,
    TakenFile,
    read_record,
    taken_from_record,
)

_STAGED_PREFIX = ".lienthong-meta-"


class SpoolState(Enum):
    TAKEN = "taken"  # intake.json and payload: taken, to be recorded/packaged
    INCOMPLETE = "incomplete"  # no payload: the take did not finish; the folder can go
    DAMAGED = "damaged"  # a payload without a usable record, or a mismatch: ask a human


@dataclass(frozen=True, slots=True)
class SpooledIntake:
    """What ``recover_spool`` found in one ``spool/<message_id>/`` folder."""

    message_id: str
    folder: Path
    state: SpoolState
    taken: TakenFile | None
    problem: str | None


def recover_spool(spool_dir: Path) -> list[SpooledIntake]:
    """Report every ``spool/<message_id>/`` folder, for crash recovery. Never raises on content."""
    with os.scandir(spool_dir) as entries:
        folders = sorted(entry.name for entry in entries
                         if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."))
    return [_inspect(spool_dir / message_id, message_id) for message_id in folders]


def _inspect(folder: Path, message_id: str) -> SpooledIntake:
    payload_mode = _lstat_mode(folder / PAYLOAD_FILE)
    has_payload = payload_mode is not None and stat.S_ISREG(payload_mode)
    lost = SpoolState.DAMAGED if has_payload else SpoolState.INCOMPLETE
    try:
        taken = taken_from_record(read_record(folder / INTAKE_FILE), folder)
        if taken.message_id != message_id:
            raise ValueError(f"it names message {taken.message_id!r}")
    except FileNotFoundError:
        return SpooledIntake(message_id, folder, lost, None, f"{INTAKE_FILE} is missing")
    except (OSError, ValueError, KeyError, TypeError, MalformedToken) as exc:
        return SpooledIntake(message_id, folder, lost, None, f"{INTAKE_FILE} is unusable: {exc}")
    if not has_payload:
        return SpooledIntake(message_id, folder, SpoolState.INCOMPLETE, taken,
                             "the document was never moved in")
    size = os.stat(folder / PAYLOAD_FILE, follow_symlinks=False).st_size
    if size != taken.size:
        return SpooledIntake(message_id, folder, SpoolState.DAMAGED, taken,
                             f"payload is {size} bytes, {INTAKE_FILE} says {taken.size}")
    return SpooledIntake(message_id, folder, SpoolState.TAKEN, taken, None)


def _lstat_mode(path: Path) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


# -- metadata staged by older versions ---------------------------------------------------

def staged_meta_path(spool_dir: Path, message_id: str) -> Path:
    return spool_dir / f"{_STAGED_PREFIX}{message_id}.json"


def write_staged_meta(spool_dir: Path, message_id: str, meta: dict[str, Any]) -> None:
    """Stage metadata as older versions did (the tests make such a spool with it)."""
    path = staged_meta_path(spool_dir, message_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(canonical_json(meta))
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(spool_dir)


def adopt_staged_meta(spool_dir: Path, message_id: str) -> None:
    """Move staged metadata into ``spool/<message_id>/meta.json`` (idempotent)."""
    staged = staged_meta_path(spool_dir, message_id)
    folder = spool_dir / message_id
    if not staged.exists() or not folder.is_dir():
        return
    if (folder / META_FILE).exists():
        staged.unlink()
    else:
        os.rename(staged, folder / META_FILE)
        fsync_dir(folder)
    fsync_dir(spool_dir)


def sweep_staged(spool_dir: Path) -> int:
    """At start-up (after recovery): remove staged metadata whose take never happened."""
    removed = 0
    for entry in spool_dir.glob(f"{_STAGED_PREFIX}*.json"):
        message_id = entry.name[len(_STAGED_PREFIX):-len(".json")]
        adopt_staged_meta(spool_dir, message_id)
        if entry.exists():
            entry.unlink()
            removed += 1
    return removed
