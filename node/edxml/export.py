"""Received documents and their statuses written out as edXML, for the office's own system.

* :func:`document_edxml`: the edXML of one received document. A document that came as edXML
  is parsed again and rebuilt (well-formed, every header field and attachment byte as sent);
  any other document gets a header written from its metadata
  (``mapping.header_from_meta``) with the document itself as the one attachment, and
  lienthong's message ID as DocumentId, so a status message about it finds it again.
* :func:`status_edxml`: a processing status as an edXML status message with its code.
* :func:`write_received_extras`: what ``[edxml]`` asks to be written beside a document as it
  arrives (its attachments unpacked into a folder, or an ``.edxml`` beside it). These are
  copies made after the ``stored`` commit; ``lienthong export --edxml`` makes them again.

Blocking functions (worker threads or the CLI).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lienthong.config.schema import NodeConfig
from lienthong.node.core.home import fsync_dir, write_synced
from lienthong.node.core.names import safe_file_name, unique_name
from lienthong.node.edxml.build import build_document, build_status
from lienthong.node.edxml.intake import EDXML_SUFFIX
from lienthong.node.edxml.mapping import META_KEY, header_from_meta
from lienthong.node.edxml.message import (
    CODE_OF_STATUS,
    Attachment,
    EdxmlDocument,
    Organ,
    ResponseFor,
    StatusMessage,
)
from lienthong.node.edxml.parse import EdxmlError, Limits, parse_message, too_large

#: Suffix of the folder a received edXML's attachments are unpacked into.
FOLDER_SUFFIX = ".files"


def limits_of(config: NodeConfig) -> Limits:
    max_bytes = config.edxml.max_mib * 1024 * 1024
    return Limits(max_bytes=max_bytes, max_attachment_bytes=max_bytes)


def organ_of(config: NodeConfig, name: str) -> Organ:
    """An office as edXML names it: its configured identifier code, else its lienthong name."""
    if name == config.node.name:
        return Organ(organ_id=config.edxml.organ_id or name,
                     organ_name=config.node.display_name)
    return Organ(organ_id=config.edxml.offices.get(name, name))


def _read(path: Path, limits: Limits) -> bytes:
    size = os.stat(path).st_size
    if size > limits.max_bytes:
        raise too_large(size, limits)
    with open(path, "rb") as handle:
        return handle.read(limits.max_bytes + 1)


def document_edxml(config: NodeConfig, path: Path, *, name: str, message_id: str,
                   sender: str, meta: Mapping[str, Any]) -> bytes:
    """The edXML bytes of the received document at ``path``."""
    limits = limits_of(config)
    data = _read(path, limits)
    if isinstance(meta.get(META_KEY), Mapping):
        message = parse_message(data, limits)
        if not isinstance(message, EdxmlDocument):
            raise EdxmlError("bad-edxml", "the received edXML is a status message, not a "
                             "document")
        return build_document(message)
    header = header_from_meta(meta, sender=organ_of(config, sender),
                              recipient=organ_of(config, config.node.name),
                              document_id=message_id)
    return build_document(EdxmlDocument(header=header, attachments=(
        Attachment(name=name, data=data, content_id="1"),)))


def edxml_document_id(meta: Mapping[str, Any], message_id: str) -> str:
    """The DocumentId the sender's system knows a document by (lienthong's ID otherwise)."""
    own = meta.get(META_KEY)
    if isinstance(own, Mapping) and isinstance(own.get("document_id"), str):
        return own["document_id"]
    return message_id


def status_edxml(config: NodeConfig, *, status: str, office: str, document_id: str,
                 time: str, note: str = "", register_number: str | None = None) -> bytes:
    """A processing status (``lienthong mark``) as an edXML status message. For 03
    (registered) Description holds the incoming-register number, as node/edxml/intake.py
    reads it."""
    description = register_number if status == "registered" else (note or None)
    return build_status(StatusMessage(
        sender=organ_of(config, office), status_code=CODE_OF_STATUS[status],
        response_for=ResponseFor(document_id=document_id), description=description,
        timestamp=time))


def _write_new(folder: Path, name: str, data: bytes) -> Path:
    target = folder / unique_name(lambda n: os.path.lexists(folder / n), safe_file_name(name))
    write_synced(target, data, mode=0o666)
    return target


def write_received_extras(config: NodeConfig, final: Path, *, message_id: str, sender: str,
                          meta: Mapping[str, Any]) -> Path | None:
    """After a document is stored: unpack a received edXML into ``NAME.files/``
    (``arrive_as = "folder"``) or write ``NAME.edxml`` beside another document
    (``write_beside``). Returns what was written, or None."""
    if meta.get("kind") != "document":
        return None
    if isinstance(meta.get(META_KEY), Mapping):
        if config.edxml.arrive_as != "folder":
            return None
        message = parse_message(_read(final, limits_of(config)), limits_of(config))
        if not isinstance(message, EdxmlDocument):
            return None
        folder = final.parent / unique_name(lambda n: os.path.lexists(final.parent / n),
                                            final.name + FOLDER_SUFFIX)
        folder.mkdir()
        for attachment in message.attachments:
            _write_new(folder, attachment.name, attachment.data)
        fsync_dir(folder)
        fsync_dir(final.parent)
        return folder
    if not config.edxml.write_beside:
        return None
    data = document_edxml(config, final, name=final.name, message_id=message_id,
                          sender=sender, meta=meta)
    written = _write_new(final.parent, final.name + EDXML_SUFFIX, data)
    fsync_dir(final.parent)
    return written
