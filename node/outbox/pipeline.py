"""From a file in the clerk's outbox to a sealed, recorded dispatch; and on to ``sent/``.

Theory of operation. The watcher reports a stable path and its target folder. The outbox
then, in order, each step durable before the next:

1. resolves the target (a peer, a group, or ``a+b``) against the directory — an unknown
   target is refused into ``failed/`` with a reason, before anything is moved;
2. takes the file: it is moved into ``spool/<message_id>/payload``
   (node/outbox/intake.py, take_file), out of the clerk's way, with ``intake.json``
   describing it;
3. seals it for every recipient and the sender (node/spool/sealing.py, seal_spooled), in the
   same worker hop as the take (node/outbox/file_work.py, take_and_seal); files that reach
   this step together share that hop and the folder fsyncs of their takes
   (node/outbox/batches.py);
4. records the dispatch and one delivery per recipient in the store, with audit events,
   in one transaction; then tells the links that work is waiting. A small document is
   handed to the links as soon as that transaction is submitted (``on_sealed``): an idle
   connection OFFERs it while the commit runs, and sends its DATA only once the commit is
   durable (node/delivery/links.py, "Offered before it is recorded").

A crash between 2 and 4 leaves a spool folder without a dispatch row: ``recover`` seals and
records it again at start-up (same message ID, so a receiver that had somehow seen it would
recognise it). A refused file is moved whole into ``failed/`` beside a ``.reason.txt``.

When every recipient has returned a verified receipt, ``finish`` moves the plaintext to
``sent/<target>/`` with the receipts beside it and removes the spool folder. The store records
the destination first, so a crash in the middle is completed at the next start.
"""
from __future__ import annotations

import os
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, fail, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.keys.errors import KeysError
from lienthong.node.core.access import access_policy
from lienthong.node.core.errors import NodeError
from lienthong.node.documents.petitions import (
    PETITION_TYPE,
    is_petition,
    petition_reference,
    public_meta,
)
from lienthong.node.edxml.intake import is_edxml
from lienthong.node.language.text import Phrase, from_error
from lienthong.node.outbox.batches import TakeBatches
from lienthong.node.outbox.dispatches import DispatchBatch
from lienthong.node.outbox.edxml_drop import prepare_edxml
from lienthong.node.outbox.file_work import move_to_failed, read_meta_and_seal
from lienthong.node.outbox.refusals import Refused
from lienthong.node.outbox.sent import SentFolder
from lienthong.node.outbox.sidecars import (
    Prepared,
    SidecarFound,
    adopt_document,
    metadata_events,
    plain_document,
    prepare_document,
    sidecar_of,
)
from lienthong.node.outbox.walk import refuse_file
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.spool.kept_keys import KeptFileKeys
from lienthong.node.spool.own_documents import spool_bytes
from lienthong.node.spool.record import TakenFile
from lienthong.node.spool.recovery import SpoolState, recover_spool
from lienthong.node.spool.sealing import read_signed_digest
from lienthong.node.store.records import DispatchRow, NewDispatch
from lienthong.protocol.envelope import decode_header
from lienthong.protocol.events import Priority
from lienthong.protocol.fields import new_message_id

log = Logger(namespace="lienthong.outbox")


class TargetError(NodeError):
    """The folder a file was dropped in does not name a peer or group we can send to."""

    code = "unknown-target"


def resolve_recipients(runtime: NodeRuntime, target: str) -> list[str]:
    """Node IDs for an outbox folder name: a peer, a group, or peers/groups joined by '+'."""
    node_ids: dict[str, None] = {}
    for part in target.split("+"):
        try:
            for peer in runtime.directory.resolve_target(part, runtime.config.groups):
                node_ids[peer.node_id] = None
        except KeysError as exc:
            raise TargetError(Phrase("{problem}. Enrol the peer (lienthong peers add) or fix "
                                     "the folder name, then drop the file again.",
                                     problem=from_error(exc))) from None
    if runtime.node_id in node_ids:
        raise TargetError(Phrase("this node cannot send to itself"))
    return list(node_ids)


#: Files in the take-seal-record chain at once: a bound keeps the first documents of a mass drop
#: offered while the rest are taken, and is wide enough for take batches to fill
#: (docs/benchmarks.md, History 19 and 36).
INTAKE_PARALLEL = 256


def current_ids(runtime: NodeRuntime, node_ids: list[str]) -> list[str]:
    """A peer may have rotated its identity since the target was resolved: seal for the node
    ID it has now (the same office; its former ID is no longer in the directory)."""
    current = []
    for node_id in node_ids:
        peer = runtime.directory.peer_for_identity(node_id)
        current.append(peer.node_id if peer is not None else node_id)
    return list(dict.fromkeys(current))


def outcome_of(d: Deferred) -> Callable[[], Deferred]:
    """``d``'s outcome for others than its owner: each call of the result is a new Deferred
    that fires as ``d`` did or will (its result or its Failure), ``d``'s own chain untouched."""
    waiting: list[Deferred] = []
    settled: list[Any] = []

    def settle(result: Any) -> Any:
        settled.append(result)
        for other in waiting:
            _fire(other, result)
        waiting.clear()
        return result

    def follow() -> Deferred:
        other: Deferred = Deferred()
        if settled:
            _fire(other, settled[0])
        else:
            waiting.append(other)
        return other

    d.addBoth(settle)
    return follow


def _fire(d: Deferred, result: Any) -> None:
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(result)


def _audit_only() -> None:
    """A unit of work whose only writes are its audit events."""


class Outbox:
    def __init__(self, runtime: NodeRuntime, *, on_dispatch: Callable[[DispatchRow], None],
                 on_sealed: Callable[[NewDispatch, Callable[[], Deferred]], None] | None = None,
                 on_released: Callable[[Path], None] = lambda path: None,
                 parallel: int = INTAKE_PARALLEL) -> None:
        """``on_sealed(dispatch, when_recorded)``: a document sealed, its dispatch submitted and
        not yet committed; each ``when_recorded()`` is a new Deferred that fires with its row
        once committed, or fails with what refused it."""
        self._rt = runtime
        self._on_sealed = on_sealed
        #: Modes and group of what lands in failed/ (node/core/access.py).
        self._access = access_policy(runtime.config.node.clerks_group)
        self._on_dispatch = on_dispatch
        self._on_released = on_released
        self._slots = DeferredSemaphore(parallel)
        self._batches = TakeBatches(runtime)
        # Filed documents' spool folders are recycled for the takes (node/spool/ready.py).
        self._sent = SentFolder(runtime, self._batches.ready)
        self._dispatches = DispatchBatch(runtime)
        self.in_progress: set[Path] = set()
        #: File keys from sealing to offer, shared with the links (node/spool/kept_keys.py).
        self.kept_keys = KeptFileKeys()

    # -- intake ----------------------------------------------------------------------------

    def file_ready(self, path: Path, target: str) -> Deferred:
        """Called by the watcher for every stable candidate; never raises. At most
        ``parallel`` files are in the take-seal-record chain at once; the others wait their
        turn in the order they were reported."""
        if path in self.in_progress:
            return succeed(None)
        self.in_progress.add(path)
        d = self._slots.run(self._take, path, target)
        d.addErrback(lambda f: log.failure("could not take {path!r}", f, path=str(path)))
        d.addBoth(lambda _: self._release(path))
        return d

    def _release(self, path: Path) -> None:
        self.in_progress.discard(path)
        self._on_released(path)

    @inlineCallbacks
    def _take(self, path: Path, target: str):
        rt = self._rt
        if path.parent == rt.config.outbox:
            yield self._refuse(path, "misplaced", Phrase(
                "the file was dropped directly into outbox/; put it in the folder of the office "
                "(or group) it is for, e.g. outbox/<peer>/"))
            return
        try:
            recipients = resolve_recipients(rt, target)
        except TargetError as exc:
            yield self._refuse(path, "unknown-target", exc.text or str(exc))
            return
        message_id = new_message_id()
        if is_edxml(path):
            prepared = yield prepare_edxml(rt, path, target, recipients, message_id,
                                           self._refuse)
            if prepared is None:  # refused, or a recall or status: already handled
                return
        # Without a sidecar (most documents) the metadata is decided here, and the take's own
        # hop checks that there is none (node/outbox/sidecars.py); otherwise, or if it finds
        # one, the sidecar is read and validated first, in a hop of its own.
        else:
            prepared = plain_document(rt, path, recipients, message_id)
        current = current_ids(rt, recipients)
        while True:
            if prepared is None:
                prepared = yield prepare_document(rt, path, target, recipients, message_id)
                if prepared is None:  # metadata refused; document and sidecar are in failed/
                    return
            try:
                taken, sealed = yield self._submit(path, message_id, current, prepared)
            except SidecarFound:  # nothing was taken: read and validate the sidecar first
                prepared = None
                continue
            except Refused as exc:
                if prepared.sidecar is not None:
                    yield rt.io(prepared.abandon,
                                rt.config.failed if exc.belongs_in_failed else None)
                if exc.belongs_in_failed:
                    yield self._refuse(exc.path, exc.code, exc.reason_text,
                                       shown=petition_reference(message_id)
                                       if prepared.meta.kind == PETITION_TYPE else None)
                else:
                    log.info("left {path!r} in place: {reason}", path=str(path),
                             reason=exc.reason)
                return
            break
        recipients = current
        took = [("taken", {"message_id": message_id, "name": taken.original_name,
                           "target": target, "size": taken.size})]
        if sealed is not None and not isinstance(sealed, Failure):
            # The usual case: sealed in the take's hop (the sidecar, if any, is already in the
            # spool folder; finish moves it to sent/). The metadata and take audits go in the
            # dispatch's own unit, ahead of ``sealed``: one unit of database work per document
            # instead of two, and the audit chain still reads document-metadata, taken, sealed.
            yield self._seal_and_record(taken, recipients, succeed(sealed),
                                        before=[*metadata_events(prepared, taken), *took])
            return
        sealing = self._seal(taken, recipients) if sealed is None else fail(sealed)
        try:
            adopt_document(rt, prepared, taken, also=took, sidecar_moved=True)
        except BaseException:
            sealing.addErrback(lambda _: None)  # the take's own error is the one to report
            raise
        # The take's audit unit was submitted when adopt_document was called, and the
        # dispatch (if sealing succeeds after all) right behind it: the database thread
        # commits in submission order, so the audit chain still reads taken, sealed.
        # adopt_document logs its own failure.
        yield self._seal_and_record(taken, recipients, sealing)

    def _submit(self, path: Path, message_id: str, recipients: list[str],
                prepared: Prepared) -> Deferred:
        """Queue ``path`` for the next take-and-seal batch (node/outbox/batches.py)."""
        rt = self._rt
        try:  # a large file is taken alone; the watcher lstats on this thread too
            size = os.lstat(path).st_size
        except OSError:
            size = 0  # the take reports what is wrong with it

        readers = self._readers(recipients)
        seal = None if readers is None else {
            "spool_dir": rt.config.spool, "node_keys": rt.keys, "recipients": readers,
            "created": rt.now_text(), "version": rt.envelope_version(recipients),
            "streamed_above": self._streamed_above()}
        meta = prepared.meta.as_envelope_meta()
        if is_petition(meta):  # its real name travels sealed, in the petition object
            meta["petition"]["file_name"] = unicodedata.normalize("NFC", path.name)
        return self._batches.submit(prepared.meta.priority, path, {
            "outbox": rt.config.outbox, "spool_dir": rt.config.spool,
            "message_id": message_id, "max_bytes": rt.config.max_document_bytes,
            "now": rt.now_text(), "meta": meta}, seal,
            prepared.adopt if prepared.sidecar is not None else None,
            None if prepared.looked else sidecar_of(path), size=size)

    def _readers(self, recipients: list[str]) -> dict[str, Any] | None:
        """The recipients' encryption keys; None if one is missing (``_seal`` reports it)."""
        try:
            return {node_id: self._rt.directory.encryption_key_for(node_id)
                    for node_id in recipients}
        except Exception:  # noqa: BLE001 - reported where the sealing is awaited
            return None

    def _seal(self, taken: TakenFile, recipients: list[str]) -> Deferred:
        """Start sealing on the worker pool; any error arrives through the Deferred."""
        rt = self._rt
        try:
            readers = {node_id: rt.directory.encryption_key_for(node_id)
                       for node_id in recipients}
        except Exception:  # noqa: BLE001 - reported where the sealing is awaited
            return fail()
        return rt.io(read_meta_and_seal, rt.config.spool, taken, node_keys=rt.keys,
                     recipients=readers, created=rt.now_text(),
                     version=rt.envelope_version(recipients),
                     streamed_above=self._streamed_above())

    def _streamed_above(self) -> int | None:
        """Bytes above which a v3 document is offered before it is read (None: never)."""
        mib = self._rt.config.delivery.streamed_seal_above_mib
        return mib * 1024 * 1024 if mib else None

    @inlineCallbacks
    def _seal_and_record(self, taken: TakenFile, recipients: list[str],
                         sealing: Deferred | None = None,
                         before: Sequence[tuple[str, dict[str, Any]]] = ()):
        """Seal (or wait for the sealing already started) and record the dispatch, with the
        audit events ``before`` ahead of ``sealed`` in the same unit. If that unit fails,
        ``before`` (the take's audit) is written on its own: the take happened regardless."""
        rt = self._rt
        folder = rt.config.spool / taken.message_id
        if sealing is None:
            recipients = current_ids(rt, recipients)
            sealing = self._seal(taken, recipients)
        meta, sealed = yield sealing
        priority = int(meta.get("priority", Priority.NORMAL))
        header = sealed.header
        dispatch = NewDispatch(
            message_id=taken.message_id, name=taken.original_name, target=taken.target,
            spool_dir=str(folder), header_token=sealed.header_token, size=header.size,
            sha256=header.digest, ciphertext_size=header.ciphertext_size,
            priority=priority, meta=public_meta(meta, taken.message_id),
            recipients=tuple(recipients))
        # Recorded with the other documents sealed meanwhile, in one unit of work
        # (node/outbox/dispatches.py); this Deferred fires once that unit has committed.
        recorded = self._dispatches.add(dispatch, [*before, ("sealed", {
            "message_id": taken.message_id, "digest": header.digest,
            "name": taken.original_name, "recipients": recipients,
            "size": header.size, "envelope": header.version})])
        # Kept before the links may offer it: a small document's opening begins at its OFFER.
        self.kept_keys.keep(taken.message_id, sealed)
        # A petition is registered after its commit, before any link may send it.
        if self._on_sealed is not None and not is_petition(meta):
            self._on_sealed(dispatch, outcome_of(recorded))
        try:
            row = yield recorded
        except Exception:
            self.kept_keys.drop(taken.message_id)
            if before:
                d = rt.db_audited(_audit_only, events=list(before))
                d.addErrback(lambda failure: log.failure("could not write the audit of {mid}",
                                                         failure, mid=taken.message_id))
            raise
        if is_petition(meta):
            yield self._register_petition(taken.message_id, recipients, meta)
        # Logged by the batch that recorded it, one line per batch (node/outbox/dispatches.py).
        self._on_dispatch(row)

    @inlineCallbacks
    def _register_petition(self, message_id: str, recipients: list[str],
                           meta: dict[str, Any]):
        """A forwarded petition (chuyển đơn) enters the register, once per recipient."""
        rt = self._rt
        for node_id in recipients:
            yield rt.db(rt.store.record_petition, "sent", node_id, message_id,
                        meta["petition"], rt.now_text())

    @inlineCallbacks
    def _refuse(self, path: Path, code: str, said: str | Phrase, *, shown: str | None = None):
        """Into failed/ with ``said`` in the reason file in the node's language; audited and
        logged in English under ``shown`` (a petition's opaque reference) or the file's name."""
        rt = self._rt
        reason = str(said)
        try:
            where = yield rt.io(refuse_file, path, outbox=rt.config.outbox,
                                failed_dir=rt.config.failed, reason=said, code=code,
                                now=rt.now_text(), access=self._access,
                                language=rt.config.language)
        except OSError as exc:
            where = None
            log.error("could not move {path!r} to failed/: {error}", path=str(path), error=exc)
        yield rt.audit("refused", code=code, reason=reason, name=shown or path.name,
                       failed=str(where) if where and shown is None else None)
        log.warn("refused {path!r}: {reason}", path=shown or str(path), reason=reason)

    @inlineCallbacks
    def send_control(self, recipients: list[str], *, name: str, data: bytes,
                     meta: dict[str, Any], priority: int = int(Priority.URGENT)):
        """Send bytes the node produced (a status, a recall, a message) to ``recipients``.

        ``meta`` must carry ``kind``; it is signed into the envelope header. Returns the new
        message ID once the dispatch is recorded.
        """
        rt = self._rt
        names = "+".join(sorted(rt.peer_name(node_id) for node_id in recipients))
        message_id = new_message_id()
        taken = yield rt.io(spool_bytes, rt.config.spool, message_id=message_id, name=name,
                            data=data, target=names, meta=dict(meta, priority=priority),
                            now=rt.now_text())
        yield rt.audit("taken", message_id=message_id, name=name, target=names,
                       size=len(data), control_kind=meta.get("kind"))
        yield self._seal_and_record(taken, list(recipients))
        return message_id

    # -- recovery --------------------------------------------------------------------------

    @inlineCallbacks
    def recover(self):
        """Finish what a crash interrupted: unrecorded spool folders and half-finished sends."""
        rt = self._rt
        found = yield rt.io(recover_spool, rt.config.spool)
        for item in found:
            row = yield rt.db(rt.store.get_dispatch, item.message_id)
            if row is not None:
                yield self._resume_recorded(row)
                continue
            if item.state is SpoolState.INCOMPLETE:
                yield rt.io(shutil.rmtree, item.folder, True)
                continue
            if item.state is SpoolState.DAMAGED or item.taken is None:
                log.error("spool folder {folder} needs attention: {problem}",
                          folder=str(item.folder), problem=item.problem)
                yield rt.audit("spool-damaged", message_id=item.message_id, problem=item.problem)
                continue
            try:
                recipients = resolve_recipients(rt, item.taken.target)
            except TargetError as exc:
                log.error("cannot resume {mid}: {error}", mid=item.message_id, error=str(exc))
                continue
            log.info("resuming {mid} after a restart", mid=item.message_id)
            yield self._seal_and_record(item.taken, recipients)

    def _resume_recorded(self, row: DispatchRow) -> Deferred | None:
        """A recorded dispatch whose spool folder is still here: finish what a crash cut."""
        if row.state == "sending" and row.sha256 is None:
            return self._recover_digest(row)
        if row.state == "sent" or (row.state == "sending" and row.deliveries and
                                   all(d.state == "delivered" for d in row.deliveries)):
            return self.finish(row.message_id)
        if row.state == "failed":
            rt = self._rt
            return rt.io(move_to_failed, Path(row.spool_dir), rt.config.failed, row.name,
                         row.error or "delivery failed", rt.now_text(), self._access,
                         rt.config.language)
        return None

    @inlineCallbacks
    def _recover_digest(self, row: DispatchRow):
        """A streamed seal whose trailer may have been signed and kept before a crash cut the
        recording of its digest: record it from the kept trailer. None kept: the stream never
        reached its end, and the next transfer derives the digest again from byte 0."""
        rt = self._rt
        keys = {k.node_id: k.identity.verify_key.encode()
                for k in (rt.keys, *rt.former_keys.values())}
        sender = decode_header(row.header_token).sender
        try:
            signed = yield rt.io(read_signed_digest, row.spool_dir, row.header_token,
                                 keys.get(sender, b""))
        except OSError as exc:
            log.error("the kept trailer of {mid} cannot be read: {error}", mid=row.message_id,
                      error=str(exc))
            return
        if signed is not None:
            yield rt.db_audited(rt.store.record_digest, row.message_id, signed[1], events=[
                ("trailer-signed", {"message_id": row.message_id, "digest": signed[1],
                                    "size": signed[0], "recovered": True})])

    # -- completion ------------------------------------------------------------------------

    def finish(self, message_id: str, row: DispatchRow | None = None) -> Deferred:
        """All recipients have receipted: move the document to sent/ with its receipts
        (``lienthong.node.outbox.sent``: documents receipted together are filed together).

        ``row`` is the dispatch as read in the transaction that stored the last receipt
        (the links pass it); without it, it is read here.
        """
        self.kept_keys.drop(message_id)
        return self._sent.file(message_id, row)

    @inlineCallbacks
    def park_peer(self, node_id: str, reason: str):
        """A peer was revoked or removed: nothing more goes to it; its queue is parked."""
        rt = self._rt
        while True:
            rows = yield rt.db(rt.store.queued_deliveries, node_id, 500)
            if not rows:
                return
            for row in rows:
                yield rt.db(rt.store.fail_delivery, row.message_id, node_id, reason,
                            rt.now_text())
                yield rt.audit("delivery-parked", peer=node_id, message_id=row.message_id,
                               reason=reason)
                yield self.delivery_failed(row.message_id, reason)

    @inlineCallbacks
    def delivery_failed(self, message_id: str, reason: str):
        """A recipient refused for good; once nothing is left queued, park it in failed/."""
        rt = self._rt
        row = yield rt.db(rt.store.get_dispatch, message_id)
        if row is None or row.state != "sending":
            return
        if any(d.state == "queued" for d in row.deliveries):
            return
        yield rt.db(rt.store.fail_dispatch, message_id, reason, rt.now_text())
        self.kept_keys.drop(message_id)
        where = yield rt.io(move_to_failed, Path(row.spool_dir), rt.config.failed, row.name,
                            reason, rt.now_text(), self._access, rt.config.language)
        yield rt.audit("dispatch-failed", message_id=message_id, digest=row.sha256,
                       reason=reason, failed=str(where))
