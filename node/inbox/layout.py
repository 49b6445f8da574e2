"""The inbox layout: where a received document is placed, under which name, and what lies
beside it (``NAME.meta.json``, ``NAME.receipt.jws``) (blocking: worker threads).

Order matters, because a receipt is a promise (docs/reliability.md):

1. ``IncomingStream`` (node/inbox/stream.py) decrypts the transfer into a staging file inside
   ``tmp/`` and, at END, proves it complete and fsyncs it. Nothing is visible to a clerk yet.
2. The caller records ``publishing`` with the chosen inbox path (``choose_inbox_path``) in
   the store (commit).
3. ``publish_staged``: link the staging file to its inbox name (``link`` never overwrites),
   drop the staging name, fsync the inbox folder; write the metadata and receipt beside it
   (``write_sidecar_files``).
4. The caller commits ``stored`` with the receipt, and only then sends the receipt.

A crash between 2 and 4 leaves a ``publishing`` row; ``finish_interrupted`` completes it on the
next start from whichever of the staging file or the inbox file exists, so a retry by the
sender never produces a second copy.

Steps 2 to 4 run for a batch of documents at once (node/inbox/publication.py): documents that
finish together share the commits and the folder fsyncs, each in the order above.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lienthong.node.core.home import fsync_dir, write_synced
from lienthong.node.core.names import (
    MAX_NAME_BYTES,
    clash_key,
    is_noise,
    safe_file_name,
    unique_name,
)
from lienthong.protocol.envelope import EnvelopeHeader

#: Bytes read per step while hashing a received file (``file_sha256``).
READ_SIZE = 4 * 1024 * 1024
META_SUFFIX = ".meta.json"
RECEIPT_SUFFIX = ".receipt.jws"
#: A stored name leaves room for its longest sidecar suffix, so "<name>.receipt.jws" still
#: fits in NAME_MAX (255 bytes); otherwise a long name would publish a document whose
#: metadata and receipt can never be written.
STORED_NAME_BYTES = MAX_NAME_BYTES - max(len(META_SUFFIX), len(RECEIPT_SUFFIX))


def choose_inbox_path(folder: Path, name: str,
                      reserved: Callable[[Path], bool] = lambda path: False, *,
                      present: set[str] | None = None) -> Path:
    """A safe, NFC, not-yet-used name for ``name`` inside ``folder`` (created if missing).

    ``reserved`` names paths another reception in progress has already chosen; ``present``
    is the folder's names as ``clash_key`` folds them, when the caller keeps them
    (node/inbox/folder_names.py), else the folder is listed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # Compared as Windows/SMB/macOS clients would see them (NFC and case-folded), so a
    # document never hides another one for the clerks who open the inbox over a share.
    if present is None:
        present = {clash_key(entry) for entry in os.listdir(folder)}

    def taken(candidate: str) -> bool:
        return reserved(folder / candidate) or any(
            os.path.lexists(folder / (candidate + suffix)) or
            clash_key(candidate + suffix) in present
            for suffix in ("", META_SUFFIX, RECEIPT_SUFFIX))

    safe = _not_temporary(safe_file_name(name, max_bytes=STORED_NAME_BYTES - 2))
    return folder / unique_name(taken, safe, max_bytes=STORED_NAME_BYTES)


def _not_temporary(name: str) -> str:
    """A peer's name that looks like a temporary, partial or lock file (``x.part``,
    ``~$x.docx``, ``desktop.ini``) gets a leading ``_``, and a trailing one if its ending is
    the tell: a hot-folder tool reading the inbox would skip it, and so would our own checks."""
    if not is_noise(name):
        return name
    for candidate in ("_" + name, name + "_"):
        if not is_noise(candidate):
            return candidate
    return "_" + name + "_"


def publish_staged(staging: Path, final: Path) -> None:
    """Give the verified staging file its inbox name without ever overwriting anything."""
    os.link(staging, final)  # fails with FileExistsError rather than replacing a document
    fsync_dir(final.parent)
    staging.unlink()
    fsync_dir(staging.parent)


def write_sidecar_files(final: Path, metadata: Mapping[str, Any], receipt: str) -> None:
    """The two sidecar files, each fsynced (the caller fsyncs the folder that names them).

    Their contents are synced too, not only their names: after a power cut a sidecar whose
    name survived but whose bytes did not would be an empty or partial file in the inbox."""
    meta = json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    # Readable as any inbox file (the clerks' umask), where write_synced's default is private.
    write_synced(final.with_name(final.name + META_SUFFIX), meta.encode("utf-8"),
                 exclusive=False, mode=0o666)
    write_synced(final.with_name(final.name + RECEIPT_SUFFIX), (receipt + "\n").encode("ascii"),
                 exclusive=False, mode=0o666)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def finish_interrupted(staging: Path, final: Path, sha256: str) -> bool:
    """Complete a publication cut short by a crash; True if the document is now in place."""
    if final.exists() and file_sha256(final) == sha256:
        staging.unlink(missing_ok=True)
        return True
    if staging.exists() and file_sha256(staging) == sha256:
        if final.exists():
            return False  # a different file holds the name; the caller picks another
        publish_staged(staging, final)
        return True
    return False


def document_metadata(header: EnvelopeHeader, *, sender_name: str, received_at: str,
                      original_name: str) -> dict[str, Any]:
    """What a clerk (or a document system) needs to know about a delivered document."""
    return {
        "message_id": header.message_id, "sender": sender_name, "sender_node_id": header.sender,
        "recipients": list(header.recipients), "name": original_name, "size": header.size,
        "sha256": header.sha256, "sent_at": header.created, "received_at": received_at,
        "meta": dict(header.meta),
    }
