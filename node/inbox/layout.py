"""The inbox layout: where a received document is placed, under which name, and what lies
beside it (``NAME.meta.json``, ``NAME.receipt.jws``) (blocking: worker threads).

Order matters, because a receipt is a promise (docs/reliability.md):

1. ``IncomingStream`` (node/inbox/stream.py) decrypts the transfer into a staging file inside
   ``tmp/`` and, at END, proves it complete and fsyncs it. Nothing is visible to a clerk yet.
2. The caller records ``publishing`` with the chosen inbox path (``choose_inbox_path``) in
   the store, and the document's sidecars as due (commit).
3. ``publish_staged``: link the staging file to its inbox name (``link`` never overwrites),
   fsync the inbox folder, then drop the staging name: the staging name is never dropped
   before the inbox name is durable.
4. The caller commits ``stored`` with the receipt, and only then sends the receipt.
5. The metadata and the receipt are written beside the document (``place_sidecars``: each
   under a temporary name, renamed into place), and only once a flush of the file system has
   made them durable (node/inbox/publication.py: one ``syncfs`` for many documents;
   ``write_sidecar_files`` fsyncs each, its caller the folder) is the ``sidecars_due`` row
   dropped.

A crash between 2 and 4 leaves a ``publishing`` row; ``finish_interrupted`` completes it on the
next start from whichever of the staging file or the inbox file exists, so a retry by the
sender never produces a second copy; its sidecars are then written as in 5. A crash between 4
and the end of 5 leaves a ``sidecars_due`` row: the next start writes the sidecars again from
the store (the receipt is in the ``stored`` row; the metadata is the header and the row), and
the rename replaces whatever the crash left, so after a crash of the node a clerk sees no
sidecar or a whole one, never a partial one (after a power loss before the flush, an empty
or partial one until that start: docs/design.md §6). The receipt sent in 4 is the one the
store keeps, so the sender's retry gets the same receipt and the document is receipted once.

Steps 2 to 5 run for a batch of documents at once (node/inbox/publication.py): documents that
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import (
    MAX_NAME_BYTES,
    TEMP_PREFIX,
    clash_key,
    is_noise,
    safe_file_name,
    unique_name,
)
from lienthong.node.core.restricted import restrict
from lienthong.node.core.writeback import sync_and_close, write_started, write_whole
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
    is the folder's names as ``clash_key`` folds them, when the caller keeps them (it made
    the folder and listed it: node/inbox/folder_names.py), else the folder is made and listed.

    The look-alike names (``NAME.meta.json``, ``NAME.edxml``...) are checked against that
    listing only; the candidate itself is also looked up on disk (one ``lstat``), so a name a
    clerk made since the listing is never reused. Each look-alike used to be
    looked up on disk too: five ``lstat`` calls a name, about half of the CPU time to choose one
    (docs/benchmarks.md).
    """
    if present is None:
        access.make_folder(folder)
        # Compared as Windows/SMB/macOS clients would see them (NFC and case-folded), so a
        # document never hides another one for the clerks who open the inbox over a share.
        present = {clash_key(entry) for entry in os.listdir(folder)}
    listed = present

    def used(entry: str) -> bool:
        return clash_key(entry) in listed or reserved(folder / entry)

    def taken(candidate: str) -> bool:
        companions = [candidate + suffix for suffix in ("", *BESIDE_SUFFIXES)]
        folded = clash_key(candidate)
        companions += [candidate[:-len(suffix)] for suffix in BESIDE_SUFFIXES
                       if folded.endswith(clash_key(suffix)) and len(candidate) > len(suffix)]
        return any(used(entry) for entry in companions) or os.path.lexists(folder / candidate)

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


@dataclass(frozen=True)
class Sidecars:
    """What is written beside one delivered document: its metadata and its receipt, and the
    petition staff's group when the document is a petition (node/core/restricted.py)."""

    final: Path
    metadata: Mapping[str, Any]
    receipt: str
    group: str | None = None


def sidecar_paths(final: Path) -> tuple[Path, Path]:
    """``NAME.meta.json`` and ``NAME.receipt.jws`` beside the document ``final``."""
    return (final.with_name(final.name + META_SUFFIX),
            final.with_name(final.name + RECEIPT_SUFFIX))


def sidecar_temporary(target: Path) -> Path:
    """The temporary name a sidecar is written under before it is renamed to ``target``: a
    hidden ``.lienthong-`` name no clerk tool or intake takes for a document, the same for the
    same target (a retry after a crash overwrites what the crash left), and short whatever
    the document's name (``NAME`` may already use all but 12 of NAME_MAX's 255 bytes)."""
    digest = hashlib.sha256(target.name.encode("utf-8")).hexdigest()[:32]
    return target.with_name(f"{TEMP_PREFIX}sidecar-{digest}.part")


def write_sidecar_files(final: Path, metadata: Mapping[str, Any], receipt: str,
                        access: AccessPolicy) -> None:
    """The two sidecar files of one document, each fsynced and renamed into place (the caller
    fsyncs the folder that names them); raises what stopped them."""
    error = place_sidecars([Sidecars(final, metadata, receipt)], access)[0]
    if error is not None:
        raise error


def place_sidecars(items: Sequence[Sidecars], access: AccessPolicy,
                   changing: Callable[[], AbstractContextManager[object]] = nullcontext,
                   *, synced: bool = True) -> list[Exception | None]:
    """Write the sidecars of ``items`` (documents of one folder) under temporary names, fsync
    them, then rename each into place: a clerk sees no sidecar or a whole one, never a partial
    one, and a sidecar a crash cut short is replaced whole (``rename`` replaces it atomically).
    The caller fsyncs the folder afterwards, which makes the new names durable.

    Their contents are synced, not only their names: after a power cut a sidecar whose name
    survived but whose bytes did not would be an empty or partial file in the inbox. All are
    written and their writeback started before the first fsync (one journal commit for the
    batch: node/core/writeback.py ``start_writeback``). A document no longer in the inbox (a
    clerk moved it away before a repair at start-up) gets none: nothing is planted beside a
    name that may be reused. Each result is None, or the error that stopped that document.
    ``changing`` is held while the folder's names change (the files made, then renamed), not
    during the fsyncs between (node/inbox/folder_names.py ``own_change``: it holds the lock
    the inbox names are reserved under).

    With ``synced=False`` nothing is fsynced: each sidecar is written, closed and renamed at
    once, in one ``changing`` block, and its durability is left to one later flush of the
    file system (node/inbox/publication.py ``Publisher``); until that flush, its
    ``sidecars_due`` row makes the next start write it again."""
    outcomes: list[Exception | None] = [None] * len(items)
    started: list[tuple[int, list[tuple[int, Path, Path]]]] = []
    if not synced:
        with changing():
            _start_sidecars(items, access, outcomes, started, write_whole)
            for _, files in started:
                _close_all(fd for fd, _, _ in files)
            _rename_sidecars(started, outcomes)
        return outcomes
    with changing():
        _start_sidecars(items, access, outcomes, started, write_started)
    ready = []
    for i, files in started:
        try:
            sync_and_close([fd for fd, _, _ in files])
        except Exception as exc:  # noqa: BLE001 - this document's own failure, handed back
            outcomes[i] = exc
        else:
            ready.append((i, files))
    with changing():
        _rename_sidecars(ready, outcomes)
    return outcomes


def _rename_sidecars(written: list[tuple[int, list[tuple[int, Path, Path]]]],
                     outcomes: list[Exception | None]) -> None:
    for i, files in written:
        try:
            for _, temporary, target in files:
                os.rename(temporary, target)
        except Exception as exc:  # noqa: BLE001 - this document's own failure, handed back
            outcomes[i] = exc


def _start_sidecars(items: Sequence[Sidecars], access: AccessPolicy,
                    outcomes: list[Exception | None],
                    started: list[tuple[int, list[tuple[int, Path, Path]]]],
                    write: Callable[[int, bytes], None]) -> None:
    for i, item in enumerate(items):
        files: list[tuple[int, Path, Path]] = []
        try:
            targets = sidecar_paths(item.final)
            if not os.path.lexists(item.final):
                for target in targets:
                    sidecar_temporary(target).unlink(missing_ok=True)
                continue
            meta = json.dumps(item.metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            for target, data in ((targets[0], meta.encode("utf-8")),
                                 (targets[1], (item.receipt + "\n").encode("ascii"))):
                temporary = sidecar_temporary(target)
                fd = access.create(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                   | os.O_NOFOLLOW | os.O_CLOEXEC)
                files.append((fd, temporary, target))
                if item.group is not None:   # before a byte of it is written
                    restrict(temporary, item.group)
                write(fd, data)
        except Exception as exc:  # noqa: BLE001 - this document's own failure, handed back
            _close_all(fd for fd, _, _ in files)
            outcomes[i] = exc
            continue
        started.append((i, files))


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


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


def document_kind(header: EnvelopeHeader) -> str:
    """Which kind of document an envelope brings (its ``kind``): where it goes depends on it."""
    # header.meta is a read-only MappingProxyType, not a dict. Its exact type first: an
    # isinstance check against the Mapping ABC, made several times per document, was 4% of
    # the receiver's reactor samples in a burst (docs/benchmarks.md History 57).
    meta = header.meta
    if type(meta) is MappingProxyType or isinstance(meta, Mapping):
        kind = meta.get("kind", "document")
    else:
        kind = "document"
    return kind if isinstance(kind, str) else "document"
