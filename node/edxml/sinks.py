"""Where an edXML message's attachments go as they are decoded: kept, dropped, or (in
node/edxml/export.py) written to a file; the caller chooses, the parser only writes (pure)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


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

