"""An edXML file dropped into the outbox: what it becomes (a document, a recall, a status).

Theory of operation
-------------------
The outbox (node/outbox/pipeline.py) hands every ``*.edxml`` file to :func:`read_edxml` on the
worker pool: the file is opened without following links, its size checked against the limit
*before* a byte is read, then parsed (node/edxml/parse.py). What it holds decides the rest:

* a **document** (BussinessDocType 0 new, 2 update, 3 replace): :func:`document_meta_for`
  checks that every ``To`` office is a recipient of this dispatch and maps the header to the
  metadata of one dispatch whose payload is the edXML file itself, the sealed package of all
  its attachments; an update or replacement names the document it replaces
  (``replaces``), found by its edXML DocumentId (:func:`find_sent`, an indexed lookup in
  the store's ``edxml_documents``);
* a **recall** (BussinessDocType 1): :func:`queue_recall` leaves the same request
  ``lienthong recall`` leaves, for the document named;
* a **status message**: :func:`queue_status` leaves the request ``lienthong mark`` leaves.

The store functions run on the database thread (``rt.db``); a refusal is an
:class:`~lienthong.node.edxml.limits.EdxmlError` the outbox files into ``failed/``.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lienthong.node.documents.metadata import DocumentMeta, document_meta
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.edxml.limits import CHUNK, EdxmlError, Limits, too_large
from lienthong.node.edxml.mapping import META_KEY, edxml_meta, sidecar_fields
from lienthong.node.edxml.message import (
    CODE_OF_STATUS,
    RECALL,
    STATUS_CODES,
    EdxmlDocument,
    StatusMessage,
)
from lienthong.node.edxml.parse import parse_chunks
from lienthong.node.edxml.sinks import SinkFactory, drop_attachments
from lienthong.node.language.names import STATUSES
from lienthong.node.language.text import Phrase, _
from lienthong.node.store.database import Store
from lienthong.node.store.records import PROCESSING_TRANSITIONS
from lienthong.protocol.status import MAX_NOTE, MAX_REGISTER_NUMBER

EDXML_SUFFIX = ".edxml"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def is_edxml(path: Path) -> bool:
    return path.name.lower().endswith(EDXML_SUFFIX)


@dataclass(frozen=True, slots=True)
class EdxmlDocumentMeta(DocumentMeta):
    """A document's metadata with the edXML-only identifiers (``meta["edxml"]``)."""

    edxml: Mapping[str, Any] = field(default_factory=dict)

    def as_envelope_meta(self) -> dict[str, Any]:
        meta = DocumentMeta.as_envelope_meta(self)
        meta[META_KEY] = dict(self.edxml)
        return meta


def read_edxml(path: Path, limits: Limits,
               sink_for: SinkFactory = drop_attachments) -> EdxmlDocument | StatusMessage:
    """Blocking: the message in ``path``, its size checked before anything is read, then read
    and parsed a chunk at a time; each attachment is decoded into ``sink_for`` (by default
    checked and dropped: the outbox sends the file itself and needs only the header)."""
    fd = os.open(path, _READ_FLAGS)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise EdxmlError("bad-edxml", Phrase("this is not an ordinary file"))
        if info.st_size > limits.max_bytes:
            raise too_large(info.st_size, limits)
        return parse_chunks(iter(lambda: handle.read(CHUNK), b""), limits, sink_for)


def document_meta_for(message: EdxmlDocument, *, file_name: str, recipients: Iterable[str],
                      organ_ids: Mapping[str, str], types: Iterable[str],
                      replaces: str | None = None) -> EdxmlDocumentMeta:
    """The metadata of the dispatch carrying ``message`` to ``recipients`` (peer names)."""
    recipients = list(recipients)
    known = {organ_ids.get(name, name): name for name in recipients}
    for organ in message.header.to:
        if organ.organ_id not in known:
            office = repr(organ.organ_id) + (f" ({organ.organ_name})" if organ.organ_name
                                             else "")
            raise EdxmlError("edxml-wrong-recipient", Phrase(
                "the edXML is addressed to {office}, but it was put in the folder for "
                "{folder}. Put it in the folder of the office it is addressed to, or correct "
                "the recipients (To) in the document-management system. Identifier codes are "
                "set in lienthong.toml, [edxml.offices].",
                office=office, folder=", ".join(sorted(recipients))))
    if not message.attachments:
        raise EdxmlError("bad-edxml", Phrase(
            "the edXML message has no attachment, so there is no document to send; attach the "
            "document in the document system"))
    values = sidecar_fields(message.header, types)
    if replaces is not None:
        values["replaces"] = replaces
    try:
        meta = document_meta(values, types=types)
    except MetadataError as exc:
        raise EdxmlError("bad-edxml", Phrase("the edXML header is not usable: {problem}",
                                             problem=exc.reason_text)) from None
    base = {f.name: getattr(meta, f.name) for f in fields(DocumentMeta)}
    return EdxmlDocumentMeta(**base, edxml=edxml_meta(message, file_name=file_name))


def named_documents(message: EdxmlDocument) -> list[str]:
    """The DocumentIds a recall, update or replacement names (ReplacementInfo, else the
    business block's own DocumentId)."""
    named = [item.document_id for item in message.business.replacements]
    if not named and message.business.document_id:
        named.append(message.business.document_id)
    return named


def _message_id(document_id: str) -> str | None:
    """A DocumentId that is a lienthong message ID (what lienthong writes as DocumentId when it
    exports a document that did not come as edXML)."""
    text = document_id.strip().lower()
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else None


def find_sent(store: Store, document_id: str) -> str | None:
    """Database thread: the message ID of the latest document this office sent as
    ``document_id`` (its edXML DocumentId, or lienthong's message ID), or None. Both are
    indexed lookups."""
    found = store.sent_by_document_id(document_id)
    if found is not None:
        return found
    mid = _message_id(document_id)
    if mid is not None:
        row = store.get_dispatch(mid)
        if row is not None and row.meta.get("kind") not in ("status", "recall"):
            return row.message_id
    return None


def find_received(store: Store, document_id: str) -> tuple[str, str] | None:
    """Database thread: (message ID, sender node ID) of the latest stored document received as
    ``document_id`` (its edXML DocumentId, or lienthong's message ID), or None."""
    found = store.received_by_document_id(document_id)
    if found is not None:
        return found
    mid = _message_id(document_id)
    if mid is not None:
        for row in store.stored_received(mid):
            if row.meta.get("kind") not in ("status", "recall"):
                return row.message_id, row.sender_node_id
    return None


#: What names an unknown document, each its own sentence (a translator sees it whole).
_UNKNOWN = {
    "replacement": _("the edXML replacement names the document {document}, which this office "
                     "has no record of. Check the DocumentId in the document system; a new "
                     "document is sent with BussinessDocType 0."),
    "recall": _("the edXML recall names the document {document}, which this office has no "
                "record of. Check the DocumentId in the document system; a new document is "
                "sent with BussinessDocType 0."),
    "status": _("the edXML status message names the document {document}, which this office "
                "has no record of. Check the DocumentId in the document system; a new "
                "document is sent with BussinessDocType 0."),
}


def _unknown(document_id: str, what: str) -> EdxmlError:
    return EdxmlError("edxml-unknown-document",
                      Phrase(_UNKNOWN[what], document=repr(document_id)))


def replaced_document(store: Store, message: EdxmlDocument) -> str | None:
    """Database thread: the message ID an update or replacement replaces (None for a new
    document); raise EdxmlError when it names a document this office never sent."""
    if message.business.doc_type not in (2, 3):
        return None
    named = named_documents(message)
    if not named:
        raise EdxmlError("bad-edxml", Phrase("the edXML is an update or replacement but names "
                                             "no document (ReplacementInfo/DocumentId)"))
    found = find_sent(store, named[0])
    if found is None:
        raise _unknown(named[0], "replacement")
    return found


def queue_recall(store: Store, message: EdxmlDocument, now: str) -> tuple[str, int]:
    """Database thread: ask for the recall an edXML recall message means; returns the
    recalled message ID and the request's ID."""
    if message.business.doc_type != RECALL:
        raise ValueError("not a recall")
    named = named_documents(message)
    if not named:
        raise EdxmlError("bad-edxml", Phrase("the edXML recall names no document to recall "
                                             "(ReplacementInfo/DocumentId)"))
    reason = (message.business.reason or "").strip()
    if not reason or len(reason) > MAX_NOTE:
        raise EdxmlError("bad-edxml", Phrase("an edXML recall needs its reason "
                                             "(BussinessDocReason, 1 to {limit} characters)",
                                             limit=MAX_NOTE))
    found = find_sent(store, named[0])
    if found is None:
        raise _unknown(named[0], "recall")
    if store.recalls_for(found):
        raise EdxmlError("edxml-unknown-document", Phrase(
            "the document {document} has already been recalled", document=repr(named[0])))
    request = store.add_control_request("recall", found, {"reason": reason,
                                                          "replaced_by": None}, now)
    return found, request.id


def queue_status(store: Store, status: StatusMessage, now: str) -> tuple[str, int]:
    """Database thread: ask for the signed status an edXML status message means; returns the
    document's message ID and the request's ID."""
    name = STATUS_CODES[status.status_code]
    if name not in ("registered", "assigned", "in-progress", "completed", "rejected"):
        raise EdxmlError("bad-edxml", Phrase(
            "status code {code} is sent by lienthong itself; an office reports only 02, 03, "
            "04, 05 or 06", code=status.status_code))
    document_id = status.response_for.document_id
    if not document_id:
        raise EdxmlError("bad-edxml", Phrase("the status message's ResponseFor has no "
                                             "DocumentId: which document is it about?"))
    found = find_received(store, document_id)
    if found is None:
        raise _unknown(document_id, "status")
    message_id, sender = found
    note = (status.description or "").strip()
    number = None
    if name == "registered":
        number = note
        if not number or len(number) > MAX_REGISTER_NUMBER:
            raise EdxmlError("bad-edxml", Phrase(
                "a 03 (registered) status needs the incoming-register number (số đến) in "
                "Description, at most {limit} characters", limit=MAX_REGISTER_NUMBER))
        note = ""
    if name == "rejected" and not note:
        raise EdxmlError("bad-edxml", Phrase("a 02 (rejected) status needs the reason in "
                                             "Description"))
    if len(note) > MAX_NOTE:
        raise EdxmlError("bad-edxml", Phrase("Description is at most {limit} characters",
                                             limit=MAX_NOTE))
    done = [s.status for s in store.statuses_for(message_id)
            if s.status in PROCESSING_TRANSITIONS]
    last = done[-1] if done else None
    if name not in PROCESSING_TRANSITIONS[last]:
        following = sorted(CODE_OF_STATUS[n] for n in PROCESSING_TRANSITIONS[last])
        if not following:
            raise EdxmlError("bad-edxml", Phrase(
                "the document is already {status}; no status can follow it",
                status=Phrase(STATUSES.get(last or "", str(last)))))
        raise EdxmlError("bad-edxml", Phrase(
            "the document is already {status}; the status codes that can follow are: {codes}",
            status=Phrase(STATUSES.get(last or "", str(last))), codes=", ".join(following)))
    request = store.add_control_request("status", message_id, {
        "status": name, "note": note, "register_number": number}, now, peer=sender)
    return message_id, request.id
