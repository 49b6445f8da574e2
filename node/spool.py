"""Putting bytes the node itself produces into the spool, as if a clerk had dropped them.

Processing statuses, recalls, key announcements and short messages travel the same signed,
encrypted, receipted path as documents, so they get queueing, retries, resume and receipts
for free. They are written straight into ``spool/<message_id>/`` with the same ``intake.json``
record a taken file gets (so crash recovery treats them alike) and a ``meta.json`` holding the
metadata that goes into the signed envelope header (``kind``, document fields, ...).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keys.jws import canonical_json, strict_json_object
from node.home import fsync_dir
from node.intake import INTAKE_FILE, INTAKE_FORMAT, INTAKE_VERSION, PAYLOAD_FILE, TakenFile

META_FILE = "meta.json"


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    """Record the envelope metadata of a spooled document (before it is sealed)."""
    _write(folder / META_FILE, canonical_json(dict(meta)))
    fsync_dir(folder)


def read_meta(folder: Path) -> dict[str, Any]:
    """The metadata recorded for a spooled document, or {} when there is none."""
    try:
        return strict_json_object((folder / META_FILE).read_bytes())
    except FileNotFoundError:
        return {}


def spool_bytes(spool_dir: Path, *, message_id: str, name: str, data: bytes, target: str,
                meta: Mapping[str, Any], now: str) -> TakenFile:
    """Create ``spool/<message_id>/`` holding ``data`` as a taken document with ``meta``."""
    folder = spool_dir / message_id
    folder.mkdir(mode=0o700)
    _write(folder / META_FILE, canonical_json(dict(meta)))
    _write(folder / PAYLOAD_FILE, data)
    stat = os.stat(folder / PAYLOAD_FILE)
    record = {"format": INTAKE_FORMAT, "version": INTAKE_VERSION, "message_id": message_id,
              "target": target, "original_name": name, "hint": None, "size": len(data),
              "mtime_ns": stat.st_mtime_ns, "taken_at": now}
    _write(folder / INTAKE_FILE, canonical_json(record))
    fsync_dir(folder)
    fsync_dir(spool_dir)
    return TakenFile(message_id=message_id, original_name=name, spool_path=folder / PAYLOAD_FILE,
                     size=len(data), target=target, hint=None, mtime_ns=stat.st_mtime_ns,
                     taken_at=now)


def pretty(meta: Mapping[str, Any]) -> str:
    return json.dumps(dict(meta), ensure_ascii=False, indent=2, sort_keys=True)
