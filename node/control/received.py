"""Applying the statuses and recalls peers send: verify, keep, and move a recalled document aside.

Theory of operation
-------------------
The asking side is control/requests.py; this is the other end of each exchange::

    S: on "status": verify signature (R's key), sender = S, M is ours, R was a recipient,
       receipt_sha256 = SHA-256 of the receipt R gave us (the chain) -> keep, audit
    R: on "recall": verify (S's key, R among recipients) -> move inbox/<S>/NAME and its
       sidecars to recalled/<S>/ (never deleted; clashes get a suffix), write the recall
       beside it -> keep it (recalls: accepted or refused) and, in the same transaction, a
       request to answer with a signed status recall-accepted / recall-refused (reason)

Handlers run after the control document is stored and receipted, and must be idempotent:
both key on the token's SHA-256. A crash between the receipt and the handler is repaired at
start-up (:meth:`ReceivedControl.recover`): ``unapplied_control`` lists stored control
documents whose token was never kept.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.node.control.requests import CONTROL_KINDS, own_node_ids
from lienthong.node.core.access import AccessPolicy, access_policy
from lienthong.node.core.errors import NodeError
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import unique_name
from lienthong.node.inbox.layout import META_SUFFIX, RECEIPT_SUFFIX
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.records import NewRecall, NewStatus, ReceivedRow
from lienthong.protocol.envelope import EnvelopeHeader, decode_header
from lienthong.protocol.errors import ProtocolError, RecallMismatch
from lienthong.protocol.status import (
    RecallInfo,
    check_chain,
    token_sha256,
    verify_recall,
    verify_status,
)

log = Logger(namespace="lienthong.control")

MAX_CONTROL_BYTES = 256 * 1024
RECALL_SUFFIX = ".recall.jws"
RECALL_NOTE_SUFFIX = ".recall.txt"


class ReceivedControl:
    """Applies statuses and recalls from peers; ``answer`` carries out the status request a
    recall leaves behind (the asking side's poll)."""

    def __init__(self, runtime: NodeRuntime, *, answer: Callable[[], Any],
                 sidecars_written: Callable[[], Deferred[Any]] | None = None) -> None:
        self.rt = runtime
        self._answer = answer
        #: Fires once the sidecars waiting for their hop are written (the inbox writes them
        #: up to a second after the document): a recalled document's sidecars move with it.
        self._sidecars_written = sidecars_written or (lambda: succeed(None))

    @inlineCallbacks
    def recover(self) -> Generator[Deferred[Any], Any, None]:
        """At start, after the outbox's recovery: apply what a crash left unapplied."""
        rt = self.rt
        for kind, apply in (("status", self.on_status), ("recall", self.on_recall)):
            rows = yield rt.db(rt.store.unapplied_control, kind)
            for row in rows:
                log.info("applying {kind} {mid} received before a restart", kind=kind,
                         mid=row.message_id)
                yield apply(row.sender_node_id, decode_header(row.header_token),
                            rt.config.home / row.stored_path)

    @inlineCallbacks
    def on_status(self, peer: str, header: EnvelopeHeader,
                  stored: Path) -> Generator[Deferred[Any], Any, None]:
        """A recipient reports what it did with a document we sent it."""
        rt = self.rt
        token = yield rt.io(_read_token, stored)
        try:
            info = verify_status(token, rt.directory.verify_key_for(peer), recipient=peer)
            if info.sender not in own_node_ids(rt):
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
                           control_kind="status")
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
    def on_recall(self, peer: str, header: EnvelopeHeader,
                  stored: Path) -> Generator[Deferred[Any], Any, None]:
        """The sender recalls a document: move it aside, keep the recall, answer it."""
        rt = self.rt
        token = yield rt.io(_read_token, stored)
        try:
            info = verify_recall(token, rt.directory.verify_key_for(peer), sender=peer)
            if not own_node_ids(rt) & set(info.recipients):
                raise RecallMismatch("this office is not among the recall's recipients")
        except (ProtocolError, KeysError) as exc:
            yield rt.audit("security-refused", peer=peer, message_id=header.message_id,
                           code=getattr(exc, "code", "bad-recall"), reason=str(exc),
                           control_kind="recall")
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
                yield self._sidecars_written()
                where = yield rt.io(recall_files, rt.config.home, row, info.token,
                                    _recall_note(info, rt.peer_name(peer)),
                                    access_policy(rt.config.node.clerks_group))
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
        self._answer()


def _office_ids(rt: NodeRuntime, peer: str) -> set[str]:
    """Every node ID (current and former) of the peer ``peer`` names."""
    return {peer, *(key.kid for key in rt.directory.identities_of(peer))}


class _Mismatch(NodeError):
    code = "status-mismatch"


def _read_token(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONTROL_BYTES + 1)
    if len(data) > MAX_CONTROL_BYTES:
        raise ValueError(f"{path.name} is too large to be a signed notice")
    return data.decode("ascii", errors="replace").strip()


def _recall_note(info: RecallInfo, sender_name: str) -> str:
    lines = [f"This document was recalled by {sender_name} (thu hồi văn bản).",
             f"Message ID:  {info.message_id}", f"Recalled at: {info.time}",
             f"Reason:      {info.reason}"]
    if info.replaced_by:
        lines.append(f"Replaced by: message {info.replaced_by} (văn bản thay thế)")
    lines.append("The signed recall is kept beside it (.recall.jws). Nothing was deleted.")
    return "\n".join(lines) + "\n"


def recall_files(home: Path, row: ReceivedRow, token: str, note: str,
                 access: AccessPolicy) -> Path | None:
    """Move the delivered document and its sidecars to ``recalled/<sender>/``; None if the
    document is no longer in the inbox. Idempotent: a run cut short by a crash is finished
    under the same name (the signed recall, written first, marks it). Folders and the files
    written here have the access rule (node/core/access.py), as the moved ones already do."""
    source = home / row.stored_path
    folder = home / "recalled" / source.parent.name
    access.make_folder(folder)
    name = next((recall.name[:-len(RECALL_SUFFIX)] for recall in folder.glob(f"*{RECALL_SUFFIX}")
                 if recall.read_text(encoding="ascii", errors="replace").strip() == token), None)
    if name is None:
        if not source.exists():
            return None
        suffixes = ("", META_SUFFIX, RECEIPT_SUFFIX, RECALL_SUFFIX, RECALL_NOTE_SUFFIX)
        name = unique_name(lambda n: any(os.path.lexists(folder / (n + s)) for s in suffixes),
                           source.name)
        access.write_file(folder / (name + RECALL_NOTE_SUFFIX), note.encode("utf-8"))
        access.write_file(folder / (name + RECALL_SUFFIX), (token + "\n").encode("ascii"))
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
