"""The element tree of an edXML message, built safely as its bytes arrive (pure).

The bytes go to defusedxml with every DTD forbidden, so a DOCTYPE, entity declarations
(billion laughs) and external entities (``file:``, ``http:``) never reach the XML library's
resolver, and what is fed is counted against ``Limits.max_bytes``, so a file that grows is
caught too. The text of ``AttachmentEncoded/Attachment/ContentTransferEncoded`` never becomes
one string in the tree: :class:`StreamingTarget` passes it, :data:`CHUNK` characters at a
time, through a strict base64 decoder (:class:`Base64Stream`) into the attachment's sink,
within ``Limits`` (count, total bytes). Memory is therefore the header's elements plus a chunk
or two, whatever the attachments weigh.
"""
from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeElementTree

from lienthong.node.edxml.limits import CHUNK, EdxmlError, Limits, bad_edxml, too_large
from lienthong.node.edxml.sinks import AttachmentSink, SinkFactory
from lienthong.node.language.text import Phrase

_NO_WHITESPACE = {ord(c): None for c in " \t\r\n"}


@dataclass(frozen=True, slots=True)
class Decoded:
    """What came of one ContentTransferEncoded: its decoded size and what its sink kept."""

    size: int
    kept: bytes | str | None


class Base64Stream:
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

    def close(self) -> Decoded:
        self._decode(final=True)
        return Decoded(self.size, self.sink.finish())

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
            raise bad_edxml(Phrase("the attachment {name} holds more than the {limit} bytes this "
                                   "office accepts in one edXML message; send it as a separate "
                                   "document, or ask the administrator to raise [edxml] max_mib in "
                                   "lienthong.toml", name=self.name, limit=self.room))
        self.sink.write(data)

    def _invalid(self) -> EdxmlError:
        return bad_edxml(Phrase("the attachment {name} is not valid base64, so its bytes cannot be "
                                "recovered; export the message again from the document system",
                                name=self.name))


class StreamingTarget(ElementTree.TreeBuilder):
    """The tree of the message, except the text of ``AttachmentEncoded/Attachment/
    ContentTransferEncoded`` (in the root's namespace), which is decoded as it arrives
    instead of being kept (``decoded`` maps each such element to its outcome)."""

    def __init__(self, limits: Limits, sink_for: SinkFactory) -> None:
        super().__init__()
        self.limits = limits
        self.sink_for = sink_for
        self.decoded: dict[ElementTree.Element, Decoded] = {}
        self._path: list[str] = []
        self._ns: str | None = None
        self._attachments = 0
        self._total = 0
        self._name: str | None = None
        self._stream: Base64Stream | None = None

    def start(self, tag: Any, attrs: Any) -> ElementTree.Element:
        if self._ns is None:
            self._ns = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
        if self._stream is not None:
            raise bad_edxml(Phrase("the attachment {name} holds elements where only base64 text "
                                   "belongs; export the message again from the document system",
                                   name=self._stream.name))
        self._path.append(tag)
        element = super().start(tag, attrs)
        if self._at(("AttachmentEncoded", "Attachment")):
            self._attachments += 1
            self._name = None
            if self._attachments > self.limits.max_attachments:
                raise bad_edxml(Phrase("the message has more than {limit} attachments; at most "
                                       "that many are accepted in one message",
                                       limit=self.limits.max_attachments))
        elif self._at(("AttachmentEncoded", "Attachment", "ContentTransferEncoded")):
            name = repr(self._name) if self._name else f"#{self._attachments}"
            self._stream = Base64Stream(self.sink_for(self._attachments),
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


def parse_xml(chunks: Iterable[bytes], target: StreamingTarget,
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
        raise bad_edxml(Phrase("the file declares a DOCTYPE, which edXML messages never need "
                               "and which can hide entity attacks; export it again without a "
                               "DOCTYPE")) from None
    except defusedxml.EntitiesForbidden:
        raise bad_edxml(Phrase("the file declares XML entities (a way to make a small file expand "
                               "enormously); it was refused. Export it again from the document "
                               "system")) from None
    except defusedxml.ExternalReferenceForbidden:
        raise bad_edxml(Phrase("the file refers to an outside file or web address (an external "
                               "entity); lienthong never fetches those. Export it again from the "
                               "document system")) from None
    except defusedxml.DefusedXmlException as exc:
        raise bad_edxml(Phrase("the file uses an XML feature lienthong refuses ({feature})",
                               feature=type(exc).__name__)) from None
    except ElementTree.ParseError as exc:
        raise bad_edxml(Phrase("the file is not well-formed XML ({problem}); export it again from "
                               "the document-management system", problem=str(exc))) from None
