"""The inbox layout: where a received document is placed, under which name, and what lies
beside it (``NAME.meta.json``, ``NAME.receipt.jws``) (blocking: worker threads).

Order matters, because a receipt is a promise (docs/reliability.md):

1. ``IncomingStream`` (node/inbox/stream.py) decrypts the transfer into a staging file inside
   ``tmp/`` and, at END, proves it complete and fsyncs it. Nothing is visible to a clerk yet.
2. The caller records ``publishing`` with the chosen inbox path (``choose_inbox_path``) in
   the store (commit).
3. ``publish_staged``: link the staging file to its inbox name (``link`` never overwrites),
   drop the staging name, fsync the inbox folder; write the metadata and receipt beside it
   (``write_sidecar_files``). A batch (node/inbox/publication.py) writes the sidecars before
   its one inbox-folder fsync and drops the staging names after it: the staging name is
   never dropped before the inbox name is durable, either way.
4. The caller commits ``stored`` with the receipt, and only then sends the receipt.

A crash between 2 and 4 leaves a ``publishing`` row; ``finish_interrupted`` completes it on the
next start from whichever of the staging file or the inbox file exists, so a retry by the
sender never produces a second copy.

Steps 2 to 4 run for a batch of documents at once (node/inbox/publication.py): documents that
finish together share the commits and the folder fsyncs, each in the order above.

Every folder and file made here follows the access rule (node/core/access.py): the clerks'
group may read them, nobody else.

A peer chooses the document's name, so it could choose one that looks like a file the node
writes beside a document (``x.pdf.meta.json``, ``x.pdf.receipt.jws``) and so plant a forged
sidecar beside a real ``x.pdf`` arriving later. Two rules close that (docs/documents.md):

* a name ending like a file only the node writes (``NODE_SUFFIXES``) gets ``.file`` added:
  ``x.pdf.meta.json`` arrives as ``x.pdf.meta.json.file``;
* ``.edxml`` is also a real document's ending, so it is not renamed; instead a name is taken
  while any of its companions is there (``x.pdf`` while ``x.pdf.edxml`` is, and
  ``x.pdf.edxml`` while ``x.pdf`` is): a document and a look-alike never share a name.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import (
    MAX_NAME_BYTES,
    clash_key,
    is_noise,
    safe_file_name,
    unique_name,
)
from lienthong.node.core.writeback import sync_and_close, write_started
from lienthong.node.edxml.export import FOLDER_SUFFIX
from lienthong.node.edxml.intake import EDXML_SUFFIX
from lienthong.protocol.envelope import EnvelopeHeader

#: Bytes read per step while hashing a received file (``file_sha256``).
READ_SIZE = 4 * 1024 * 1024
META_SUFFIX = ".meta.json"
RECEIPT_SUFFIX = ".receipt.jws"
#: What the node may write beside a received document ``NAME``: ``NAME`` + each of these (the
#: edXML copy and the folder of its unpacked attachments: node/edxml/export.py).
BESIDE_SUFFIXES = (META_SUFFIX, RECEIPT_SUFFIX, EDXML_SUFFIX, FOLDER_SUFFIX)
#: Endings of files only the node writes beside a document, anywhere in the home: the inbox's
#: sidecars and edXML folder, a recall's token and note (node/control/received.py) and a
#: refusal's reason (node/outbox/walk.py; tests/node/inbox/test_layout.py checks the list).
#: A peer's name ending so is given ``NEUTRAL_SUFFIX``.
NODE_SUFFIXES = (META_SUFFIX, RECEIPT_SUFFIX, FOLDER_SUFFIX, ".recall.jws", ".recall.txt",
                 ".reason.txt")
NEUTRAL_SUFFIX = ".file"
#: A stored name leaves room for its longest sidecar suffix, so "<name>.receipt.jws" still
#: fits in NAME_MAX (255 bytes); otherwise a long name would publish a document whose
#: metadata and receipt can never be written.
STORED_NAME_BYTES = MAX_NAME_BYTES - max(len(META_SUFFIX), len(RECEIPT_SUFFIX))


def choose_inbox_path(folder: Path, name: str, access: AccessPolicy,
                      reserved: Callable[[Path], bool] = lambda path: False, *,
                      present: set[str] | None = None) -> Path:
    """A safe, NFC, not-yet-used name for ``name`` inside ``folder`` (created if missing,
    with the access rule), never one that looks like a node-written sidecar (module docstring).

    ``reserved`` names paths another reception in progress has already chosen; ``present``
    is the folder's names as ``clash_key`` folds them, when the caller keeps them
    (node/inbox/folder_names.py), else the folder is listed.
    """
    access.make_folder(folder)
    # Compared as Windows/SMB/macOS clients would see them (NFC and case-folded), so a
    # document never hides another one for the clerks who open the inbox over a share.
    if present is None:
        present = {clash_key(entry) for entry in os.listdir(folder)}

    def used(entry: str) -> bool:
        return (reserved(folder / entry) or os.path.lexists(folder / entry)
                or clash_key(entry) in present)

    def taken(candidate: str) -> bool:
        companions = [candidate + suffix for suffix in ("", *BESIDE_SUFFIXES)]
        folded = clash_key(candidate)
        companions += [candidate[:-len(suffix)] for suffix in BESIDE_SUFFIXES
                       if folded.endswith(clash_key(suffix)) and len(candidate) > len(suffix)]
        return any(used(entry) for entry in companions)

    safe = neutral_name(name, max_bytes=STORED_NAME_BYTES - 2)
    return folder / unique_name(taken, safe, max_bytes=STORED_NAME_BYTES)


def neutral_name(name: str, *, max_bytes: int) -> str:
    """``name`` made safe (node/core/names.py), not taken for a temporary file, and with
    ``.file`` added when it ends like a file only the node writes (module docstring)."""
    safe = _not_temporary(safe_file_name(name, max_bytes=max_bytes))
    if not _ends_like_node_file(safe):
        return safe
    room = max_bytes - len(NEUTRAL_SUFFIX)
    return _not_temporary(safe_file_name(name, max_bytes=room)) + NEUTRAL_SUFFIX


def _ends_like_node_file(name: str) -> bool:
    folded = clash_key(name)
    return any(folded.endswith(clash_key(suffix)) for suffix in NODE_SUFFIXES)


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


def publish_staged(staging: Path, final: Path, access: AccessPolicy) -> None:
    """Give the verified staging file its inbox name without ever overwriting anything."""
    os.link(staging, final)  # fails with FileExistsError rather than replacing a document
    access.settle(final)  # the staging file is the node's alone (0600)
    fsync_dir(final.parent)
    staging.unlink()
    fsync_dir(staging.parent)


def write_sidecar_files(final: Path, metadata: Mapping[str, Any], receipt: str,
                        access: AccessPolicy) -> None:
    """The two sidecar files, each fsynced (the caller fsyncs the folder that names them).

    Their contents are synced too, not only their names: after a power cut a sidecar whose
    name survived but whose bytes did not would be an empty or partial file in the inbox."""
    sync_and_close(start_sidecar_files(final, metadata, receipt, access))


def start_sidecar_files(final: Path, metadata: Mapping[str, Any], receipt: str,
                        access: AccessPolicy) -> list[int]:
    """Write the two sidecar files and start their writeback without waiting; returns their
    open descriptors, which the caller must ``sync_and_close`` before it fsyncs the folder
    (a batch writes all its sidecars first: one journal commit for the batch, not two per
    document; node/core/writeback.py ``start_writeback``)."""
    meta = json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    fds: list[int] = []
    try:
        for path, data in ((final.with_name(final.name + META_SUFFIX), meta.encode("utf-8")),
                           (final.with_name(final.name + RECEIPT_SUFFIX),
                            (receipt + "\n").encode("ascii"))):
            fd = access.create(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
            fds.append(fd)
            write_started(fd, data)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def finish_interrupted(staging: Path, final: Path, sha256: str, access: AccessPolicy) -> bool:
    """Complete a publication cut short by a crash; True if the document is now in place."""
    if final.exists() and file_sha256(final) == sha256:
        access.settle(final)  # the crash may have come between the link and the mode
        staging.unlink(missing_ok=True)
        return True
    if staging.exists() and file_sha256(staging) == sha256:
        if final.exists():
            return False  # a different file holds the name; the caller picks another
        publish_staged(staging, final, access)
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
