"""Turning a received ciphertext into a document in the inbox (blocking: worker threads).

Order matters, because a receipt is a promise (DESIGN.md §3, §5):

1. ``verify_to_staging``: decrypt the whole partial file into a staging file inside ``tmp/``,
   proving signature (already checked at the offer), every chunk, the final tag exactly at the
   end, size and SHA-256; fsync the staging file. Nothing is visible to a clerk yet.
2. The caller records ``publishing`` with the chosen inbox path in the store (commit).
3. ``publish_staged``: link the staging file to its inbox name (``link`` never overwrites),
   drop the staging name, fsync the inbox folder; write the metadata and receipt beside it.
4. The caller commits ``stored`` with the receipt, and only then sends the receipt.

A crash between 2 and 4 leaves a ``publishing`` row; ``finish_interrupted`` completes it on the
next start from whichever of the staging file or the inbox file exists, so a retry by the
sender never produces a second copy.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nacl.public

from node.home import fsync_dir
from node.names import MAX_NAME_BYTES, clash_key, is_noise, safe_file_name, unique_name
from node.writeback import Writeback
from protocol.envelope import EnvelopeHeader, Opener

READ_SIZE = 4 * 1024 * 1024
META_SUFFIX = ".meta.json"
RECEIPT_SUFFIX = ".receipt.jws"
#: A stored name leaves room for its longest sidecar suffix, so "<name>.receipt.jws" still
#: fits in NAME_MAX (255 bytes); otherwise a long name would publish a document whose
#: metadata and receipt can never be written.
STORED_NAME_BYTES = MAX_NAME_BYTES - max(len(META_SUFFIX), len(RECEIPT_SUFFIX))


def verify_to_staging(partial: Path, staging: Path, header: EnvelopeHeader, *, node_id: str,
                      encryption_keys: Mapping[str, nacl.public.PrivateKey]) -> None:
    """Decrypt and fully verify ``partial`` into ``staging`` (fsynced); raise ProtocolError."""
    opener = Opener(header, node_id=node_id, encryption_keys=encryption_keys)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as sink, open(partial, "rb") as source:
            writeback = Writeback(fd)
            while block := source.read(READ_SIZE):
                plain = opener.feed(block)
                sink.write(plain)
                writeback.wrote(len(plain))
            opener.finish()
            sink.flush()
            os.fsync(sink.fileno())
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def choose_inbox_path(folder: Path, name: str,
                      reserved: Callable[[Path], bool] = lambda path: False) -> Path:
    """A safe, NFC, not-yet-used name for ``name`` inside ``folder`` (created if missing).

    ``reserved`` names paths another reception in progress has already chosen.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # Compared as Windows/SMB/macOS clients would see them (NFC and case-folded), so a
    # document never hides another one for the clerks who open the inbox over a share.
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


def write_sidecars(final: Path, metadata: Mapping[str, Any], receipt: str) -> None:
    """Write the metadata JSON and the receipt beside a delivered document."""
    meta_path = final.with_name(final.name + META_SUFFIX)
    meta_path.write_text(json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                         encoding="utf-8")
    final.with_name(final.name + RECEIPT_SUFFIX).write_text(receipt + "\n", encoding="ascii")
    fsync_dir(final.parent)


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
