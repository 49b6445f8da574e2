"""Envelope headers from this office's own records, with their sealed contents opened.

A v3 header (docs/protocol.md) keeps ``name``, ``created``, ``meta`` and the sizes sealed
under the document's file key; only its readers can see them. This office is a reader of
every envelope it recorded: of those it sealed (the sender keeps a copy of the file key
sealed to itself) and of those it received, under whichever identity it had then. The
yearly review reads ``created`` and ``meta`` of its records (reconciliation periods, the
report's months and types), so it opens each header with every encryption key this node ever
had. v1 and v2 headers are returned as they are.
"""
from __future__ import annotations

from lienthong.keys.identity import NodeKeys
from lienthong.protocol.envelope import EnvelopeHeader, decode_header, open_header
from lienthong.protocol.errors import NotForUs


def open_stored_header(token: str, keys: NodeKeys) -> EnvelopeHeader:
    """The header ``token`` from this node's records, readable. Raises ProtocolError (a
    damaged record, or NotForUs when no key of ours opens it)."""
    header = decode_header(token)
    if header.contents is not None:
        return header
    private = keys.encryption_private_by_kid()
    for reader in (header.sender, *header.recipients):
        entry = header.key_for(reader)
        if entry is not None and entry.kid in private:
            return open_header(header, node_id=reader, encryption_keys=private)
    raise NotForUs(f"message {header.message_id} holds no file key this office can open")
