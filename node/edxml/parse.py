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

The jobs are the modules': limits and the error in node/edxml/limits.py, attachment sinks
in node/edxml/sinks.py, the safe streaming parse in node/edxml/tree.py, the strict reading
of fields in node/edxml/reader.py; this module puts them in order.
"""
from __future__ import annotations

from collections.abc import Iterable

from lienthong.node.edxml.limits import CHUNK, Limits, bad_edxml, too_large
from lienthong.node.edxml.message import EdxmlDocument, StatusMessage
from lienthong.node.edxml.reader import FieldReader, local_name, message_namespace
from lienthong.node.edxml.sinks import SinkFactory, keep_in_memory
from lienthong.node.edxml.tree import StreamingTarget, parse_xml
from lienthong.node.language.text import Phrase


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
    target = StreamingTarget(limits, sink_for)
    root = parse_xml(chunks, target, limits)
    ns = message_namespace(root)
    reader = FieldReader(ns, target.decoded)
    if root.tag != reader.q("edXML"):
        raise bad_edxml(Phrase("the file is XML but not an edXML message (its root is {root}, "
                               "not 'edXML'); export it again from the document-management system "
                               "as edXML", root=repr(local_name(root.tag))))
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

