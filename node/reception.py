"""Turning a received ciphertext into a document in the inbox (blocking: worker threads).

Order matters, because a receipt is a promise (DESIGN.md §3, §5):

1. ``IncomingStream``: while DATA arrives, append the ciphertext to the partial file (for
   resuming) and decrypt it into a staging file inside ``tmp/``; at END ``finish`` proves the
   final tag exactly at the end, size and SHA-256 (the signature was checked at the offer,
   every chunk as it came) and fsyncs the staging file. Nothing is visible to a clerk yet.
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
from typing import Any, BinaryIO

import nacl.public

from node.failpoints import failpoint
from node.hashing import BackgroundDigest
from node.home import fsync_dir
from node.names import MAX_NAME_BYTES, clash_key, is_noise, safe_file_name, unique_name
from node.writeback import Writeback
from protocol.envelope import EnvelopeHeader, Opener
from protocol.errors import ProtocolError

READ_SIZE = 4 * 1024 * 1024
META_SUFFIX = ".meta.json"
RECEIPT_SUFFIX = ".receipt.jws"
#: A stored name leaves room for its longest sidecar suffix, so "<name>.receipt.jws" still
#: fits in NAME_MAX (255 bytes); otherwise a long name would publish a document whose
#: metadata and receipt can never be written.
STORED_NAME_BYTES = MAX_NAME_BYTES - max(len(META_SUFFIX), len(RECEIPT_SUFFIX))


class IncomingStream:
    """One transfer's ciphertext partial and its decrypted staging file, written in step.

    Each DATA frame is appended to the partial (what a resume starts from) and, in the same
    call, decrypted into the staging file, so at END only the final checks and one fsync are
    left: the document is never read back and decrypted in a second pass (docs/benchmarks.md).
    Every method blocks (worker threads), and the caller runs one transfer's calls in order.

    The partial stays the only thing resumption trusts: on a resume, :meth:`open` rebuilds the
    staging file by decrypting the partial up to the receiver's offset, so a crash needs no
    saved cipher state. The staging file lives in ``tmp/`` and holds only authenticated
    chunks; nothing reaches the inbox before :meth:`finish` has proven the whole document.
    """

    def __init__(self, partial: Path, staging: Path, opener: Opener, offset: int) -> None:
        self.partial = partial
        self.staging = staging
        self.offset = offset
        self._opener = opener
        self._sink: BinaryIO | None = None
        self._plain: BinaryIO | None = None
        self._writeback: Writeback | None = None
        self._finished = False

    @classmethod
    def open(cls, partial: Path, staging: Path, header: EnvelopeHeader, *, offset: int,
             node_id: str, encryption_keys: Mapping[str, nacl.public.PrivateKey]
             ) -> IncomingStream:
        """Open for appending at ``offset`` (the partial's length), catching the staging file
        up from the partial first. A partial that does not decrypt (a power cut can leave
        zeros at its end) is dropped and the transfer starts again at byte 0."""
        def opener() -> Opener:
            return Opener(header, node_id=node_id, encryption_keys=encryption_keys,
                          plaintext_digest=BackgroundDigest())

        stream = cls(partial, staging, opener(), offset)
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            stream._open_files()
            if offset:
                try:
                    stream._catch_up()
                except ProtocolError:
                    stream._close_files()
                    partial.unlink(missing_ok=True)
                    stream = cls(partial, staging, opener(), 0)
                    stream._open_files()
        except BaseException:
            stream._close_files()
            staging.unlink(missing_ok=True)
            raise
        return stream

    def _open_files(self) -> None:
        self._sink = open(self.partial, "ab")  # noqa: SIM115 - closed by finish/close
        fd = os.open(self.staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._plain = os.fdopen(fd, "wb")
        self._writeback = Writeback(fd)

    def _catch_up(self) -> None:
        with open(self.partial, "rb") as source:
            left = self.offset
            while left and (block := source.read(min(READ_SIZE, left))):
                left -= len(block)
                self._decrypt(block)
        if left:
            raise OSError(f"the partial file {self.partial.name} is shorter than expected")

    def _staging_file(self) -> tuple[BinaryIO, Writeback]:
        if self._plain is None or self._writeback is None:
            raise OSError(f"the staging file of {self.staging.name} is closed")
        return self._plain, self._writeback

    def _decrypt(self, ciphertext: bytes) -> None:
        plain_file, writeback = self._staging_file()
        written = 0
        for plain in self._opener.feed_chunks(ciphertext):
            plain_file.write(plain)   # a chunk (256 KiB) goes straight past the buffer
            written += len(plain)
        if written:
            writeback.wrote(written)

    def write(self, ciphertext: bytes) -> None:
        """Append one frame's ciphertext to the partial and its plaintext to the staging file.

        Raises OSError when the disk refuses, ProtocolError when a chunk fails to authenticate
        (the transfer is then worthless: :meth:`discard` it)."""
        if self._sink is None:
            raise OSError(f"the partial file {self.partial.name} is closed")
        self._sink.write(ciphertext)
        self.offset += len(ciphertext)
        failpoint("receiver-mid-transfer")
        self._decrypt(ciphertext)

    def finish(self) -> None:
        """Prove the document complete (final tag at the end, sizes, digests) and fsync the
        staging file; the partial is closed but kept until the document is published."""
        try:
            self._opener.finish()
            plain_file, _ = self._staging_file()
            plain_file.flush()
            os.fsync(plain_file.fileno())
            self._finished = True
        finally:
            self._close_files()

    def close(self) -> None:
        """Stop without finishing (connection lost, disk full): keep the partial for a resume,
        remove the unverified staging file (a resume rebuilds it)."""
        self._close_files()
        if not self._finished:
            self.staging.unlink(missing_ok=True)

    def discard(self) -> None:
        """Drop everything: the ciphertext failed authentication or verification."""
        self.close()
        self.partial.unlink(missing_ok=True)

    def _close_files(self) -> None:
        for handle in (self._sink, self._plain):
            if handle is not None:
                try:
                    handle.close()
                except OSError:
                    pass
        self._sink = self._plain = None


def choose_inbox_path(folder: Path, name: str,
                      reserved: Callable[[Path], bool] = lambda path: False, *,
                      present: set[str] | None = None) -> Path:
    """A safe, NFC, not-yet-used name for ``name`` inside ``folder`` (created if missing).

    ``reserved`` names paths another reception in progress has already chosen; ``present``
    is the folder's names as ``clash_key`` folds them, when the caller keeps them
    (node/inbox_names.py), else the folder is listed.
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


def write_sidecars(final: Path, metadata: Mapping[str, Any], receipt: str) -> None:
    """Write the metadata JSON and the receipt beside a delivered document, durably."""
    write_sidecar_files(final, metadata, receipt)
    fsync_dir(final.parent)


def write_sidecar_files(final: Path, metadata: Mapping[str, Any], receipt: str) -> None:
    """The two sidecar files, not yet made durable (the caller fsyncs the folder)."""
    meta_path = final.with_name(final.name + META_SUFFIX)
    meta_path.write_text(json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                         encoding="utf-8")
    final.with_name(final.name + RECEIPT_SUFFIX).write_text(receipt + "\n", encoding="ascii")


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
