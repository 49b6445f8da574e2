"""Carrying out the CLI's control requests: sign a status or a recall and send it.

Theory of operation
-------------------
``lienthong mark`` and ``lienthong recall`` must work without the keystore passphrase, so
they only insert a ``control_requests`` row. :class:`ControlRequests` polls for ``new`` rows
every second (a ``LoopingCall`` on the node's reactor, like the directory poll) and turns each
into a signed object sent through ``Outbox.send_control`` -- the same sealed, queued, retried
and receipted path as any document -- then marks the request ``done``, or ``failed`` with a
reason the CLI shows. A token's time is the request's ``created_at`` (when the clerk acted),
so a request processed twice after a crash yields the same token, which every store keeps
once. The peer's side (verify, keep, move a recalled document aside) is control/received.py.

**Status** (the recipient R of message M reports to its sender S)::

    R: request(status) -> check M was received from S and the transition is allowed
       -> sign lienthong-status/1 {receipt_sha256 = SHA-256 of R's receipt for M}
       -> keep it (document_status) -> send_control to S

A status that answers a recall (recall-accepted / recall-refused) is requested by
control/received.py itself, with the sender and receipt digest it already checked.

**Recall** (S recalls M from its recipients)::

    S: request(recall) -> sign lienthong-recall/1 -> keep it (recalls: sent)
       -> deliveries of M still queued are cancelled (never sent after a recall)
       -> send_control to every recipient
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.records import (
    PROCESSING_TRANSITIONS,
    ControlRequest,
    NewRecall,
    NewStatus,
    ReceivedRow,
)
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Priority
from lienthong.protocol.status import RECALL_ANSWERS, issue_recall, issue_status, token_sha256

log = Logger(namespace="lienthong.control")

POLL_SECONDS = 1.0
#: The ``kind`` of the control documents that are notices about another document.
#: Control documents that are not documents a clerk can mark (a petition refusal included).
CONTROL_KINDS = frozenset({"status", "recall", "refusal"})


class RequestRefused(NodeError):
    """A control request that cannot be carried out; the reason is shown by the CLI.

    ``text``, when given, is the reason as a translatable message (the web pages show it in
    the clerk's language); ``str(error)`` is always the English sentence.
    """

    code = "request-refused"

    def __init__(self, message: str | Phrase) -> None:
        super().__init__(str(message))
        self.text = message if isinstance(message, Phrase) else None


class ControlRequests:
    """Polls the CLI's control requests and signs and sends each status or recall."""

    def __init__(self, runtime: NodeRuntime, outbox: Outbox) -> None:
        self.rt = runtime
        self.outbox = outbox
        self._poll: LoopingCall | None = None
        self._busy = False

    def start(self) -> None:
        """Poll for requests (after the received notices a crash left are applied)."""
        self._poll = LoopingCall(self.poll)
        self._poll.clock = self.rt.reactor
        self._poll.start(POLL_SECONDS, now=True)

    def stop(self) -> None:
        if self._poll is not None and self._poll.running:
            self._poll.stop()

    @inlineCallbacks
    def poll(self) -> Generator[Deferred[Any], Any, None]:
        """Carry out every ``new`` control request; never raises (a LoopingCall would stop)."""
        if self._busy:
            return
        self._busy = True
        try:
            requests = yield self.rt.db(self.rt.store.control_requests, "new", 50)
            for request in requests:
                yield self._carry_out(request)
        except Exception:  # noqa: BLE001 - logged; the next tick tries again
            log.failure("control requests could not be read")
        finally:
            self._busy = False

    @inlineCallbacks
    def _carry_out(self, request: ControlRequest) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        try:
            if request.kind == "status":
                yield self._send_status(request)
            else:
                yield self._send_recall(request)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the CLI
            error = str(exc)
            if isinstance(exc, RequestRefused | ProtocolError | KeysError | ValueError):
                log.warn("control request {id} ({kind} {mid}) failed: {error}", id=request.id,
                         kind=request.kind, mid=request.message_id, error=error)
            else:
                log.failure("control request {id} failed", id=request.id)
                error = f"internal error (see the node's log): {exc!r}"
            yield rt.db_audited(rt.store.finish_control_request, request.id, rt.now_text(),
                                error=error, events=[("control-request-failed", {
                                    "message_id": request.message_id,
                                    "control_kind": request.kind, "reason": error[:500]})])
            return
        yield rt.db(rt.store.finish_control_request, request.id, rt.now_text())

    @inlineCallbacks
    def _send_status(self, request: ControlRequest) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        mid = request.message_id
        payload = request.payload
        status = payload.get("status")
        if not isinstance(status, str):
            raise RequestRefused(f"the status request for {mid} names no status")
        if status in RECALL_ANSWERS:
            # Written by on_recall, which already knows the sender and the receipt.
            sender, receipt_sha = payload["sender"], payload.get("receipt_sha256")
        else:
            row = yield self._received(mid, request.peer)
            sender, receipt_sha = row.sender_node_id, token_sha256(row.receipt or "")
        token = issue_status(rt.keys.identity, message_id=mid, sender=sender,
                             recipient=rt.node_id, status=status, time=request.created_at,
                             receipt_sha256=receipt_sha, note=payload.get("note", ""),
                             register_number=payload.get("register_number"))
        # The token is deterministic: if it is already kept, this request was interrupted
        # after signing, and only the sending is left to do.
        retry = yield rt.db(rt.store.has_status, token_sha256(token))
        if status not in RECALL_ANSWERS and not retry:
            last = yield rt.db(rt.store.last_processing_status, mid, sorted(own_node_ids(rt)))
            if status not in PROCESSING_TRANSITIONS.get(last, frozenset()):
                allowed = ", ".join(sorted(PROCESSING_TRANSITIONS[last])) or "none"
                raise RequestRefused(f"{mid} is already {last!r}; it cannot become "
                                     f"{status!r} (allowed next: {allowed})")
        yield rt.db(rt.store.record_status, NewStatus(
            message_id=mid, peer_node_id=rt.node_id, sender_node_id=sender, status=status,
            note=payload.get("note", ""), register_number=payload.get("register_number"),
            token=token, token_sha256=token_sha256(token), receipt_sha256=receipt_sha,
            time=request.created_at), rt.now_text())
        control_id = yield self.outbox.send_control(
            [sender], name=f"status-{mid[:12]}-{status}.jws", data=token.encode("ascii"),
            meta={"kind": "status", "message_id": mid, "status": status},
            priority=int(Priority.URGENT))
        yield rt.audit("status-sent", peer=sender, message_id=mid, status=status,
                       note=payload.get("note", ""),
                       register_number=payload.get("register_number"),
                       control_message_id=control_id)

    @inlineCallbacks
    def _received(self, mid: str,
                  sender: str | None) -> Generator[Deferred[Any], Any, ReceivedRow]:
        stored: list[ReceivedRow] = yield self.rt.db(self.rt.store.stored_received, mid)
        rows = [r for r in stored if sender is None or r.sender_node_id == sender]
        if not rows:
            raise RequestRefused(f"no document with message ID {mid} was received here")
        if len(rows) > 1:
            raise RequestRefused(f"{mid} was received from several offices; name the sender")
        if rows[0].meta.get("kind") in CONTROL_KINDS:
            raise RequestRefused(f"{mid} is a {rows[0].meta['kind']} notice, not a document")
        return rows[0]

    @inlineCallbacks
    def _send_recall(self, request: ControlRequest) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        mid = request.message_id
        row = yield rt.db(rt.store.get_dispatch, mid)
        if row is None:
            raise RequestRefused(f"no document with message ID {mid} was sent by this office")
        if row.meta.get("kind") in CONTROL_KINDS:
            raise RequestRefused(f"{mid} is a {row.meta['kind']} notice, not a document")
        reason, replaced_by = request.payload["reason"], request.payload.get("replaced_by")
        recipients = [d.peer_node_id for d in row.deliveries]
        token = issue_recall(rt.keys.identity, message_id=mid, sender=rt.node_id,
                             recipients=recipients, reason=reason, time=request.created_at,
                             replaced_by=replaced_by)
        yield rt.db(rt.store.record_recall, NewRecall(
            message_id=mid, sender_node_id=rt.node_id, token=token,
            token_sha256=token_sha256(token), reason=reason, replaced_by=replaced_by,
            state="sent", refusal=None, recalled_path=None, time=request.created_at),
            rt.now_text())
        cancelled = [d.peer_node_id for d in row.deliveries if d.state == "queued"]
        why = f"recalled by this office before it was delivered: {reason}"
        for peer in cancelled:
            yield rt.db_audited(rt.store.fail_delivery, mid, peer, why, rt.now_text(),
                                events=[("delivery-recalled", {"peer": peer, "message_id": mid,
                                                               "reason": reason})])
        if cancelled:
            yield self.outbox.delivery_failed(mid, why)
        control_id = yield self.outbox.send_control(
            recipients, name=f"recall-{mid[:12]}.jws", data=token.encode("ascii"),
            meta={"kind": "recall", "message_id": mid}, priority=int(Priority.VERY_URGENT))
        yield rt.audit("recall-sent", message_id=mid, reason=reason, replaced_by=replaced_by,
                       recipients=recipients, cancelled=cancelled,
                       control_message_id=control_id)


def own_node_ids(rt: NodeRuntime) -> set[str]:
    """Every node ID this office has had: statuses and recalls about documents exchanged
    before an identity rotation name the former one (docs/keys.md §3)."""
    return {rt.node_id, *rt.former_keys, *rt.retired_ids}
