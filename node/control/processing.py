"""Processing statuses and recalls at a running node: asked for by the CLI, signed, sent, applied.

Theory of operation
-------------------
**Asking.** ``lienthong mark`` and ``lienthong recall`` must work without the keystore
passphrase, so they only insert a ``control_requests`` row. :class:`ControlDocuments` polls
for ``new`` rows every second (a ``LoopingCall`` on the node's reactor, like the directory
poll) and turns each into a signed object sent through ``Outbox.send_control`` -- the same
sealed, queued, retried and receipted path as any document -- then marks the request
``done``, or ``failed`` with a reason the CLI shows. A token's time is the request's
``created_at`` (when the clerk acted), so a request processed twice after a crash yields the
same token, which every store keeps once.

**Status** (the recipient R of message M reports to its sender S)::

    R: request(status) -> check M was received from S and the transition is allowed
       -> sign lienthong-status/1 {receipt_sha256 = SHA-256 of R's receipt for M}
       -> keep it (document_status) -> send_control to S
    S: on "status": verify signature (R's key), sender = S, M is ours, R was a recipient,
       receipt_sha256 = SHA-256 of the receipt R gave us (the chain) -> keep, audit

**Recall** (S recalls M from its recipients)::

    S: request(recall) -> sign lienthong-recall/1 -> keep it (recalls: sent)
       -> deliveries of M still queued are cancelled (never sent after a recall)
       -> send_control to every recipient
    R: on "recall": verify (S's key, R among recipients) -> move inbox/<S>/NAME and its
       sidecars to recalled/<S>/ (never deleted; clashes get a suffix), write the recall
       beside it -> keep it (recalls: accepted or refused) and, in the same transaction, a
       request to answer with a signed status recall-accepted / recall-refused (reason)

Handlers run after the control document is stored and receipted, and must be idempotent:
both key on the token's SHA-256. A crash between the receipt and the handler is repaired at
start-up: ``unapplied_control`` lists stored control documents whose token was never kept.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import unique_name
from lienthong.node.inbox.reception import META_SUFFIX, RECEIPT_SUFFIX
from lienthong.node.outbox.sidecars import sweep_staged
from lienthong.node.store.records import (
    PROCESSING_TRANSITIONS,
    ControlRequest,
    NewRecall,
    NewStatus,
    ReceivedRow,
)
from lienthong.protocol.envelope import EnvelopeHeader, decode_header
from lienthong.protocol.errors import ProtocolError, RecallMismatch
from lienthong.protocol.events import Priority
from lienthong.protocol.status import (
    RECALL_ANSWERS,
    check_chain,
    issue_recall,
    issue_status,
    token_sha256,
    verify_recall,
    verify_status,
)

log = Logger(namespace="lienthong.control")

POLL_SECONDS = 1.0
MAX_CONTROL_BYTES = 256 * 1024
CONTROL_KINDS = frozenset({"status", "recall"})
RECALL_SUFFIX = ".recall.jws"
RECALL_NOTE_SUFFIX = ".recall.txt"


class RequestRefused(Exception):
    """A control request that cannot be carried out; the reason is shown by the CLI."""


def install(node: Any) -> ControlDocuments:
    """Attach status and recall handling to a ``Node`` (call from its constructor)."""
    documents = ControlDocuments(node.rt, node.outbox)
    node.inbound.control["status"] = documents.on_status
    node.inbound.control["recall"] = documents.on_recall
    return documents


class ControlDocuments:
    def __init__(self, runtime: Any, outbox: Any) -> None:
        self.rt = runtime
        self.outbox = outbox
        self._poll: LoopingCall | None = None
        self._busy = False

    # -- lifecycle -------------------------------------------------------------------------

    @inlineCallbacks
    def start(self):  # type: ignore[no-untyped-def]
        """After the outbox's recovery: sweep staged metadata, apply what a crash left."""
        rt = self.rt
        yield rt.io(sweep_staged, rt.config.spool)
        for kind, apply in (("status", self.on_status), ("recall", self.on_recall)):
            rows = yield rt.db(rt.store.unapplied_control, kind)
            for row in rows:
                log.info("applying {kind} {mid} received before a restart", kind=kind,
                         mid=row.message_id)
                yield apply(row.sender_node_id, decode_header(row.header_token),
                            rt.config.home / row.stored_path)
        self._poll = LoopingCall(self.poll)
        self._poll.clock = rt.reactor
        self._poll.start(POLL_SECONDS, now=True)

    def stop(self) -> None:
        if self._poll is not None and self._poll.running:
            self._poll.stop()

    # -- requests from the CLI -------------------------------------------------------------

    @inlineCallbacks
    def poll(self):  # type: ignore[no-untyped-def]
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
    def _carry_out(self, request: ControlRequest):  # type: ignore[no-untyped-def]
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
    def _send_status(self, request: ControlRequest):  # type: ignore[no-untyped-def]
        rt = self.rt
        mid = request.message_id
        payload = request.payload
        status = payload.get("status")
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
            last = yield rt.db(rt.store.last_processing_status, mid, sorted(_own_ids(rt)))
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
    def _received(self, mid: str, sender: str | None):  # type: ignore[no-untyped-def]
        rows = yield self.rt.db(self.rt.store.stored_received, mid)
        rows = [r for r in rows if sender is None or r.sender_node_id == sender]
        if not rows:
            raise RequestRefused(f"no document with message ID {mid} was received here")
        if len(rows) > 1:
            raise RequestRefused(f"{mid} was received from several offices; name the sender")
        if rows[0].meta.get("kind") in CONTROL_KINDS:
            raise RequestRefused(f"{mid} is a {rows[0].meta['kind']} notice, not a document")
        return rows[0]

    @inlineCallbacks
    def _send_recall(self, request: ControlRequest):  # type: ignore[no-untyped-def]
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

    # -- control documents from peers ------------------------------------------------------

    @inlineCallbacks
    def on_status(self, peer: str, header: EnvelopeHeader, stored: Path):  # type: ignore[no-untyped-def]
        """A recipient reports what it did with a document we sent it."""
        rt = self.rt
        token = yield rt.io(_read_token, stored)
        try:
            info = verify_status(token, rt.directory.verify_key_for(peer), recipient=peer)
            if info.sender not in _own_ids(rt):
                raise _Mismatch(f"the status is about a document sent by {info.sender}, "
                                "not by this office")
            row = yield rt.db(rt.store.get_dispatch, info.message_id)
            # Delivered before the peer's identity rotation, the delivery names its former ID.
            office = _office_ids(rt, peer)
            delivery = next((d for d in row.deliveries if d.peer_node_id in office), None) \
                if row is not None else None
            if delivery is None:
                raise _Mismatch(f"{info.message_id} is not a document this office sent to "
                                f"{rt.peer_name(peer)}")
            chained = None
            if delivery.receipt is not None and info.receipt_sha256 is not None:
                check_chain(info, delivery.receipt)
                chained = True
        except (ProtocolError, KeysError, _Mismatch) as exc:
            yield rt.audit("security-refused", peer=peer, message_id=header.message_id,
                           code=getattr(exc, "code", "status-mismatch"), reason=str(exc),
                           kind="status")
            log.warn("refused a status from {peer}: {error}", peer=rt.peer_name(peer),
                     error=str(exc))
            return
        new = yield rt.db_audited(rt.store.record_status, NewStatus(
            message_id=info.message_id, peer_node_id=peer, sender_node_id=rt.node_id,
            status=info.status, note=info.note, register_number=info.register_number,
            token=info.token, token_sha256=info.token_sha256,
            receipt_sha256=info.receipt_sha256, time=info.time), rt.now_text(),
            events=[("status-received", {
                "peer": peer, "message_id": info.message_id, "status": info.status,
                "note": info.note, "register_number": info.register_number,
                "status_time": info.time, "chained": chained})])
        if new:
            log.info("{peer} reports {mid}: {status}", peer=rt.peer_name(peer),
                     mid=info.message_id, status=info.status)

    @inlineCallbacks
    def on_recall(self, peer: str, header: EnvelopeHeader, stored: Path):  # type: ignore[no-untyped-def]
        """The sender recalls a document: move it aside, keep the recall, answer it."""
        rt = self.rt
        token = yield rt.io(_read_token, stored)
        try:
            info = verify_recall(token, rt.directory.verify_key_for(peer), sender=peer)
            if not _own_ids(rt) & set(info.recipients):
                raise RecallMismatch("this office is not among the recall's recipients")
        except (ProtocolError, KeysError) as exc:
            yield rt.audit("security-refused", peer=peer, message_id=header.message_id,
                           code=getattr(exc, "code", "bad-recall"), reason=str(exc),
                           kind="recall")
            return
        known = yield rt.db(rt.store.recall_by_token, info.token_sha256)
        if known is not None:
            return  # already applied (a resend, or recovery after a crash)
        rows = yield rt.db(rt.store.stored_received, info.message_id)
        # Received before the sender's identity rotation, the document names its former ID.
        office = _office_ids(rt, peer)
        row = next((r for r in rows if r.sender_node_id in office), None)
        recalls = yield rt.db(rt.store.recalls_for, info.message_id)
        earlier = [r for r in recalls if r.sender_node_id in office]
        refusal, where, receipt_sha = None, None, None
        if row is None:
            refusal = f"this office has no document {info.message_id} from you"
        else:
            receipt_sha = token_sha256(row.receipt or "")
            if any(r.state == "accepted" for r in earlier):
                refusal = "this document was already recalled"
            elif row.meta.get("kind") in CONTROL_KINDS:
                refusal = f"{info.message_id} is a {row.meta['kind']} notice, not a document"
            else:
                where = yield rt.io(recall_files, rt.config.home, row, info.token,
                                    _recall_note(info, rt.peer_name(peer)))
        state = "refused" if refusal else "accepted"
        answer = "recall-refused" if refusal else "recall-accepted"
        note = refusal or (f"moved to {where.relative_to(rt.config.home)}" if where else
                           "the document had already left the inbox; the recall is recorded")
        store = rt.store

        def keep(now: str) -> None:
            with store.transaction():
                store.record_recall(NewRecall(
                    message_id=info.message_id, sender_node_id=peer, token=info.token,
                    token_sha256=info.token_sha256, reason=info.reason,
                    replaced_by=info.replaced_by, state=state, refusal=refusal,
                    recalled_path=str(where.relative_to(rt.config.home)) if where else None,
                    time=info.time), now)
                store.add_control_request("status", info.message_id, {
                    "status": answer, "note": note, "sender": peer,
                    "receipt_sha256": receipt_sha}, now, peer=peer)

        yield rt.db_audited(keep, rt.now_text(), events=[(f"recall-{state}", {
            "peer": peer, "message_id": info.message_id, "reason": info.reason,
            "replaced_by": info.replaced_by, "refusal": refusal,
            "recalled_path": str(where) if where else None})])
        log.info("{peer} recalled {mid}: {state}", peer=rt.peer_name(peer),
                 mid=info.message_id, state=state)
        self.poll()


def _own_ids(rt: Any) -> set[str]:
    """Every node ID this office has had: statuses and recalls about documents exchanged
    before an identity rotation name the former one (docs/keys.md §3)."""
    return {rt.node_id, *rt.former_keys, *rt.retired_ids}


def _office_ids(rt: Any, peer: str) -> set[str]:
    """Every node ID (current and former) of the peer ``peer`` names."""
    return {peer, *(key.kid for key in rt.directory.identities_of(peer))}


class _Mismatch(Exception):
    code = "status-mismatch"


def _read_token(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONTROL_BYTES + 1)
    if len(data) > MAX_CONTROL_BYTES:
        raise ValueError(f"{path.name} is too large to be a signed notice")
    return data.decode("ascii", errors="replace").strip()


def _recall_note(info: Any, sender_name: str) -> str:
    lines = [f"This document was recalled by {sender_name} (thu hồi văn bản).",
             f"Message ID:  {info.message_id}", f"Recalled at: {info.time}",
             f"Reason:      {info.reason}"]
    if info.replaced_by:
        lines.append(f"Replaced by: message {info.replaced_by} (văn bản thay thế)")
    lines.append("The signed recall is kept beside it (.recall.jws). Nothing was deleted.")
    return "\n".join(lines) + "\n"


def recall_files(home: Path, row: ReceivedRow, token: str, note: str) -> Path | None:
    """Move the delivered document and its sidecars to ``recalled/<sender>/``; None if the
    document is no longer in the inbox. Idempotent: a run cut short by a crash is finished
    under the same name (the signed recall, written first, marks it)."""
    source = home / row.stored_path
    folder = home / "recalled" / source.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    name = next((recall.name[:-len(RECALL_SUFFIX)] for recall in folder.glob(f"*{RECALL_SUFFIX}")
                 if recall.read_text(encoding="ascii", errors="replace").strip() == token), None)
    if name is None:
        if not source.exists():
            return None
        suffixes = ("", META_SUFFIX, RECEIPT_SUFFIX, RECALL_SUFFIX, RECALL_NOTE_SUFFIX)
        name = unique_name(lambda n: any(os.path.lexists(folder / (n + s)) for s in suffixes),
                           source.name)
        (folder / (name + RECALL_NOTE_SUFFIX)).write_text(note, encoding="utf-8")
        (folder / (name + RECALL_SUFFIX)).write_text(token + "\n", encoding="ascii")
        fsync_dir(folder)
    target = folder / name
    for suffix in (META_SUFFIX, RECEIPT_SUFFIX, ""):
        try:
            os.rename(source.with_name(source.name + suffix), target.with_name(name + suffix))
        except FileNotFoundError:
            pass
    fsync_dir(folder)
    fsync_dir(source.parent)
    return target if target.exists() else None
