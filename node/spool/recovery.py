"""Crash recovery of the spool: what each ``spool/<message_id>/`` folder holds after a stop.

At start-up the outbox asks for every spool folder and is told, from the folder alone, whether
it is a complete take to seal and record (``TAKEN``), a take that never finished and can go
(``INCOMPLETE``), or something a human must look at (``DAMAGED``). Nothing here raises on a
folder's content: one bad folder must not stop the others from being delivered.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from lienthong.keys.errors import MalformedToken
from lienthong.node.spool.record import (
    INTAKE_FILE,
    PAYLOAD_FILE,
    TakenFile,
    read_record,
    taken_from_record,
)


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
