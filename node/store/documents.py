"""Documents as the offices know them: control requests, processing statuses and recalls.

Three tables (schema version 2):

* ``control_requests``: what the CLI asks of the running daemon (``lienthong mark``,
  ``lienthong recall``) without holding the keystore passphrase. The CLI inserts a ``new``
  row; the daemon signs and sends, then marks it ``done`` or ``failed`` with the reason
  (``CONTROL_REQUEST_TRANSITIONS`` in node/store/records.py).
* ``document_status``: signed statuses, kept once each (keyed by the token's SHA-256, so a
  status that arrives twice, or is re-issued after a crash, is one row). The sender keeps
  those its recipients report; a recipient keeps its own, to check the next one it signs
  against ``PROCESSING_TRANSITIONS``.
* ``recalls``: recalls we sent (``sent``) and recalls we received (``accepted``/``refused``).

Control documents arrive like any document (``received`` rows, files under state/control/);
``unapplied_control`` finds those whose token was never recorded (a crash between the receipt
and applying it), so the daemon can apply them at start-up.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.engine import Connection

from lienthong.keys.identity import check_time
from lienthong.keys.jws import strict_json_object
from lienthong.node.store import schema as t
from lienthong.node.store.base import StoreBase, build
from lienthong.node.store.incoming import _row as _received_row
from lienthong.node.store.records import (
    CONTROL_REQUEST_KINDS,
    CONTROL_REQUEST_TRANSITIONS,
    ControlRequest,
    NewRecall,
    NewStatus,
    NotFound,
    RecallRow,
    ReceivedRow,
    StatusRow,
    StoreError,
    check_message_id,
    check_transition,
    meta_json,
)

_c = t.control_requests
_s = t.document_status
_rc = t.recalls
_r = t.received

#: The statuses that describe processing (recall answers are kept beside them).
_PROCESSING = ("registered", "assigned", "in-progress", "completed", "rejected")


def _request(row: Any) -> ControlRequest:
    return build(ControlRequest, row, payload=strict_json_object(row.payload.encode("utf-8")))


class DocumentMethods(StoreBase):
    """Control-request, status and recall methods of ``Store``."""

    # -- control requests ------------------------------------------------------------------

    def add_control_request(self, kind: str, message_id: str, payload: Mapping[str, Any],
                            now: str, *, peer: str | None = None) -> ControlRequest:
        """Ask the daemon to sign and send something; returns the new ``new`` request."""
        check_time(now)
        check_message_id(message_id)
        if kind not in CONTROL_REQUEST_KINDS:
            raise ValueError(f"control request kind {kind!r} is unknown")
        with self.transaction() as conn:
            result = conn.execute(insert(_c).values(
                kind=kind, message_id=message_id, peer=peer, payload=meta_json(payload),
                state="new", created_at=now))
            key = result.inserted_primary_key
            if key is None:  # SQLite and PostgreSQL always report it for a one-row insert
                raise StoreError("the database did not report the new control request's ID")
            return _request(conn.execute(select(_c).where(_c.c.id == key[0])).one())

    def get_control_request(self, request_id: int) -> ControlRequest | None:
        with self._read() as conn:
            row = conn.execute(select(_c).where(_c.c.id == request_id)).first()
        return None if row is None else _request(row)

    def control_requests(self, state: str = "new", limit: int = 50) -> list[ControlRequest]:
        """Requests in ``state``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(_c).where(_c.c.state == state).order_by(_c.c.id)
                                .limit(limit)).all()
        return [_request(row) for row in rows]

    def finish_control_request(self, request_id: int, now: str, *,
                               error: str | None = None) -> None:
        """``done`` (no error) or ``failed`` (with the reason); a repeat is a no-op."""
        check_time(now)
        new = "done" if error is None else "failed"
        with self.transaction() as conn:
            row = conn.execute(select(_c.c.state).where(_c.c.id == request_id)).first()
            if row is None:
                raise NotFound(f"there is no control request {request_id}")
            if row.state == new:
                return
            check_transition(CONTROL_REQUEST_TRANSITIONS, f"control request {request_id}",
                             row.state, new)
            conn.execute(update(_c).where(_c.c.id == request_id)
                         .values(state=new, done_at=now, error=error))

    # -- statuses --------------------------------------------------------------------------

    def record_status(self, item: NewStatus, now: str) -> bool:
        """Keep a verified status; False if this very token is already kept."""
        check_time(now)
        with self.transaction() as conn:
            if self._has(conn, _s, item.token_sha256):
                return False
            conn.execute(insert(_s).values(
                message_id=item.message_id, peer_node_id=item.peer_node_id,
                sender_node_id=item.sender_node_id, status=item.status, note=item.note,
                register_number=item.register_number, token=item.token,
                token_sha256=item.token_sha256, receipt_sha256=item.receipt_sha256,
                time=item.time, received_at=now))
        return True

    def has_status(self, token_sha256: str) -> bool:
        with self._read() as conn:
            return self._has(conn, _s, token_sha256)

    def statuses_for(self, message_id: str, peer_node_id: str | None = None) -> list[StatusRow]:
        """Every status kept about ``message_id`` (from one office, if named), in order."""
        query = select(_s).where(_s.c.message_id == message_id)
        if peer_node_id is not None:
            query = query.where(_s.c.peer_node_id == peer_node_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(_s.c.time, _s.c.id)).all()
        return [build(StatusRow, row) for row in rows]

    def last_processing_status(self, message_id: str,
                               peer_node_id: str | Sequence[str]) -> str | None:
        """The latest processing status ``peer_node_id`` reported (None: none yet); several
        node IDs (one office's current and former identities) may be given."""
        ids = [peer_node_id] if isinstance(peer_node_id, str) else list(peer_node_id)
        with self._read() as conn:
            return conn.execute(
                select(_s.c.status).where(_s.c.message_id == message_id,
                                          _s.c.peer_node_id.in_(ids),
                                          _s.c.status.in_(_PROCESSING))
                .order_by(_s.c.time.desc(), _s.c.id.desc()).limit(1)).scalar()

    # -- recalls ---------------------------------------------------------------------------

    def record_recall(self, item: NewRecall, now: str) -> bool:
        """Keep a recall; False if this very token is already kept."""
        check_time(now)
        with self.transaction() as conn:
            if self._has(conn, _rc, item.token_sha256):
                return False
            conn.execute(insert(_rc).values(
                message_id=item.message_id, sender_node_id=item.sender_node_id,
                token=item.token, token_sha256=item.token_sha256, reason=item.reason,
                replaced_by=item.replaced_by, state=item.state, refusal=item.refusal,
                recalled_path=item.recalled_path, time=item.time, recorded_at=now))
        return True

    def recall_by_token(self, token_sha256: str) -> RecallRow | None:
        with self._read() as conn:
            row = conn.execute(select(_rc).where(_rc.c.token_sha256 == token_sha256)).first()
        return None if row is None else build(RecallRow, row)

    def recalls_for(self, message_id: str, sender_node_id: str | None = None) -> list[RecallRow]:
        query = select(_rc).where(_rc.c.message_id == message_id)
        if sender_node_id is not None:
            query = query.where(_rc.c.sender_node_id == sender_node_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(_rc.c.id)).all()
        return [build(RecallRow, row) for row in rows]

    # -- received documents, seen from here ------------------------------------------------

    def stored_received(self, message_id: str) -> list[ReceivedRow]:
        """Documents stored in the inbox under ``message_id`` (one, unless two senders
        happened to pick the same random ID)."""
        with self._read() as conn:
            rows = conn.execute(select(_r).where(_r.c.message_id == message_id,
                                                 _r.c.state == "stored")).all()
        return [_received_row(row) for row in rows]

    def unapplied_control(self, kind: str, limit: int = 200) -> list[ReceivedRow]:
        """Stored control documents of ``kind`` ('status' or 'recall') whose token is not yet
        recorded: a crash came between their receipt and applying them."""
        table = _s if kind == "status" else _rc
        applied = select(table.c.token_sha256)
        query = (select(_r).where(_r.c.state == "stored",
                                  _r.c.meta.contains(f'"kind":"{kind}"'),
                                  _r.c.sha256.not_in(applied))
                 .order_by(_r.c.received_at).limit(limit))
        with self._read() as conn:
            return [_received_row(row) for row in conn.execute(query).all()]

    def unsettled_control(self, kind: str, outcomes: Sequence[str],
                          limit: int = 200) -> list[ReceivedRow]:
        """Stored control documents of ``kind`` that no audit entry of the ``outcomes`` kinds
        names by message ID: a crash came between their receipt and their outcome (the
        yearly review's heads, witnesses and summaries record every outcome in the audit)."""
        settled = exists().where(t.audit.c.message_id == _r.c.message_id,
                                 t.audit.c.kind.in_(list(outcomes)))
        query = (select(_r).where(_r.c.state == "stored",
                                  _r.c.meta.contains(f'"kind":"{kind}"'), ~settled)
                 .order_by(_r.c.received_at).limit(limit))
        with self._read() as conn:
            return [_received_row(row) for row in conn.execute(query).all()]

    @staticmethod
    def _has(conn: Connection, table: Any, token_sha256: str) -> bool:
        return conn.execute(select(table.c.id).where(table.c.token_sha256 == token_sha256)
                            ).first() is not None
