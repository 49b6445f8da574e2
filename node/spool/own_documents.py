"""Putting documents the node itself produces into the spool, as if a clerk had dropped them.

Processing statuses, recalls, key announcements and short messages travel the same signed,
encrypted, receipted path as documents, so they get queueing, retries, resume and receipts
for free. They are written straight into ``spool/<message_id>/`` with the same ``intake.json``
record a taken file gets (node/spool/record.py; so crash recovery treats them alike), whose
``meta`` holds the metadata that goes into the signed envelope header (``kind``, document
fields, ...).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lienthong.keys.jws import canonical_json
from lienthong.node.core.home import fsync_dir, write_synced
from lienthong.node.spool.record import (
    INTAKE_FILE,
    INTAKE_FORMAT,
    INTAKE_VERSION,
    PAYLOAD_FILE,
    TakenFile,
)


def spool_bytes(spool_dir: Path, *, message_id: str, name: str, data: bytes, target: str,
                meta: Mapping[str, Any], now: str) -> TakenFile:
    """Create ``spool/<message_id>/`` holding ``data`` as a taken document with ``meta``."""
    folder = spool_dir / message_id
    folder.mkdir(mode=0o700)
    write_synced(folder / PAYLOAD_FILE, data)
    stat = os.stat(folder / PAYLOAD_FILE)
    record = {"format": INTAKE_FORMAT, "version": INTAKE_VERSION, "message_id": message_id,
              "target": target, "original_name": name, "hint": None, "size": len(data),
              "mtime_ns": stat.st_mtime_ns, "taken_at": now, "meta": dict(meta),
              "stream_ends": None}
    write_synced(folder / INTAKE_FILE, canonical_json(record))
    fsync_dir(folder)
    fsync_dir(spool_dir)
    return TakenFile(message_id=message_id, original_name=name, spool_path=folder / PAYLOAD_FILE,
                     size=len(data), target=target, hint=None, mtime_ns=stat.st_mtime_ns,
                     taken_at=now)
