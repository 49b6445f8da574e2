"""edXML DocumentIds and due edXML copies (schema version 5; docs/edxml.md).

``edxml_documents`` maps the DocumentId an office's document-management system gave a document
to lienthong's message ID, in each direction, so a recall, replacement or status message
naming it is found by an index rather than by reading recent rows. Rows are written in the
same transaction as the dispatch (``add_dispatches``) or the ``publishing`` row
(``begin_publish``), from the metadata's ``"edxml"`` object, so the two cannot disagree; an
abandoned publication takes its row with it.

``edxml_copies_due`` lists received documents whose edXML copies (node/edxml/export.py) are
not written yet: recorded with the ``publishing`` row when the caller asks for copies, removed
once they are written or have failed (and been audited). Start-up recovery writes the rest.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Connection

from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase

_e = t.edxml_documents
_c = t.edxml_copies_due
_d = t.dispatches
_r = t.received


def document_key(document_id: str) -> str:
    """The indexed key of a DocumentId (bounded, whatever the text's length)."""
    return hashlib.sha256(document_id.encode("utf-8")).hexdigest()


def edxml_document_id(meta: Mapping[str, Any]) -> str | None:
    """The DocumentId a document's metadata records (``meta["edxml"]["document_id"]``)."""
    edxml = meta.get("edxml")
    if meta.get("kind", "document") != "document" or not isinstance(edxml, Mapping):
        return None
    found = edxml.get("document_id")
    return found if isinstance(found, str) and found else None


def record_document_id(conn: Connection, direction: str, meta: Mapping[str, Any],
                       message_id: str, sender_node_id: str | None = None) -> None:
    """Inside the caller's transaction: index the document's DocumentId, if it has one."""
    document_id = edxml_document_id(meta)
    if document_id is not None:
        conn.execute(insert(_e).values(direction=direction, document_id=document_id,
                                       document_key=document_key(document_id),
                                       message_id=message_id, sender_node_id=sender_node_id))


def forget_received(conn: Connection, sender_node_id: str, message_id: str) -> None:
    """Inside the caller's transaction: an abandoned publication's rows go with it."""
    conn.execute(delete(_e).where(_e.c.direction == "received",
                                  _e.c.sender_node_id == sender_node_id,
                                  _e.c.message_id == message_id))
    conn.execute(delete(_c).where(_c.c.sender_node_id == sender_node_id,
                                  _c.c.message_id == message_id))


class EdxmlIdMethods(StoreBase):
    """edXML methods of ``Store``."""

    def sent_by_document_id(self, document_id: str) -> str | None:
        """The message ID of the latest document this office sent as ``document_id``."""
        query = (select(_e.c.message_id)
                 .select_from(_e.join(_d, _d.c.message_id == _e.c.message_id))
                 .where(_e.c.direction == "sent", _e.c.document_key == document_key(document_id),
                        _e.c.document_id == document_id)
                 .order_by(_d.c.seq.desc()).limit(1))
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def received_by_document_id(self, document_id: str) -> tuple[str, str] | None:
        """(message ID, sender node ID) of the latest stored document received as
        ``document_id``."""
        query = (select(_e.c.message_id, _e.c.sender_node_id)
                 .select_from(_e.join(_r, and_(_r.c.sender_node_id == _e.c.sender_node_id,
                                               _r.c.message_id == _e.c.message_id)))
                 .where(_e.c.direction == "received",
                        _e.c.document_key == document_key(document_id),
                        _e.c.document_id == document_id, _r.c.state == "stored")
                 .order_by(_r.c.received_at.desc(), _r.c.message_id.desc()).limit(1))
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.message_id, row.sender_node_id)

    def edxml_copies_due(self) -> list[tuple[str, str]]:
        """(sender node ID, message ID) of received documents whose edXML copies are due."""
        with self._read() as conn:
            return [(row.sender_node_id, row.message_id) for row in conn.execute(
                select(_c).order_by(_c.c.sender_node_id, _c.c.message_id))]

    def edxml_copies_done(self, sender_node_id: str, message_id: str) -> None:
        with self.transaction() as conn:
            conn.execute(delete(_c).where(_c.c.sender_node_id == sender_node_id,
                                          _c.c.message_id == message_id))
