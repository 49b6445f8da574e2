"""Filing delivered documents into ``sent/``, a batch at a time.

Theory of operation. Once every recipient of a document has returned a verified receipt (and
it is committed), the document moves from its spool folder to ``sent/<target>/`` with the
receipts and a summary beside it. Doing that one document at a time cost four thread hops,
two database units and an fsync of ``sent/<target>/`` per document: with a thousand small
documents receipted within seconds, that work rivalled the delivery itself
(docs/benchmarks.md). ``SentFolder.file`` queues the document; the first one goes at once and
the ones queued meanwhile go together, in the same steps, each step durable before the next:

1. the store's dispatch rows (only for documents queued without one: a recovery);
2. a name in ``sent/<target>/`` for each (worker pool; unique within the batch too);
3. the destinations recorded and the dispatches marked ``sent`` (one transaction): from here a
   crash is completed at the next start (``Outbox.recover`` files it again, idempotently);
4. every payload renamed into place, receipts and summaries written and each fsynced (one
   fsync pass: all written first), ONE fsync of each ``sent/`` folder the batch touched,
   the sidecar (if the clerk gave one) put beside its document, and only then the spool
   folders emptied and recycled for later takes, or removed (worker pool; node/spool/ready.py);
5. the ``delivered`` audit entries (one transaction).

A document refused by the store in step 3 (it cannot be ``sent``) is left alone and its
Deferred fails; the others of the batch go on.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.core.access import AccessPolicy, access_policy
from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import MAX_NAME_BYTES, clash_key, safe_file_name, unique_name
from lienthong.node.core.restricted import restricted_folder
from lienthong.node.core.writeback import sync_and_close, write_started
from lienthong.node.documents.metadata import SIDECAR_SUFFIX
from lienthong.node.documents.petitions import is_petition
from lienthong.node.outbox.sidecars import SPOOLED_SIDECAR
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.spool.ready import ReadyFolders
from lienthong.node.spool.record import INTAKE_FILE, META_FILE, PAYLOAD_FILE
from lienthong.node.spool.sealing import ENVELOPE, STREAM_ENDS, STREAM_HEADER
from lienthong.node.store.audit_log import AuditEvent
from lienthong.node.store.database import Store
from lienthong.node.store.records import DispatchRow

log = Logger(namespace="lienthong.outbox")

#: Room kept in a sent/ name for the longest file written beside it:
#: ``.<peer name, ≤ 64>.receipt.jws`` (a 250-byte document name must still get its receipts).
SENT_NAME_BYTES = MAX_NAME_BYTES - (1 + 64 + len(".receipt.jws"))
#: Most documents filed in one batch (bounds one transaction and one worker hop).
FILING_BATCH = 256


@dataclass
class _Item:
    message_id: str
    row: DispatchRow | None
    waiters: list[Deferred] = field(default_factory=list)
    sent_path: str | None = None
    outcome: Failure | None = None
    finished: bool = False

    def fail(self, failure: Failure) -> None:
        if not self.finished:
            self.finished, self.outcome = True, failure

    def fire(self) -> None:
        self.finished = True
        for waiter in self.waiters:
            if self.outcome is None:
                waiter.callback(None)
            else:
                waiter.errback(self.outcome)


@dataclass(frozen=True, slots=True)
class _Move:
    """Everything the worker needs to file one document (plain values, no store rows)."""

    spool_folder: Path
    sent_path: Path
    receipts: tuple[tuple[str, str], ...]
    names: dict[str, str]
    summary: dict[str, Any]
    #: Recorded as sent before (a recovery): nothing to do if its spool folder is gone.
    already_sent: bool = False


class SentFolder:
    """Files delivered documents into ``sent/`` in batches (see the module docstring)."""

    def __init__(self, runtime: NodeRuntime, ready: ReadyFolders | None = None) -> None:
        self._rt = runtime
        self._access = access_policy(runtime.config.node.clerks_group)
        #: Where filed documents' emptied spool folders go for later takes (None: removed).
        self._ready = ready
        self._queue: dict[str, _Item] = {}
        self._running = False

    def _folder_for(self, row: DispatchRow) -> Path:
        """``sent/<target>/``; a citizens' petition's restricted ``petitions/sent/<target>/``
        (made on the worker pool by ``_reserve_sent_paths``)."""
        config = self._rt.config
        if is_petition(row.meta):
            return config.petitions_folder / "sent" / safe_file_name(row.target)
        return config.sent / safe_file_name(row.target)

    def file(self, message_id: str, row: DispatchRow | None = None) -> Deferred:
        """Queue a document whose every receipt is committed; fires once it is in sent/.

        ``row`` is the dispatch as read in the transaction that stored the last receipt
        (the links pass it); without it, it is read from the store.
        """
        item = self._queue.get(message_id)
        if item is None:
            item = self._queue[message_id] = _Item(message_id, row)
        waiter: Deferred = Deferred()
        item.waiters.append(waiter)
        if not self._running:
            self._drain()
        return waiter

    @inlineCallbacks
    def _drain(self):
        self._running = True
        try:
            while self._queue:
                batch = list(self._queue.values())[:FILING_BATCH]
                for item in batch:
                    del self._queue[item.message_id]
                try:
                    yield self._file_batch(batch)
                except Exception:  # noqa: BLE001 - every unfinished item gets the failure
                    failure = Failure()
                    log.failure("could not file {count} delivered document(s) in sent/",
                                failure, count=len(batch))
                    for item in batch:
                        item.fail(failure)
                for item in batch:
                    item.fire()
        finally:
            self._running = False

    @inlineCallbacks
    def _file_batch(self, batch: list[_Item]):
        rt = self._rt
        unread = [item.message_id for item in batch if item.row is None]
        if unread:
            rows = yield rt.db(rt.store.dispatches_by_ids, unread)
            for item in batch:
                if item.row is None:
                    item.row = rows.get(item.message_id)
        # Each step goes on with the documents the step before left (rows found, names given,
        # files moved), paired with what it learnt about them.
        found = [(item, item.row) for item in batch if item.row is not None]
        # Step 2: names for those not yet given one (a recovery may find it recorded).
        fresh = [(item, row) for item, row in found if row.sent_path is None]
        for item, row in found:
            item.sent_path = row.sent_path
        if fresh:
            paths = yield rt.io(_reserve_sent_paths, self._access, [
                (self._folder_for(row), row.name) for _, row in fresh],
                restricted=(rt.config.petitions_folder, rt.config.petitions.group))
            outcomes = yield rt.db(rt.store.mark_dispatches_sent,
                                   [(item.message_id, str(path))
                                    for (item, _), path in zip(fresh, paths, strict=True)],
                                   rt.now_text())
            for (item, _), path, outcome in zip(fresh, paths, outcomes, strict=True):
                if outcome is None:
                    item.sent_path = str(path)
                else:
                    item.fail(Failure(outcome))
        named = [(item, row, item.sent_path) for item, row in found
                 if item.sent_path is not None]
        now = rt.now_text()
        moves = []
        for item, row, sent_path in named:
            receipts = tuple((d.peer_node_id, d.receipt) for d in row.deliveries if d.receipt)
            moves.append(_Move(Path(row.spool_dir), Path(sent_path), receipts,
                               {node_id: rt.peer_name(node_id) for node_id, _ in receipts},
                               {"message_id": item.message_id, "name": row.name,
                                "target": row.target, "size": row.size, "sha256": row.sha256,
                                "sent": now}, already_sent=row.state == "sent"))
        moved = yield rt.io(_move_all_to_sent, moves, self._access, self._ready)
        filed = [entry for entry, ok in zip(named, moved, strict=True) if ok]
        if not filed:
            return
        yield rt.db(_audit_delivered, rt.store, rfc3339_ms(rt.now()), [
            (item.message_id, row.sha256, sent_path,
             [d.peer_node_id for d in row.deliveries if d.receipt])
            for item, row, sent_path in filed])
        # One line for the batch: a line per document was a share of the reactor's CPU in a
        # burst of small documents (docs/benchmarks.md, History 55).
        if len(filed) == 1:
            log.info("{name!r} delivered to all recipients; kept in {path}",
                     name=filed[0][1].name, path=filed[0][2])
        else:
            log.info("{count} documents delivered to all recipients; kept in {paths}",
                     count=len(filed), paths=", ".join(str(path) for _, _, path in filed))


def _reserve_sent_paths(access: AccessPolicy, wanted: list[tuple[Path, str]],
                        restricted: tuple[Path, str] | None = None) -> list[Path]:
    """A free name in each folder for each document: free on disk, and not given to another
    document of the same batch (two ``report.pdf`` delivered together get two names). A
    folder below ``restricted`` (the petitions folder, its group) is made restricted."""
    given: dict[Path, set[str]] = {}
    out = []
    for folder, name in wanted:
        if restricted is not None and folder.is_relative_to(restricted[0]):
            restricted_folder(folder, restricted[1], below=restricted[0])
        else:
            access.make_folder(folder)
        taken = given.setdefault(folder, set())
        chosen = unique_name(functools.partial(_clashes, folder, taken),
                             safe_file_name(name, max_bytes=SENT_NAME_BYTES),
                             max_bytes=SENT_NAME_BYTES)
        taken.add(clash_key(chosen))
        out.append(folder / chosen)
    return out


def _clashes(folder: Path, given: set[str], name: str) -> bool:
    """Whether ``name`` is already given in ``folder``: on disk, or earlier in the batch."""
    return clash_key(name) in given or os.path.lexists(folder / name)


def _move_all_to_sent(moves: list[_Move], access: AccessPolicy,
                      ready: ReadyFolders | None = None) -> list[bool]:
    """File each document; idempotent, so safe to run again after a crash at any point.

    Every payload is renamed into place first (its receipts and summary written and fsynced
    beside it), then each ``sent/`` folder is fsynced once, and only then are the spool
    folders emptied and recycled into ``ready`` (or removed): a crash before that fsync finds
    the payload still in the spool (or already in place) and this runs again. Every file
    takes the access rule (node/core/access.py), the document too: not the mode or owner the
    clerk gave it. Returns, for each move, False when there was nothing left to file (filed
    before, its spool folder gone).
    """
    folders: dict[Path, None] = {}
    present: list[bool] = []
    unsynced: list[int] = []   # receipts and summaries written, their fsync still owed
    try:
        _place_all(moves, access, folders, present, unsynced)
    except BaseException:
        for fd in unsynced:
            os.close(fd)
        raise
    # One fsync pass: every file written and its writeback started, then each fsynced (the
    # first commits the journal for all), then each folder: a receipt's bytes are durable
    # before the spool folder that could write it again is gone (a power cut must not leave
    # an empty receipt in sent/).
    sync_and_close(unsynced)
    for folder in folders:
        fsync_dir(folder)
    for move, filed in zip(moves, present, strict=True):
        if not filed:
            continue
        sidecar_to_sent(move.spool_folder, move.sent_path, access)
        remove_spool_folder(move.spool_folder, ready)
    return present


def _place_all(moves: list[_Move], access: AccessPolicy, folders: dict[Path, None],
               present: list[bool], unsynced: list[int]) -> None:
    """Rename each payload into ``sent/`` and write its receipts and summary beside it,
    starting their writeback (``unsynced`` gets the descriptors to fsync)."""
    for move in moves:
        if move.already_sent and not move.spool_folder.exists():
            present.append(False)
            continue
        present.append(True)
        payload = move.spool_folder / PAYLOAD_FILE
        sent_path = move.sent_path
        access.make_folder(sent_path.parent)
        if payload.exists() and not sent_path.exists():
            os.rename(payload, sent_path)
        if sent_path.exists():
            access.settle(sent_path)
        for node_id, token in move.receipts:
            receipt_file = sent_path.with_name(
                f"{sent_path.name}.{move.names[node_id]}.receipt.jws")
            unsynced.append(_write_started(access, receipt_file, (token + "\n").encode("ascii")))
        summary = dict(move.summary, receipts={move.names[n]: n for n, _ in move.receipts})
        unsynced.append(_write_started(
            access, sent_path.with_name(sent_path.name + ".meta.json"),
            (json.dumps(summary, ensure_ascii=False, indent=2, sort_keys=True)
             + "\n").encode("utf-8")))
        folders[sent_path.parent] = None


def _write_started(access: AccessPolicy, path: Path, data: bytes) -> int:
    fd = access.create(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    try:
        write_started(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


#: What a spool folder holds once its payload and sidecar have gone to sent/ (every layout
#: this and earlier versions wrote: node/spool/record.py, node/spool/sealing.py).
_SPOOL_LEFTOVERS = (INTAKE_FILE, META_FILE, STREAM_ENDS, STREAM_HEADER, ENVELOPE)


def remove_spool_folder(folder: Path, ready: ReadyFolders | None = None) -> None:
    """Remove a filed document's spool folder (idempotent); with ``ready``, once emptied it
    is recycled for a later take instead, when ``ready`` keeps it (node/spool/ready.py).

    Its entries are known, so they are unlinked by name and the folder removed: a
    ``shutil.rmtree`` per document (open, scan, stat each entry) was about 6 % of the sender's
    samples in a burst of small documents (docs/benchmarks.md, History 47). Anything else found
    there (a temporary file a crash left, a payload not moved) falls back to ``rmtree``.
    Usually only ``intake.json`` is left (node/outbox/file_work.py seals small files before
    the take): that and the folder are tried first, two calls, before the older layouts'
    names."""
    for names in ((INTAKE_FILE,), _SPOOL_LEFTOVERS[1:]):
        for name in names:
            try:
                os.unlink(folder / name)
            except FileNotFoundError:
                pass
        if ready is not None:
            try:
                empty = not os.listdir(folder)
            except FileNotFoundError:
                return
            if empty and ready.recycle(folder):
                return
        try:
            os.rmdir(folder)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
    shutil.rmtree(folder)


def sidecar_to_sent(spool_folder: Path, sent_path: Path, access: AccessPolicy) -> None:
    """Put the spooled sidecar beside the sent document as ``NAME.meta.toml`` (idempotent),
    with the access rule."""
    spooled = spool_folder / SPOOLED_SIDECAR
    if spooled.exists():
        beside = sent_path.with_name(sent_path.name + SIDECAR_SUFFIX)
        os.replace(spooled, beside)
        access.settle(beside)
        fsync_dir(sent_path.parent)


def _audit_delivered(store: Store, now: str,
                     items: list[tuple[str, str, str, list[str]]]) -> None:
    """The ``delivered`` entries of a batch, in one transaction and one INSERT."""
    with store.transaction():
        store.append_audits([
            AuditEvent("delivered", now, message_id=message_id, digest=digest,
                       detail={"sent_path": sent_path, "recipients": recipients})
            for message_id, digest, sent_path, recipients in items])
