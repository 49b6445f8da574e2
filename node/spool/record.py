"""The ``intake.json`` record of a spool folder: its file names, format and versions, and
reading it back.

Every ``spool/<message_id>/`` folder holds a ``payload`` and an ``intake.json`` saying what it
is (who it goes to, its original name, size, when it was taken) and, since version 2, the
envelope metadata (``meta``). The outbox writes it when it takes a clerk's file
(node/outbox/intake.py), the node when it spools a document of its own
(node/spool/own_documents.py); crash recovery and sealing read it back. The format lives here,
below both, so the spool never has to import the outbox to read its own folders.

Spool folders written before intake version 2 keep the metadata in a separate ``meta.json``;
:func:`read_meta` still reads it, so a folder an older version left behind is still sealed and
delivered after an upgrade.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.keys.jws import strict_json_object

INTAKE_FILE = "intake.json"
META_FILE = "meta.json"
PAYLOAD_FILE = "payload"
INTAKE_FORMAT = "lienthong-intake"
INTAKE_VERSION = 2
#: Versions ``recover_spool`` reads: version 1 has no ``meta`` (it is in ``meta.json``).
INTAKE_VERSIONS = (1, 2)

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class TakenFile:
    """A document moved into ``spool/<message_id>/payload``; nothing has been sent yet."""

    message_id: str
    original_name: str  # NFC
    spool_path: Path
    size: int
    target: str  # NFC; the peer or group folder under outbox/
    hint: str | None  # NFC name of the first subfolder under the target (document type)
    mtime_ns: int
    taken_at: str


def taken_from_record(record: dict[str, Any], folder: Path) -> TakenFile:
    strings = ("message_id", "target", "original_name", "taken_at")
    if not all(isinstance(record[key], str) for key in strings):
        raise TypeError("a text field is not text")
    if record["hint"] is not None and not isinstance(record["hint"], str):
        raise TypeError("hint is not text")
    for key in ("size", "mtime_ns"):
        if type(record[key]) is not int or record[key] < 0:
            raise TypeError(f"{key} is not a non-negative integer")
    return TakenFile(message_id=record["message_id"], original_name=record["original_name"],
                     spool_path=folder / PAYLOAD_FILE, size=record["size"],
                     target=record["target"], hint=record["hint"],
                     mtime_ns=record["mtime_ns"], taken_at=record["taken_at"])


def read_record(path: Path) -> dict[str, Any]:
    """The ``intake.json`` at ``path``, checked for format, version and exactly its fields;
    raises ValueError (or OSError, MalformedToken) when it is not one."""
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


def read_meta(folder: Path) -> dict[str, Any]:
    """The metadata recorded for a spooled document, or {} when there is none: the ``meta`` of
    its ``intake.json``, or (folders of intake version 1) its ``meta.json``."""
    try:
        return strict_json_object((folder / META_FILE).read_bytes())
    except FileNotFoundError:
        pass
    try:
        meta = read_record(folder / INTAKE_FILE).get("meta")
    except FileNotFoundError:
        return {}
    return dict(meta) if meta else {}
