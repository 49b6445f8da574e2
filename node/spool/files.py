"""Putting bytes the node itself produces into the spool, as if a clerk had dropped them.

Processing statuses, recalls, key announcements and short messages travel the same signed,
encrypted, receipted path as documents, so they get queueing, retries, resume and receipts
for free. They are written straight into ``spool/<message_id>/`` with the same ``intake.json``
record a taken file gets (so crash recovery treats them alike), whose ``meta`` holds the
metadata that goes into the signed envelope header (``kind``, document fields, ...).

Spool folders written before intake version 2 keep that metadata in a separate ``meta.json``;
``read_meta`` and ``recover_spool`` still read them, so a folder an older version left behind
is still sealed and delivered after an upgrade.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from lienthong.keys.errors import MalformedToken
from lienthong.keys.jws import canonical_json, strict_json_object
from lienthong.node.core.home import fsync_dir, write_synced
from lienthong.node.outbox.intake import (
    INTAKE_FILE,
    INTAKE_FORMAT,
    INTAKE_VERSION,
    INTAKE_VERSIONS,
    META_FILE,
    PAYLOAD_FILE,
    TakenFile,
    taken_from_record,
)

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_meta(folder: Path) -> dict[str, Any]:
    """The metadata recorded for a spooled document, or {} when there is none: the ``meta`` of
    its ``intake.json``, or (folders of intake version 1) its ``meta.json``."""
    try:
        return strict_json_object((folder / META_FILE).read_bytes())
    except FileNotFoundError:
        pass
    try:
        meta = _read_record(folder / INTAKE_FILE).get("meta")
    except FileNotFoundError:
        return {}
    return dict(meta) if meta else {}


def spool_bytes(spool_dir: Path, *, message_id: str, name: str, data: bytes, target: str,
                meta: Mapping[str, Any], now: str) -> TakenFile:
    """Create ``spool/<message_id>/`` holding ``data`` as a taken document with ``meta``."""
    folder = spool_dir / message_id
    folder.mkdir(mode=0o700)
    write_synced(folder / PAYLOAD_FILE, data)
    stat = os.stat(folder / PAYLOAD_FILE)
    record = {"format": INTAKE_FORMAT, "version": INTAKE_VERSION, "message_id": message_id,
              "target": target, "original_name": name, "hint": None, "size": len(data),
              "mtime_ns": stat.st_mtime_ns, "taken_at": now, "meta": dict(meta)}
    write_synced(folder / INTAKE_FILE, canonical_json(record))
    fsync_dir(folder)
    fsync_dir(spool_dir)
    return TakenFile(message_id=message_id, original_name=name, spool_path=folder / PAYLOAD_FILE,
                     size=len(data), target=target, hint=None, mtime_ns=stat.st_mtime_ns,
                     taken_at=now)


# -- crash recovery ------------------------------------------------------------------------

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
        taken = taken_from_record(_read_record(folder / INTAKE_FILE), folder)
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


def _read_record(path: Path) -> dict[str, Any]:
    fd = os.open(path, _FILE_FLAGS)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(1 << 20)
    record = strict_json_object(data)
    version = record.get("version")
    if record.get("format") != INTAKE_FORMAT or (type(version) is not int
                                                 or version not in INTAKE_VERSIONS):
        raise ValueError("unknown format or version")
    expected = {"format", "version", "message_id", "target", "original_name", "hint", "size",
                "mtime_ns", "taken_at"} | ({"meta"} if version >= 2 else set())
    if set(record) != expected:
        raise ValueError(f"fields {sorted(set(record) ^ expected)} are wrong")
    if record.get("meta") is not None and not isinstance(record["meta"], dict):
        raise ValueError("meta is not an object")
    return record


def _lstat_mode(path: Path) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
