"""Received documents and their statuses written out as edXML, for the office's own system.

* :func:`write_document_edxml`: the edXML of one received document, into a file. A document
  that came as edXML is checked (parsed again, its attachments decoded and dropped) and copied
  as it came, byte for byte (so a signature the sending system put in it still holds); any
  other document gets a header written from its metadata (``mapping.header_from_meta``) with
  the document itself as the one attachment, base64-encoded as it is read, and lienthong's
  message ID as DocumentId, so a status message about it finds it again.
* :func:`status_edxml`: a processing status as an edXML status message with its code.
* :func:`write_received_extras`: what ``[edxml]`` asks to be written beside a document as it
  arrives (its attachments unpacked into a folder, or an ``.edxml`` beside it). These are
  copies made after the ``stored`` commit; start-up recovery makes the ones a crash
  interrupted (``recovering``), and ``lienthong export --edxml`` makes them on demand.

Memory stays a few chunks whatever the size: nothing here holds a whole document or
attachment. Every file is written under a temporary name (``.edxml-<message ID>...``), fsynced,
then linked to its name (never replacing a file) or, for the folder, renamed; a crash leaves
at most the temporary name, which the next attempt removes. Every file and folder follows the
access rule (node/core/access.py). Blocking functions (worker threads or the CLI).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from lienthong.config.schema import NodeConfig
from lienthong.node.core.access import AccessPolicy, access_policy
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import safe_file_name, unique_name
from lienthong.node.edxml.build import ENCODE_BLOCK, build_status, write_document
from lienthong.node.edxml.intake import EDXML_SUFFIX, read_edxml
from lienthong.node.edxml.limits import EdxmlError, Limits
from lienthong.node.edxml.mapping import META_KEY, header_from_meta
from lienthong.node.edxml.message import (
    CODE_OF_STATUS,
    Attachment,
    EdxmlDocument,
    Organ,
    ResponseFor,
    StatusMessage,
)
from lienthong.node.edxml.sinks import AttachmentSink
from lienthong.node.language.text import Phrase

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


def came_as_edxml(meta: Mapping[str, Any]) -> bool:
    return isinstance(meta.get(META_KEY), Mapping)


def write_document_edxml(config: NodeConfig, source: Path, target: Path, *, name: str,
                         message_id: str, sender: str, meta: Mapping[str, Any]) -> None:
    """Write the edXML of the received document at ``source`` as the new file ``target``
    (FileExistsError if there is one)."""
    if came_as_edxml(meta):
        message = read_edxml(source, limits_of(config))
        if not isinstance(message, EdxmlDocument):
            raise EdxmlError("bad-edxml", Phrase("the received edXML is a status message, "
                                                 "not a document"))

        def copy(out: BinaryIO) -> None:
            with open(source, "rb") as handle:
                shutil.copyfileobj(handle, out, ENCODE_BLOCK)
        _write_new_file(target, _temporary(target.parent, message_id, EDXML_SUFFIX), copy,
                        _access(config))
        return
    header = header_from_meta(meta, sender=organ_of(config, sender),
                              recipient=organ_of(config, config.node.name),
                              document_id=message_id)
    message = EdxmlDocument(header=header, attachments=(
        Attachment(name=name, data=b"", content_id="1"),))

    def blocks(number: int) -> Iterator[bytes]:
        with open(source, "rb") as handle:
            yield from iter(lambda: handle.read(ENCODE_BLOCK), b"")
    _write_new_file(target, _temporary(target.parent, message_id, EDXML_SUFFIX),
                    lambda out: write_document(message, out, blocks), _access(config))


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


def _temporary(folder: Path, message_id: str, suffix: str) -> Path:
    return folder / f".edxml-{message_id}{suffix}.tmp"


def _access(config: NodeConfig) -> AccessPolicy:
    return access_policy(config.node.clerks_group)


def _write_new_file(target: Path, temporary: Path, write: Callable[[BinaryIO], None],
                    access: AccessPolicy) -> None:
    """``write`` into ``temporary`` (a leftover of a crash is replaced), fsync, then link it
    to ``target`` (FileExistsError rather than replacing a file) and fsync the folder."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        with os.fdopen(access.create(temporary, flags), "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(target.parent)


class _FileSink:
    """An attachment decoded straight into a file of the folder being made."""

    def __init__(self, path: Path, access: AccessPolicy) -> None:
        self.path = path
        fd = access.create(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC)
        self.handle = open(fd, "wb")  # noqa: SIM115 - closed in finish, or by the caller

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def finish(self) -> str:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return str(self.path)


def unpack_attachments(config: NodeConfig, source: Path, folder: Path, *,
                       message_id: str) -> Path:
    """Decode the attachments of the received edXML ``source`` into a new folder ``folder``,
    under their own (safe, distinct) names; returns ``folder``."""
    temporary = _temporary(folder.parent, message_id, ".files")
    if temporary.exists():
        shutil.rmtree(temporary)  # what a crash left half made
    access = _access(config)
    temporary.mkdir(mode=0o700)
    access.apply_folder(temporary)
    sinks: list[_FileSink] = []

    def sink_for(number: int) -> AttachmentSink:
        sinks.append(_FileSink(temporary / f"{number}.part", access))
        return sinks[-1]
    try:
        message = read_edxml(source, limits_of(config), sink_for)
        if not isinstance(message, EdxmlDocument):
            raise EdxmlError("bad-edxml", Phrase("the received edXML is a status message, "
                                                 "not a document"))
        taken: set[str] = set()
        for attachment in message.attachments:
            name = unique_name(taken, safe_file_name(attachment.name))
            taken.add(name)
            os.rename(attachment.file or "", temporary / name)
        fsync_dir(temporary)
        os.rename(temporary, folder)
    except BaseException:
        for sink in sinks:
            sink.handle.close()
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    fsync_dir(folder.parent)
    return folder


def copies_wanted(config: NodeConfig, meta: Mapping[str, Any]) -> bool:
    """Whether ``[edxml]`` asks for copies beside a received document with this metadata."""
    if meta.get("kind", "document") != "document":
        return False
    if came_as_edxml(meta):
        return config.edxml.arrive_as == "folder"
    return config.edxml.write_beside


def write_received_extras(config: NodeConfig, final: Path, *, message_id: str, sender: str,
                          meta: Mapping[str, Any], recovering: bool = False) -> Path | None:
    """After a document is stored: unpack a received edXML into ``NAME.files/``
    (``arrive_as = "folder"``) or write ``NAME.edxml`` beside another document
    (``write_beside``). Returns what was written, or None. ``recovering`` (start-up, after a
    crash between the ``stored`` commit and these copies): a ``NAME.files`` folder or
    ``NAME.edxml`` already there is the finished copy (each appears whole, by one rename or
    link), so nothing is written twice."""
    if not copies_wanted(config, meta):
        return None
    parent = final.parent

    def free(name: str) -> Path:
        return parent / unique_name(lambda n: os.path.lexists(parent / n), name)
    if came_as_edxml(meta):
        folder = parent / (final.name + FOLDER_SUFFIX)
        if recovering and folder.is_dir():
            return None
        return unpack_attachments(config, final, free(folder.name), message_id=message_id)
    beside = parent / (final.name + EDXML_SUFFIX)
    if recovering and os.path.lexists(beside):
        return None
    target = free(beside.name)
    write_document_edxml(config, final, target, name=final.name, message_id=message_id,
                         sender=sender, meta=meta)
    return target
