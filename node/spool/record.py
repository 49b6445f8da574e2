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

Since version 4 a batch of takes writes ONE record for all its documents (``records``: a
version-3 record each), fsynced once in the first document's folder and hard-linked as the
others' ``intake.json`` (node/outbox/intake.py, "One record per batch"); :func:`read_record`
returns the record of the folder's own document, so nothing else reads it differently. Each
folder's record thus also names the batch's other documents: the spool is the node's own
(0700), and no record is ever copied out of it (not to ``sent/``, ``failed/`` or a report).

Since version 3 the record also holds ``stream_ends`` (hex; null when the document was not
sealed before its take): a small file is sealed while it is still in the outbox, so the
public ends of its envelope's stream (the 24-byte stream header, then a v3 envelope's signed
trailer) are written and fsynced with the record, not in a ``stream-ends.bin`` of their own
(one file and one fsync fewer per document; node/outbox/intake.py, docs/design.md §6). A
folder of versions 1 and 2 keeps them beside the payload, as does any sealing after the take
(node/spool/sealing.py, ``kept_stream_ends``: the file wins).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.keys.jws import strict_json_object

INTAKE_FILE = "intake.json"
META_FILE = "meta.json"
PAYLOAD_FILE = "payload"
INTAKE_FORMAT = "lienthong-intake"
INTAKE_VERSION = 3
#: Versions ``recover_spool`` reads: version 1 has no ``meta`` (it is in ``meta.json``),
#: version 2 no ``stream_ends``.
INTAKE_VERSIONS = (1, 2, 3)
#: A batch's one record (node/outbox/intake.py, "One record per batch"): ``records`` holds a
#: version-3 record for each document of the batch; each folder's ``intake.json`` is a hard
#: link to it, and names its own document by the folder's name.
BATCH_VERSION = 4

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_HEX = re.compile(r"(?:[0-9a-f]{2}){1,1024}")


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
    if record.get("format") == INTAKE_FORMAT and record.get("version") == BATCH_VERSION:
        record = _own_record(record, path.parent.name)
    version = record.get("version")
    if record.get("format") != INTAKE_FORMAT or (type(version) is not int
                                                 or version not in INTAKE_VERSIONS):
        raise ValueError("unknown format or version")
    expected = {"format", "version", "message_id", "target", "original_name", "hint", "size",
                "mtime_ns", "taken_at"} | ({"meta"} if version >= 2 else set()) | (
                    {"stream_ends"} if version >= 3 else set())
    if set(record) != expected:
        raise ValueError(f"fields {sorted(set(record) ^ expected)} are wrong")
    if record.get("meta") is not None and not isinstance(record["meta"], dict):
        raise ValueError("meta is not an object")
    ends = record.get("stream_ends")
    if ends is not None and (not isinstance(ends, str) or not _HEX.fullmatch(ends)):
        raise ValueError("stream_ends is not hex")
    return record


def _own_record(batch: dict[str, Any], message_id: str) -> dict[str, Any]:
    """The record of ``message_id`` (its folder's name) in a batch's record."""
    if set(batch) != {"format", "version", "records"} or not isinstance(batch["records"], list):
        raise ValueError("a batch record holds format, version and a list of records only")
    for record in batch["records"]:
        if isinstance(record, dict) and record.get("message_id") == message_id:
            if record.get("version") == BATCH_VERSION:
                raise ValueError("a batch record names another batch record")
            return record
    raise ValueError(f"the batch record names no document {message_id!r}")


def recorded_stream_ends(folder: Path) -> bytes | None:
    """The stream ends recorded in a folder's ``intake.json`` by a sealing before the take, or
    None (none recorded, no record, or an older version's record)."""
    try:
        ends = read_record(folder / INTAKE_FILE).get("stream_ends")
    except FileNotFoundError:
        return None
    return bytes.fromhex(ends) if ends is not None else None


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
