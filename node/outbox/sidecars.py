"""A document's sidecar on its way through the outbox: read, validated, taken along.

Theory of operation
-------------------
The outbox calls :func:`prepare_document` for each file it is about to take, after the target
is resolved and before the file is moved:

1. read ``NAME.meta.toml`` beside the file (if any), without following links, at most 64 KiB;
2. validate it merged with the folder hint (node/documents/metadata.py), and apply the
   confidentiality guard for the resolved recipients;
3. on any error: move the document *and* its sidecar into ``failed/`` with a reason naming
   the field and what is allowed, audit ``refused``, and return None;
4. otherwise hand the envelope metadata to the take: ``take_file(meta=...)`` writes it inside
   ``spool/<message_id>/intake.json`` (version 2; version 1 folders kept it in ``meta.json``
   beside it), fsynced, *before* the file is moved in, so a taken document is never sealed
   without the metadata -- urgency, confidentiality -- it was validated with.

Right after ``take_file`` has moved the file into ``spool/<message_id>/``, in the same worker
hop and before sealing, ``Prepared.adopt`` moves the sidecar to
``spool/<message_id>/sidecar.meta.toml`` (out of the clerk's way, so it cannot attach itself
to a later file of the same name, even if the node dies while sealing);
:func:`adopt_document` then audits the metadata and the take in one transaction. When the
document reaches ``sent/``, the sidecar goes beside it as ``NAME.meta.toml``
(``sidecar_to_sent``, node/outbox/sent.py).

Before this version the metadata was first staged as ``spool/.lienthong-meta-<id>.json``
(two more fsyncs and two more worker hops per document; docs/benchmarks.md). A staged file
left by a crash of such a version is still adopted before sealing and swept at start-up
(node/spool/recovery.py).

Most documents have no sidecar, and looking for one cost a worker hop per document before
the take. :func:`plain_document` decides on the reactor what a document *without* a sidecar
would carry (the folder hint, checked as in step 2) and marks it ``looked=False``; the take's
own hop then checks that no sidecar is there, just before taking the file
(``file_work.take_and_seal`` raises :class:`SidecarFound`, having taken nothing), and the
outbox goes the long way above. A sidecar saved after that check is left in the outbox, as a
sidecar saved after step 1 always was.

The blocking functions run on the worker pool; the ``inlineCallbacks`` functions are the
outbox's entry points.
"""
from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from lienthong.node.core.access import access_policy
from lienthong.node.core.errors import NodeError
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import unique_name
from lienthong.node.documents.confidentiality import check_confidentiality
from lienthong.node.documents.coordination_rules import check_conclusion
from lienthong.node.documents.metadata import (
    MAX_MESSAGE_BYTES,
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    DocumentMeta,
    document_meta,
    parse_sidecar,
)
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.petitions import (
    PETITION_TYPE,
    PetitionError,
    check_petition_peers,
    petition_reference,
    public_meta,
)
from lienthong.node.documents.programme_items import (
    MAX_PROGRAMME_BYTES,
    STRUCTURED_SUFFIXES,
    ProgrammeFileError,
    read_programme_items,
)
from lienthong.node.language.text import Phrase
from lienthong.node.outbox.refusals import Refused
from lienthong.node.outbox.walk import open_parent, parts_under, refuse_file
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.peer_protocols import V3_PROTOCOL
from lienthong.node.spool.record import TakenFile

log = Logger(namespace="lienthong.outbox")

SPOOLED_SIDECAR = "sidecar.meta.toml"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def folder_hint(outbox: Path, path: Path) -> str | None:
    """The first folder below the target (``outbox/<peer>/<hint>/...``), NFC, or None."""
    parts = parts_under(outbox, path)
    return unicodedata.normalize("NFC", parts[1]) if len(parts) > 2 else None


@dataclass(frozen=True, slots=True)
class SidecarFile:
    data: bytes | None  # None: there is no sidecar
    document_size: int


def read_sidecar(outbox: Path, path: Path) -> SidecarFile:
    """The sidecar's bytes (or None) and the document's size; raise MetadataError."""
    parts = parts_under(outbox, sidecar_of(path))
    try:
        parent_fd = open_parent(outbox, parts)
    except Refused:
        return SidecarFile(None, 0)  # a folder on the way is wrong: take_file will say so
    try:
        try:
            size = os.stat(parts[-1][:-len(SIDECAR_SUFFIX)], dir_fd=parent_fd,
                           follow_symlinks=False).st_size
        except FileNotFoundError:
            size = 0
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            return SidecarFile(None, size)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                # A 250-byte document name leaves no room for ".meta.toml": no sidecar can exist.
                return SidecarFile(None, size)
            if exc.errno == errno.ELOOP:
                raise MetadataError("bad-metadata", Phrase(
                    "{name} is a symbolic link; put the sidecar file itself beside the "
                    "document", name=parts[-1])) from None
            raise
    finally:
        os.close(parent_fd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise MetadataError("bad-metadata", Phrase("{name} is not an ordinary file",
                                                       name=parts[-1]))
        data = handle.read(MAX_SIDECAR_BYTES + 1)
    return SidecarFile(data, size)


def check_programme_file(outbox: Path, path: Path) -> None:
    """A programme sent as .ics or .xlsx must parse: its items are what the consolidating
    office merges (node/coordination/consolidate.py). Raise MetadataError if it does not."""
    parts = parts_under(outbox, path)
    try:
        parent_fd = open_parent(outbox, parts)
    except Refused:
        return  # a folder on the way is wrong: take_file will say so
    try:
        fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent_fd)
    except OSError:
        return  # gone or not a file: take_file will say so
    finally:
        os.close(parent_fd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return
        data = handle.read(MAX_PROGRAMME_BYTES + 1)
    try:
        read_programme_items(parts[-1], data)
    except ProgrammeFileError as exc:
        raise MetadataError("bad-programme", str(exc)) from None


def move_sidecar(source: Path, target_dir: Path, name: str) -> Path | None:
    """Rename ``source`` to ``target_dir/name`` (a free variant); None if there is no source."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / unique_name(lambda n: os.path.lexists(target_dir / n), name)
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return None
    fsync_dir(target_dir)
    fsync_dir(source.parent)
    return target


class SidecarFound(NodeError):
    """The take of a document prepared without looking for a sidecar found one: nothing was
    taken; prepare it again, reading the sidecar (``prepare_document``)."""

    code = "sidecar-found"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated document about to be taken: its metadata, and its sidecar if it has one.

    ``looked`` False: nobody has looked for a sidecar yet (:func:`plain_document`); the take
    must check that there is none."""

    message_id: str
    meta: DocumentMeta
    sidecar: Path | None
    spool_dir: Path
    looked: bool = True

    def abandon(self, to_failed: Path | None) -> None:
        """The take was refused: the sidecar follows the document into ``to_failed`` (or
        stays, if the document stays in the outbox)."""
        if to_failed is not None and self.sidecar is not None:
            move_sidecar(self.sidecar, to_failed, self.sidecar.name)

    def adopt(self) -> None:
        """Move the sidecar (if any) into the document's spool folder."""
        if self.sidecar is not None:
            folder = self.spool_dir / self.message_id
            try:
                os.rename(self.sidecar, folder / SPOOLED_SIDECAR)
            except FileNotFoundError:
                return
            fsync_dir(folder)
            fsync_dir(self.sidecar.parent)


def _validate(rt: NodeRuntime, sidecar: SidecarFile, path: Path, hint: str | None,
              recipients: list[str]) -> DocumentMeta:
    fields = (parse_sidecar(sidecar.data, name=sidecar_of(path).name)
              if sidecar.data is not None else {})
    documents = rt.config.documents
    meta = document_meta(fields, hint=hint, types=documents.types,
                         notation=documents.number_notation,
                         lenient_numbers=documents.lenient_numbers)
    if meta.kind == "message" and sidecar.document_size > MAX_MESSAGE_BYTES:
        raise MetadataError("bad-metadata", Phrase(
            "type: a message is short text (at most {limit} KiB) but this file is {size} bytes; "
            "send it as a document (another type) instead", limit=MAX_MESSAGE_BYTES // 1024,
            size=sidecar.document_size))
    check_confidentiality(meta.confidentiality, [rt.peer_name(n) for n in recipients],
                          allowed=rt.config.confidentiality, groups=rt.config.groups)
    if meta.kind == PETITION_TYPE:
        _check_petition_route(rt, recipients)
    check_conclusion(meta, own_name=rt.config.node.name,
                     recipients=[rt.peer_name(n) for n in recipients])
    return meta


def _check_petition_route(rt: NodeRuntime, recipients: list[str]) -> None:
    """A petition goes only to peers allowed for petitions, and only sealed (envelope v3,
    which this node must be allowed to speak); docs/petitions.md §3."""
    try:
        check_petition_peers([rt.peer_name(n) for n in recipients],
                             peers=rt.config.petitions.peers, groups=rt.config.groups)
    except PetitionError as exc:
        raise MetadataError(exc.code, exc.reason_text, petition=True) from None
    if rt.config.delivery.max_protocol < V3_PROTOCOL:
        raise MetadataError("petition-not-sealed", Phrase(
            "this office is configured for protocol 1 ([delivery] max_protocol = 1), whose "
            "envelopes do not seal the metadata; a citizens' petition travels only sealed. Ask "
            "the administrator to allow protocol 2."), petition=True)


def plain_document(rt: NodeRuntime, path: Path, recipients: list[str],
                   message_id: str) -> Prepared | None:
    """The document as it is if it has no sidecar, decided without a worker hop; None when
    that cannot be decided here (the hint is refused, or makes it a message, whose size
    limit needs the file): ``prepare_document`` then looks, and refuses if it must."""
    try:
        meta = _validate(rt, SidecarFile(None, 0), path, folder_hint(rt.config.outbox, path),
                         recipients)
    except (MetadataError, ValueError):
        return None
    if meta.kind == "message":
        return None
    return Prepared(message_id=message_id, meta=meta, sidecar=None,
                    spool_dir=rt.config.spool, looked=False)


@inlineCallbacks
def prepare_document(rt: NodeRuntime, path: Path, target: str, recipients: list[str],
                     message_id: str):
    """Validate ``path``'s metadata; a ``Prepared`` to take it with, or None if refused."""
    outbox = rt.config.outbox
    sidecar_path = sidecar_of(path)
    try:
        hint = folder_hint(outbox, path)
        sidecar = yield rt.io(read_sidecar, outbox, path)
        meta = _validate(rt, sidecar, path, hint, recipients)
        if meta.type == "programme" and path.name.lower().endswith(STRUCTURED_SUFFIXES):
            yield rt.io(check_programme_file, outbox, path)
    except MetadataError as exc:
        yield _refuse(rt, path, sidecar_path, exc, message_id)
        return None
    return Prepared(message_id=message_id, meta=meta,
                    sidecar=sidecar_path if sidecar.data is not None else None,
                    spool_dir=rt.config.spool)


@inlineCallbacks
def adopt_document(rt: NodeRuntime, prepared: Prepared, taken: TakenFile,
                   also: Sequence[tuple[str, dict[str, Any]]] = (), *,
                   sidecar_moved: bool = False):
    """The file is in the spool: bring its sidecar in (unless the take already did,
    ``sidecar_moved``), and audit the metadata followed by ``also`` (the take itself) in ONE
    transaction (one unit of database work, one commit)."""
    if prepared.sidecar is not None and not sidecar_moved:
        yield rt.io(prepared.adopt)
    d = rt.db_audited(_nothing, events=[*metadata_events(prepared, taken), *also])
    d.addErrback(lambda failure: log.failure("could not write the audit of {mid}", failure,
                                                mid=taken.message_id))
    yield d


def metadata_events(prepared: Prepared, taken: TakenFile) -> list[tuple[str, dict[str, Any]]]:
    """The ``document-metadata`` audit event of a taken document (``db_audited`` form); the
    outbox records it in the dispatch's own unit when sealing succeeded in the take's hop."""
    meta = public_meta(prepared.meta.as_envelope_meta(), taken.message_id)
    meta.pop("priority")
    meta["document_kind"] = meta.pop("kind")  # "kind" names the audit event itself
    return [("document-metadata", dict(meta, message_id=taken.message_id,
                                       name=taken.original_name,
                                       sidecar=prepared.sidecar is not None))]


def _nothing() -> None:
    """A unit of work whose only writes are its audit events."""


@inlineCallbacks
def _refuse(rt: NodeRuntime, path: Path, sidecar: Path, error: MetadataError,
            message_id: str):
    """Document and sidecar into failed/, side by side, with the reason; audited (a
    petition by its opaque reference only: its file name may name the citizen)."""
    failed = rt.config.failed
    where = None
    shown = petition_reference(message_id) if error.petition else path.name
    try:
        where = yield rt.io(
            refuse_file, path, outbox=rt.config.outbox, failed_dir=failed,
            reason=error.reason_text, code=error.code, now=rt.now_text(),
            access=access_policy(rt.config.node.clerks_group), language=rt.config.language,
            companion=lambda kept: move_sidecar(sidecar, failed, kept + SIDECAR_SUFFIX))
    except OSError as exc:
        rt.audit("refuse-failed", name=shown, reason=str(exc.strerror))
    yield rt.audit("refused", code=error.code, reason=error.reason, name=shown,
                   failed=None if where is None or error.petition else str(where))
