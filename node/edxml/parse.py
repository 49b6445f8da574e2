"""Reading an edXML message from bytes, refusing anything hostile or ambiguous (pure).

Theory of operation
-------------------
An edXML file comes from a document-management system, a clerk, or (exported) from a peer: it
is attacker data. :func:`parse_message` therefore

1. checks the size *before* parsing (``Limits.max_bytes``; the caller checks the file's size
   before reading it at all), and counts what it is fed, so a file that grows is caught too;
2. parses with defusedxml with every DTD forbidden: a DOCTYPE, entity declarations (billion
   laughs), external entities (``file:``, ``http:``) never reach the XML library's resolver;
3. requires every element to be in the edXML namespace (or every element in none): an element
   from another namespace that merely *looks* like ``Subject`` is refused, not read or skipped;
4. refuses a single-valued field given twice, rather than choosing one;
5. decodes each attachment's base64 strictly, within ``Limits`` (count, total bytes), *as the
   parser reads it*: the text of ``ContentTransferEncoded`` never becomes one string in the
   tree; it goes, :data:`CHUNK` characters at a time, through a strict base64 decoder into an
   :class:`AttachmentSink` the caller chooses (kept in memory by :func:`parse_message`,
   counted and dropped, or written to a file by node/edxml/export.py). Memory is therefore
   the header's elements plus a chunk or two, whatever the attachments weigh, and an
   attachment claiming more than the limit is refused at the first chunk beyond it.

Every refusal is an :class:`EdxmlError` whose ``reason`` tells a clerk what is wrong and what
to do. Nothing here does I/O: the caller feeds the bytes (:func:`parse_chunks`) and owns the
sinks.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import unicodedata
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import defusedxml
import defusedxml.ElementTree as SafeElementTree

from lienthong.node.core.errors import NodeError
from lienthong.node.edxml.message import (
    NAMESPACE,
    ORGAN_FIELDS,
    OTHER_FIELDS,
    STAFF_FIELDS,
    STATUS_CODES,
    XLINK,
    Attachment,
    Business,
    EdxmlDocument,
    MessageHeader,
    Organ,
    OtherInfo,
    Replacement,
    ResponseFor,
    StaffInfo,
    StatusMessage,
    Trace,
)
from lienthong.node.language.text import Phrase

#: A message of this many bytes or more is refused before it is parsed (docs/edxml.md).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_ATTACHMENTS = 100
#: Longest text of a field; Content (the document's text, 1.7) may be longer.
MAX_FIELD = 2000
MAX_CONTENT = 200_000
#: Bytes fed to the XML parser at a time, and characters of base64 text decoded at a time
#: (small: expat and the decoder each hold a few of them; larger chunks were no faster).
CHUNK = 64 * 1024
_WHITESPACE_CONTROLS = frozenset("\n\r\t")
_NO_WHITESPACE = {ord(c): None for c in " \t\r\n"}
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class EdxmlError(NodeError):
    """An edXML message that will not be used, with a reason a clerk can act on.

    ``code`` is stable (audit log, tests): ``bad-edxml`` for a malformed or hostile message,
    ``edxml-too-large`` for one over the size limit, ``edxml-wrong-recipient`` for a header
    naming an office this dispatch does not go to, ``edxml-unknown-document`` for a recall,
    replacement or status naming a document this office does not know.
    """

    code = "bad-edxml"

    def __init__(self, code: str, reason: str | Phrase) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        #: The reason as a clerk reads it, translated where it is shown (the reason file in
        #: failed/, the command line's edge); ``reason`` is its English (audit log, log).
        self.reason_text = reason
        self.reason = str(reason)
        if isinstance(reason, Phrase):
            self.text = reason


def _bad(reason: Phrase) -> EdxmlError:
    return EdxmlError("bad-edxml", reason)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may hold; ``max_attachment_bytes`` bounds the decoded total."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_attachment_bytes: int = DEFAULT_MAX_BYTES
    max_attachments: int = MAX_ATTACHMENTS


def too_large(size: int, limits: Limits) -> EdxmlError:
    return EdxmlError("edxml-too-large", Phrase(
        "the edXML file is {size} bytes, more than the {limit} bytes this office accepts. "
        "Send the attachments as separate documents, or ask the administrator to raise "
        "[edxml] max_mib in lienthong.toml.", size=size, limit=limits.max_bytes))


class AttachmentSink(Protocol):
    """Where one attachment's decoded bytes go, chunk by chunk."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> bytes | str | None:
        """The bytes (kept in memory), the file they were written to, or None (dropped)."""


#: The sink for attachment number 1, 2, ... of a message.
SinkFactory = Callable[[int], AttachmentSink]


class MemorySink:
    """Keeps the attachment's bytes (``Attachment.data``): for messages already in memory."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def finish(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        return data


class DroppingSink:
    """Checks the attachment decodes, keeps nothing (what the outbox needs to send it)."""

    def write(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        return None


def keep_in_memory(number: int) -> AttachmentSink:
    return MemorySink()


def drop_attachments(number: int) -> AttachmentSink:
    return DroppingSink()


def parse_message(data: bytes, limits: Limits = Limits()) -> EdxmlDocument | StatusMessage:
    """The document or status message ``data`` holds, attachments in memory; raise
    EdxmlError."""
    if len(data) > limits.max_bytes:
        raise too_large(len(data), limits)
    return parse_chunks((data[i:i + CHUNK] for i in range(0, len(data), CHUNK)), limits,
                        keep_in_memory)


def parse_chunks(chunks: Iterable[bytes], limits: Limits,
                 sink_for: SinkFactory) -> EdxmlDocument | StatusMessage:
    """The message whose bytes ``chunks`` yields (a file read piece by piece), each attachment
    decoded into ``sink_for(number)`` as it is read; raise EdxmlError. An attachment's
    ``data`` is what its sink kept in memory (else empty), its ``file`` where the sink wrote
    it."""
    target = _StreamingTarget(limits, sink_for)
    root = _parse_xml(chunks, target, limits)
    ns = _namespace(root)
    reader = _Reader(ns, target.decoded)
    if root.tag != reader.q("edXML"):
        raise _bad(Phrase("the file is XML but not an edXML message (its root is {root}, "
                          "not 'edXML'); export it again from the document-management system "
                          "as edXML", root=repr(_local(root.tag))))
    reader.check_namespaces(root)
    envelope = reader.required(root, "edXMLEnvelope")
    header = reader.required(envelope, "edXMLHeader")
    status = reader.one(header, "Status")
    if status is not None:
        return reader.status(status)
    document = reader.required(header, "MessageHeader")
    return EdxmlDocument(header=reader.header(document),
                         business=reader.business(reader.one(header, "TraceHeaderList")),
                         traces=reader.traces(reader.one(header, "TraceHeaderList")),
                         attachments=reader.attachments(root, limits))


@dataclass(frozen=True, slots=True)
class _Decoded:
    """What came of one ContentTransferEncoded: its decoded size and what its sink kept."""

    size: int
    kept: bytes | str | None


class _Base64Stream:
    """Strict base64 decoding of text that arrives in pieces (whitespace between them
    allowed, padding only at the very end), into a sink, refusing more than ``room`` bytes."""

    def __init__(self, sink: AttachmentSink, room: int, name: str) -> None:
        self.sink = sink
        self.room = room
        self.name = name
        self.size = 0
        self.padded = False
        self._pending: list[str] = []
        self._held = 0

    def feed(self, text: str) -> None:
        compact = text.translate(_NO_WHITESPACE)
        if not compact:
            return
        if self.padded:
            raise self._invalid()
        self._pending.append(compact)
        self._held += len(compact)
        if self._held >= CHUNK:
            self._decode(final=False)

    def close(self) -> _Decoded:
        self._decode(final=True)
        return _Decoded(self.size, self.sink.finish())

    def _decode(self, *, final: bool) -> None:
        text = "".join(self._pending)
        cut = len(text) if final else len(text) // 4 * 4
        part, rest = text[:cut], text[cut:]
        self._pending = [rest] if rest else []
        self._held = len(rest)
        if not part:
            return
        try:
            data = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            raise self._invalid() from None
        self.padded = part.endswith("=")
        self.size += len(data)
        if self.size > self.room:
            raise _bad(Phrase("the attachment {name} holds more than the {limit} bytes this "
                              "office accepts in one edXML message; send it as a separate "
                              "document, or ask the administrator to raise [edxml] max_mib in "
                              "lienthong.toml", name=self.name, limit=self.room))
        self.sink.write(data)

    def _invalid(self) -> EdxmlError:
        return _bad(Phrase("the attachment {name} is not valid base64, so its bytes cannot be "
                           "recovered; export the message again from the document system",
                           name=self.name))


class _StreamingTarget(ElementTree.TreeBuilder):
    """The tree of the message, except the text of ``AttachmentEncoded/Attachment/
    ContentTransferEncoded`` (in the root's namespace), which is decoded as it arrives
    instead of being kept (``decoded`` maps each such element to its outcome)."""

    def __init__(self, limits: Limits, sink_for: SinkFactory) -> None:
        super().__init__()
        self.limits = limits
        self.sink_for = sink_for
        self.decoded: dict[ElementTree.Element, _Decoded] = {}
        self._path: list[str] = []
        self._ns: str | None = None
        self._attachments = 0
        self._total = 0
        self._name: str | None = None
        self._stream: _Base64Stream | None = None

    def start(self, tag: Any, attrs: Any) -> ElementTree.Element:
        if self._ns is None:
            self._ns = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
        if self._stream is not None:
            raise _bad(Phrase("the attachment {name} holds elements where only base64 text "
                              "belongs; export the message again from the document system",
                              name=self._stream.name))
        self._path.append(tag)
        element = super().start(tag, attrs)
        if self._at(("AttachmentEncoded", "Attachment")):
            self._attachments += 1
            self._name = None
            if self._attachments > self.limits.max_attachments:
                raise _bad(Phrase("the message has more than {limit} attachments; at most "
                                  "that many are accepted in one message",
                                  limit=self.limits.max_attachments))
        elif self._at(("AttachmentEncoded", "Attachment", "ContentTransferEncoded")):
            name = repr(self._name) if self._name else f"#{self._attachments}"
            self._stream = _Base64Stream(self.sink_for(self._attachments),
                                         self.limits.max_attachment_bytes - self._total, name)
        return element

    def data(self, data: str) -> None:
        if self._stream is not None:
            self._stream.feed(data)
        else:
            super().data(data)

    def end(self, tag: Any) -> ElementTree.Element:
        element = super().end(tag)
        if self._stream is not None:
            outcome = self._stream.close()
            self._stream = None
            self._total += outcome.size
            self.decoded[element] = outcome
        elif self._at(("AttachmentEncoded", "Attachment", "AttachmentName")):
            self._name = (element.text or "").strip() or None
        self._path.pop()
        return element

    def _at(self, names: tuple[str, ...]) -> bool:
        """The element just started is root/<names...>, all in the root's namespace."""
        if len(self._path) != len(names) + 1:
            return False
        prefix = f"{{{self._ns}}}" if self._ns else ""
        return all(tag == prefix + name for tag, name in zip(self._path[1:], names,
                                                             strict=True))


def _parse_xml(chunks: Iterable[bytes], target: _StreamingTarget,
               limits: Limits) -> ElementTree.Element:
    parser = SafeElementTree.DefusedXMLParser(target=target, forbid_dtd=True,
                                              forbid_entities=True, forbid_external=True)
    fed = 0
    try:
        for chunk in chunks:
            fed += len(chunk)
            if fed > limits.max_bytes:
                raise too_large(fed, limits)
            parser.feed(chunk)
        return parser.close()
    except defusedxml.DTDForbidden:
        raise _bad(Phrase("the file declares a DOCTYPE, which edXML messages never need and "
                          "which can hide entity attacks; export it again without a DOCTYPE")) \
            from None
    except defusedxml.EntitiesForbidden:
        raise _bad(Phrase("the file declares XML entities (a way to make a small file expand "
                          "enormously); it was refused. Export it again from the document "
                          "system")) from None
    except defusedxml.ExternalReferenceForbidden:
        raise _bad(Phrase("the file refers to an outside file or web address (an external "
                          "entity); lienthong never fetches those. Export it again from the "
                          "document system")) from None
    except defusedxml.DefusedXmlException as exc:
        raise _bad(Phrase("the file uses an XML feature lienthong refuses ({feature})",
                          feature=type(exc).__name__)) from None
    except ElementTree.ParseError as exc:
        raise _bad(Phrase("the file is not well-formed XML ({problem}); export it again from "
                          "the document-management system", problem=str(exc))) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespace(root: ElementTree.Element) -> str:
    if root.tag.startswith("{"):
        ns = root.tag[1:].split("}", 1)[0]
        if ns != NAMESPACE:
            raise _bad(Phrase("the message's namespace is {found}, not the edXML namespace "
                              "{expected}; it is not a QCVN 102 message", found=repr(ns),
                              expected=repr(NAMESPACE)))
        return ns
    return ""


def _date(text: str, where: str) -> str:
    head = text.strip()[:10]
    for pattern in ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(head, pattern).date().isoformat()
        except ValueError:
            continue
    raise _bad(Phrase("{where}: {value} is not a date such as 2026/11/20", where=where,
                      value=repr(text)))


class _Reader:
    """Reading elements of one namespace (the message's), strictly."""

    def __init__(self, ns: str, decoded: dict[ElementTree.Element, _Decoded]) -> None:
        self.ns = ns
        self.decoded = decoded

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}" if self.ns else name

    def check_namespaces(self, root: ElementTree.Element) -> None:
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            ns = element.tag[1:].split("}", 1)[0] if element.tag.startswith("{") else ""
            if ns != self.ns:
                raise _bad(Phrase("the element {element} is in the namespace {found}, not "
                                  "the message's {expected}; a message mixing namespaces is "
                                  "refused rather than guessed at",
                                  element=repr(_local(element.tag)),
                                  found=repr(ns or "(none)"), expected=repr(self.ns or "(none)")))
            for attribute in element.attrib:
                if attribute.startswith("{") and not attribute.startswith(f"{{{XLINK}}}"):
                    raise _bad(Phrase("the element {element} has the attribute {attribute} "
                                      "from an unexpected namespace",
                                      element=repr(_local(element.tag)),
                                      attribute=repr(attribute)))

    def all(self, parent: ElementTree.Element, name: str) -> list[ElementTree.Element]:
        return parent.findall(self.q(name))

    def one(self, parent: ElementTree.Element | None, name: str) -> ElementTree.Element | None:
        if parent is None:
            return None
        found = self.all(parent, name)
        if len(found) > 1:
            raise _bad(Phrase("{parent} has {count} {name} elements where one is allowed; "
                              "lienthong will not choose between them",
                              parent=_local(parent.tag), count=len(found), name=name))
        return found[0] if found else None

    def required(self, parent: ElementTree.Element, name: str) -> ElementTree.Element:
        found = self.one(parent, name)
        if found is None:
            raise _bad(Phrase("{parent} has no {name}; the message is incomplete",
                              parent=_local(parent.tag), name=name))
        return found

    def text(self, parent: ElementTree.Element | None, name: str,
             limit: int = MAX_FIELD) -> str | None:
        element = self.one(parent, name)
        if element is None:
            return None
        return self.value(element, name, limit)

    def value(self, element: ElementTree.Element, name: str, limit: int = MAX_FIELD) -> str | None:
        if len(element):
            raise _bad(Phrase("{name} should hold text, not other elements", name=name))
        text = unicodedata.normalize("NFC", (element.text or "").strip())
        if not text:
            return None
        if len(text) > limit:
            raise _bad(Phrase("{name} is {length} characters; at most {limit} are allowed",
                              name=name, length=len(text), limit=limit))
        if any(unicodedata.category(c) in _FORBIDDEN and c not in _WHITESPACE_CONTROLS
               for c in text):
            raise _bad(Phrase("{name} contains control or invisible characters", name=name))
        return text

    def texts(self, parent: ElementTree.Element | None, name: str) -> tuple[str, ...]:
        if parent is None:
            return ()
        return tuple(v for v in (self.value(e, name) for e in self.all(parent, name)) if v)

    def fields(self, parent: ElementTree.Element | None,
               spec: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        return {attr: self.text(parent, element) for attr, element in spec}

    def organ(self, element: ElementTree.Element, where: str) -> Organ:
        values = self.fields(element, ORGAN_FIELDS)
        if not values["organ_id"]:
            raise _bad(Phrase("{where} has no OrganId (the office's identifier code)",
                              where=where))
        return Organ(**values)

    def header(self, element: ElementTree.Element) -> MessageHeader:
        sender = self.organ(self.required(element, "From"), "From")
        to = tuple(self.organ(e, "To") for e in self.all(element, "To"))
        code = self.one(element, "Code")
        promulgation = self.one(element, "PromulgationInfo")
        kind = self.one(element, "DocumentType")
        signer = self.one(element, "SignerInfo")
        other = self.one(element, "OtherInfo")
        places = self.one(element, "ToPlaces")
        appendixes = self.one(other, "Appendixes")
        return MessageHeader(
            sender=sender, to=to,
            code_number=self.text(code, "CodeNumber"),
            code_notation=self.text(code, "CodeNotation"),
            place=self.text(promulgation, "Place"),
            promulgation_date=self.date(promulgation, "PromulgationDate"),
            type=self.text(kind, "Type"), type_name=self.text(kind, "TypeName"),
            type_detail=self.text(kind, "TypeDetail"),
            subject=self.text(element, "Subject"),
            content=self.text(element, "Content", MAX_CONTENT),
            signer_competence=self.text(signer, "Competence"),
            signer_position=self.text(signer, "Position"),
            signer_full_name=self.text(signer, "FullName"),
            due_date=self.date(element, "DueDate"),
            to_places=self.texts(places, "Place"),
            other=OtherInfo(**self.fields(other, OTHER_FIELDS),
                            appendixes=self.texts(appendixes, "Appendix")),
            response_for=tuple(self.response_for(e) for e in self.all(element, "ResponseFor")),
            steering_type=self.text(element, "SteeringType"),
            document_id=self.text(element, "DocumentId"))

    def date(self, parent: ElementTree.Element | None, name: str) -> str | None:
        text = self.text(parent, name)
        return _date(text, name) if text else None

    def response_for(self, element: ElementTree.Element) -> ResponseFor:
        return ResponseFor(organ_id=self.text(element, "OrganId"),
                           code=self.text(element, "Code"),
                           promulgation_date=self.date(element, "PromulgationDate"),
                           document_id=self.text(element, "DocumentId"))

    def staff(self, element: ElementTree.Element | None) -> StaffInfo | None:
        return None if element is None else StaffInfo(**self.fields(element, STAFF_FIELDS))

    def business(self, trace_list: ElementTree.Element | None) -> Business:
        element = self.one(trace_list, "Bussiness")
        if element is None:
            return Business()
        doc_type = self.text(element, "BussinessDocType") or "0"
        if doc_type not in ("0", "1", "2", "3"):
            raise _bad(Phrase("BussinessDocType is {value}; it must be 0 (new), 1 (recall), "
                              "2 (update) or 3 (replace)", value=repr(doc_type)))
        replacements = []
        holder = self.one(element, "ReplacementInfoList")
        for info in self.all(element if holder is None else holder, "ReplacementInfo"):
            replaced = self.text(info, "DocumentId")
            if not replaced:
                raise _bad(Phrase("a ReplacementInfo has no DocumentId: which document does it "
                                  "name?"))
            replacements.append(Replacement(
                document_id=replaced,
                organ_ids=self.texts(self.one(info, "OrganIdList"), "OrganId")))
        return Business(doc_type=int(doc_type), reason=self.text(element, "BussinessDocReason"),
                        paper=self.text(element, "Paper"),
                        document_id=self.text(element, "DocumentId"),
                        staff=self.staff(self.one(element, "StaffInfo")),
                        replacements=tuple(replacements))

    def traces(self, trace_list: ElementTree.Element | None) -> tuple[Trace, ...]:
        if trace_list is None:
            return ()
        found = []
        for element in self.all(trace_list, "TraceHeader"):
            organ_id = self.text(element, "OrganId")
            if organ_id:
                found.append(Trace(organ_id, self.text(element, "Timestamp")))
        return tuple(found)

    def status(self, element: ElementTree.Element) -> StatusMessage:
        code = self.text(element, "StatusCode") or ""
        code = code.zfill(2) if code.isdigit() else code
        response = self.one(element, "ResponseFor")
        if response is None:
            raise _bad(Phrase("the status message has no ResponseFor: which document is it "
                              "about?"))
        if code not in STATUS_CODES:
            raise _bad(Phrase("the status message's StatusCode is {value}; it must be one of "
                              "{codes}", value=repr(code), codes=", ".join(STATUS_CODES)))
        try:
            return StatusMessage(sender=self.organ(self.required(element, "From"), "From"),
                                 status_code=code, response_for=self.response_for(response),
                                 description=self.text(element, "Description"),
                                 timestamp=self.text(element, "Timestamp"),
                                 staff=self.staff(self.one(element, "StaffInfo")))
        except ValueError as exc:
            raise _bad(Phrase("the status message's StatusCode is wrong: {problem}",
                              problem=str(exc))) from None

    def attachments(self, root: ElementTree.Element, limits: Limits) -> tuple[Attachment, ...]:
        encoded = self.one(root, "AttachmentEncoded")
        if encoded is None:
            return ()
        found: list[Attachment] = []
        for number, element in enumerate(self.all(encoded, "Attachment"), 1):
            name = self.text(element, "AttachmentName") or f"attachment-{number}"
            content = self.one(element, "ContentTransferEncoded")
            outcome = self.decoded.get(content) if content is not None else None
            if outcome is None:
                raise _bad(Phrase("the attachment {name} has no ContentTransferEncoded content",
                                  name=repr(name)))
            found.append(Attachment(
                name=name, data=outcome.kept if isinstance(outcome.kept, bytes) else b"",
                content_type=self.text(element, "ContentType") or "application/octet-stream",
                content_id=self.text(element, "ContentId"),
                description=self.text(element, "Description"),
                file=outcome.kept if isinstance(outcome.kept, str) else None,
                size=outcome.size))
        return tuple(found)
