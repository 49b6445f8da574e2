"""Publishing received documents in batches: the receiver's group publish.

Why: every small document used to pay, on its own, three folder fsyncs, two commits and three
worker hops between its END and its receipt, and then two sidecar files, each fsynced, before
its receipt. With 2,000 documents dropped at once the folder fsyncs alone were an eighth of
the receiver's samples, and the hops and commits most of the rest of its time per document
(docs/benchmarks.md).

How: ``Finishing.finish`` proves a document (``IncomingStream.finish``: final tag, size, digest,
staging file fsynced) and reserves its inbox name, then hands it to ``Publisher.add``. The
first document is published at once; every document that finishes while a batch is being
published goes into the next batch (no timer: a lone document waits for nothing, a burst
shares everything). A batch is:

1. ONE unit of work (``Store.begin_publishes``: one look-up of each kind, one insert per
   table) recording every document as ``publishing``, with its inbox path, and its sidecars
   as due (``sidecars_due``);
2. ONE worker hop (``publish_batch``): link each staging file to its inbox name (``link``
   never overwrites) and sign each receipt; fsync each inbox folder once; drop the staging
   names and fsync each staging folder once;
3. ONE unit of work (``store_batch``: one UPDATE and one audit INSERT for the batch) marking
   every document ``stored`` with its receipt, and each document's audit entries in its
   order;
4. the batch is logged (one line per sender) and each caller gets its receipt, to send;
5. at most ``SIDECAR_FLUSH_SECONDS`` later, for every document stored meanwhile, ONE worker
   hop, which no receipt waits for (``place_sidecar_batch``): each document's
   ``NAME.meta.json`` and ``NAME.receipt.jws`` written under temporary names and renamed
   into place, none fsynced, then ONE flush of the inbox's file system (``syncfs``); then
   one statement drops exactly their ``sidecars_due`` rows.

Each document's steps happen in the same order as before, each durable before the next (the
crash argument of node/inbox/layout.py and docs/design.md §6): nothing is linked into the
inbox before its ``publishing`` row is committed, no staging name is dropped before its inbox
link is durable, and no receipt is returned before the ``stored`` commit. The sidecars hold
nothing the store does not (the receipt is in the ``stored`` row, the metadata is the header
and the row): a crash before their rows are dropped leaves the rows, and the next start
writes them again from the store (``Recovery.recover_sidecars``); a clerk sees no sidecar or a
whole one. Only the fsyncs and commits are shared. A document whose step fails is refused on
its own (a unit of work that meets a refusal is undone and run again one document at a time,
each in a savepoint; a ``publishing`` row left behind is completed or forgotten by recovery,
as before); the others of its batch go on.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.keys.identity import NodeKeys
from lienthong.node.core import fence
from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.syncfs import sync_file_systems, watch
from lienthong.node.documents.petitions import public_meta
from lienthong.node.edxml.export import copies_wanted
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.layout import Sidecars, place_sidecars
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.audit_log import AuditEvent
from lienthong.node.store.database import Store
from lienthong.node.store.records import NewReceived
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.receipt import issue_receipt

log = Logger()

#: Most documents in one batch (bounds one transaction and one worker hop).
PUBLISH_BATCH = 128
#: How long a stored document's sidecars wait for their hop, at most: one hop, one flush and
#: one statement serve every document stored meanwhile (in a burst, about a second of them).
SIDECAR_FLUSH_SECONDS = 1.0

#: About the most documents whose sidecars one worker hop writes (whole publication batches
#: are taken, so one hop may hold up to ``PUBLISH_BATCH`` - 1 more).
SIDECAR_BATCH = 512


@dataclass
class Publication:
    """One proven document waiting to be published: its staging file (fsynced), the inbox
    name reserved for it, and what its receipt and metadata need."""

    signer: str
    header: EnvelopeHeader
    staging: Path
    resume_record: Path
    final: Path
    receiving: NodeKeys       # the keys that sign the receipt
    meta: dict[str, Any]
    now: str
    #: The node the connection authenticated (``signer`` may be a former identity of it); a
    #: revoked one gets nothing recorded (``Store.begin_publish``).
    peer: str | None = None
    #: The petition staff's group when the document is a petition: its sidecars get it
    #: before a byte is written (node/inbox/layout.py ``place_sidecars``).
    sidecar_group: str | None = None
    done: Deferred = field(default_factory=Deferred)


def stored_events(peer: str, header: EnvelopeHeader,
                  final: Path) -> list[tuple[str, dict[str, Any]]]:
    """The audit entries of a document committed as ``stored``, in their order."""
    return [("received", {"peer": peer, "message_id": header.message_id,
                          "digest": header.sha256, "name": header.name,
                          "stored_as": final.name, "size": header.size,
                          "envelope": header.version}),
            ("receipt-issued", {"peer": peer, "message_id": header.message_id,
                                "digest": header.sha256})]


def record_stored(rt: NodeRuntime, peer: str, header: EnvelopeHeader, final: Path, now: str,
                  receipt: str) -> Deferred:
    """Commit a published document as ``stored`` with its receipt and audit entries (one
    document: a recovery)."""
    return rt.db_audited(rt.store.mark_stored, peer, header.message_id, receipt, now,
                         events=stored_events(peer, header, final))


def _audit_events(events: Sequence[tuple[str, dict[str, Any]]], now_ms: str) -> list[AuditEvent]:
    found = []
    for kind, fields in events:
        fields = dict(fields)
        found.append(AuditEvent(kind, now_ms, peer=fields.pop("peer", None),
                                message_id=fields.pop("message_id", None),
                                digest=fields.pop("digest", None), detail=fields))
    return found


def store_batch(store: Store, done: Sequence[tuple[Publication, str]],
                now_ms: str) -> list[None | Exception]:
    """Database thread, one unit of work: mark every published document of a batch
    ``stored`` with its receipt (one statement) and append each one's audit entries in its
    order. Each result is None, or the error that refused that document alone: when anything
    refuses, the batch is undone and recorded again one document at a time."""
    with store.transaction():
        try:
            with store.savepoint():
                store.mark_stored_many([(item.signer, item.header.message_id, receipt,
                                         item.now) for item, receipt in done])
                # The batch's entries in one INSERT, each document's in its order.
                store.append_audits([event for item, _ in done for event in _audit_events(
                    stored_events(item.signer, item.header, item.final), now_ms)])
                # Every row and audit entry of the batch is written, none committed.
                failpoint("receiver-before-stored-committed")
        except Exception:  # noqa: BLE001 - recorded one by one below, to find which
            return [_store_alone(store, item, receipt, now_ms) for item, receipt in done]
    return [None] * len(done)


def _store_alone(store: Store, item: Publication, receipt: str,
                 now_ms: str) -> None | Exception:
    try:
        with store.savepoint():
            store.mark_stored(item.signer, item.header.message_id, receipt, item.now)
            store.append_audits(_audit_events(
                stored_events(item.signer, item.header, item.final), now_ms))
    except Exception as exc:  # noqa: BLE001 - this document's own refusal, handed back
        return exc
    return None


class Publisher:
    """Documents waiting to be published, and the loop that publishes them in batches."""

    def __init__(self, runtime: NodeRuntime, names: InboxNames,
                 stored: Callable[[list[Publication]], None] = lambda items: None) -> None:
        """``stored(items)``: called once for a batch's documents just committed ``stored``,
        before any of their callers hears of it (the batch's one log line)."""
        self.rt = runtime
        self.names = names
        self.stored = stored
        self._waiting: list[Publication] = []
        self._running = False
        self._sidecars_waiting: list[tuple[list[tuple[str, str, Sidecars]], Deferred]] = []
        self._placing = False
        #: The next sidecar hop, once per ``SIDECAR_FLUSH_SECONDS`` (None: none planned).
        self._place_call: Any = None
        #: Those waiting for the sidecar hop now running to end (``flush_sidecars``).
        self._placed_waiting: list[Deferred] = []
        #: A repair asked for a hop at once while one ran: the next follows it at once.
        self._hurry = False

    def add(self, item: Publication) -> Deferred:
        """Queue a proven document; fires with its receipt once it is published and committed
        (fails with OSError if the file system refused a step, or with the store's error)."""
        self._waiting.append(item)
        if not self._running:
            self._run()
        return item.done

    @inlineCallbacks
    def _run(self):
        self._running = True
        try:
            while self._waiting:
                batch = self._waiting[:PUBLISH_BATCH]
                del self._waiting[:PUBLISH_BATCH]
                try:
                    yield self._publish(batch)
                except Exception:  # noqa: BLE001 - handed to every caller still waiting
                    failure = Failure()
                    for item in batch:
                        if not item.done.called:
                            item.done.errback(failure)
        finally:
            self._running = False

    @inlineCallbacks
    def _publish(self, batch: list[Publication]):
        rt = self.rt
        try:
            # One unit of work records the whole batch as ``publishing`` (Store.begin_publishes).
            begun = yield rt.db(rt.store.begin_publishes, [(NewReceived(
                sender_node_id=item.signer, message_id=item.header.message_id,
                name=item.header.name, stored_path=str(item.final.relative_to(rt.config.home)),
                size=item.header.size, sha256=item.header.sha256,
                header_token=item.header.token,
                meta=public_meta(item.header.meta, item.header.message_id),
                edxml_copies=copies_wanted(rt.config, item.header.meta)), item.now, item.peer)
                for item in batch])
            ready = _settle(batch, [(b is None, b) for b in begun])
            outcomes = (yield rt.io(publish_batch, self.names, ready)) if ready else []
        finally:
            for item in batch:
                self.names.release(item.final)
        published = _settle(ready, [(not isinstance(o, BaseException), o) for o in outcomes])
        if not published:
            return
        failpoint("receiver-after-fsync-before-commit")
        receipts = {id(item): outcome for item, outcome in zip(ready, outcomes, strict=True)}
        # One unit of work marks the batch ``stored`` with its audit entries (``store_batch``).
        stored = yield rt.db(store_batch, rt.store,
                             [(item, receipts[id(item)]) for item in published],
                             rfc3339_ms(rt.now()))
        kept = [item for item, error in zip(published, stored, strict=True) if error is None]
        if kept:
            try:
                self.stored(kept)
            except Exception:  # noqa: BLE001 - stored and receipted: a log line must not undo that
                log.failure("could not log {count} stored documents", count=len(kept))
        for item, error in zip(published, stored, strict=True):
            if error is None:
                item.done.callback(receipts[id(item)])
            else:
                item.done.errback(Failure(error))
        # The sidecars follow, without holding any receipt (nor the next batch).
        if kept:
            self.place_sidecars([(item.signer, item.header.message_id, Sidecars(
                item.final, item.meta, receipts[id(item)], item.sidecar_group))
                for item in kept])

    def place_sidecars(self, items: Sequence[tuple[str, str, Sidecars]], *,
                       flush_at_once: bool = False) -> Deferred:
        """Write the sidecars of stored documents (``(sender, message ID, sidecars)``), make
        them durable and drop their ``sidecars_due`` rows; fires when done (never fails). The
        documents stored within ``SIDECAR_FLUSH_SECONDS`` of the first go together: one hop
        writes all their sidecars (no fsync each) and flushes the file system once, then one
        statement drops their rows. ``flush_at_once`` (a repair at start, which waits for
        it) runs the hop now. A failure is logged and leaves the rows, so the next start
        writes them again (``Recovery.recover_sidecars``)."""
        done: Deferred = Deferred()
        self._sidecars_waiting.append((list(items), done))
        if flush_at_once:
            self._plan_place(0)
        else:
            self._plan_place(SIDECAR_FLUSH_SECONDS)
        return done

    def _plan_place(self, delay: float) -> None:
        """The next sidecar hop in ``delay`` seconds (0: now), or sooner if one is planned
        sooner; while one runs, the next is planned when it ends."""
        if self._placing:
            self._hurry = self._hurry or delay == 0
            return
        if self._place_call is not None:
            if self._place_call.getTime() <= self.rt.reactor.seconds() + delay:
                return
            self._place_call.cancel()
            self._place_call = None
        if delay == 0:
            self._place_waiting()
        else:
            self._place_call = self.rt.reactor.callLater(delay, self._place_waiting)

    def flush_sidecars(self) -> Deferred:
        """Write and flush now the sidecars waiting for their hop (at stop: their rows
        dropped, the next start need not write them again; before a recall moves a document
        aside: its sidecars go with it); fires once none is waiting (never fails)."""
        if self._placing:
            done: Deferred = Deferred()
            self._placed_waiting.append(done)
        elif self._sidecars_waiting:
            done = self._place_waiting()
        else:
            return succeed(None)
        # A hop takes at most SIDECAR_BATCH, and one already running took what waited when
        # it began: go again until nothing is left.
        return done.addCallback(lambda _: self.flush_sidecars())

    @inlineCallbacks
    def _place_waiting(self):
        if self._place_call is not None and self._place_call.active():
            self._place_call.cancel()   # run sooner (``flush_sidecars``)
        self._place_call = None
        if not self._sidecars_waiting:
            return
        self._placing = True
        taken, count = 0, 0
        try:
            while taken < len(self._sidecars_waiting) and count < SIDECAR_BATCH:
                count += len(self._sidecars_waiting[taken][0])
                taken += 1
            groups = self._sidecars_waiting[:taken]
            del self._sidecars_waiting[:taken]
            try:
                yield self._place([item for group, _ in groups for item in group])
            except Exception:  # noqa: BLE001 - logged; the rows stay due for the next start
                log.failure("could not write, flush or record sidecars")
            for _, done in groups:
                done.callback(None)
        finally:
            self._placing = False
            ended, self._placed_waiting = self._placed_waiting, []
            for done in ended:
                done.callback(None)
            hurry, self._hurry = self._hurry, False
            if self._sidecars_waiting:
                # A full batch left more behind, or a repair waits: the next hop at once;
                # else within the interval.
                self._plan_place(0 if hurry or count >= SIDECAR_BATCH
                                 else SIDECAR_FLUSH_SECONDS)

    @inlineCallbacks
    def _place(self, items: list[tuple[str, str, Sidecars]]):
        rt = self.rt
        outcomes = yield rt.io(place_sidecar_batch, self.names,
                               [sidecars for _, _, sidecars in items])
        for (_, mid, _), outcome in zip(items, outcomes, strict=True):
            if outcome is not None:
                log.warn("could not write the sidecars of {mid}: {error}; they will be "
                         "written at the next start", mid=mid, error=str(outcome))
        yield rt.db(rt.store.sidecars_written,
                    [(sender, mid) for (sender, mid, _), outcome
                     in zip(items, outcomes, strict=True) if outcome is None])


def _settle(items: list[Publication], results: Sequence[tuple[bool, Any]]) -> list[Publication]:
    """Fail the items whose step failed; return the others, in order."""
    going = []
    for item, (ok, value) in zip(items, results, strict=True):
        if ok:
            going.append(item)
        else:
            item.done.errback(value if isinstance(value, Failure) else Failure(value))
    return going


def publish_batch(names: InboxNames, items: Sequence[Publication]) -> list[str | BaseException]:
    """Worker pool: publish ``items`` (each already recorded as ``publishing``) and sign their
    receipts; returns each one's receipt, or the exception that stopped it. The fsyncs are
    shared, the order of each document's steps is that of node/inbox/layout.py."""
    outcomes: list[str | BaseException | None] = [None] * len(items)
    folders: dict[Path, list[int]] = {}
    for i, item in enumerate(items):
        folders.setdefault(item.final.parent, []).append(i)

    def step(indices: list[int], work: Any) -> None:
        for i in indices:
            if outcomes[i] is None:
                try:
                    work(items[i])
                except OSError as exc:
                    outcomes[i] = exc

    def fsync(folder: Path, indices: list[int]) -> None:
        if all(outcomes[i] is not None for i in indices):
            return
        try:
            fsync_dir(folder)
        except OSError as exc:
            for i in indices:
                outcomes[i] = outcomes[i] or exc

    # 1. Each staging file under its inbox name (FileExistsError rather than overwriting).
    for folder, indices in folders.items():
        with names.own_change(folder):
            step(indices, lambda item: _link(item.staging, item.final, names.access))
    # 2. Each inbox folder fsynced once: the links are durable before any staging name goes.
    #    The receipts are signed meanwhile (no sidecar is written here: they follow the
    #    ``stored`` commit, off the receipt's path; ``place_sidecar_batch``).
    receipts: dict[int, str] = {}

    def sign(item: Publication) -> None:
        receipts[id(item)] = issue_receipt(item.receiving.identity,
                                           recipient=item.receiving.node_id,
                                           header=item.header, time=item.now)

    for folder, indices in folders.items():
        step(indices, sign)
        failpoint("receiver-before-inbox-fsync")
        fsync(folder, indices)
    # 3. The staging names go, only once their inbox names are durable.
    staging_folders: dict[Path, list[int]] = {}
    for i, item in enumerate(items):
        staging_folders.setdefault(item.staging.parent, []).append(i)
    for folder, indices in staging_folders.items():
        step(indices, _drop_staging)
        fsync(folder, indices)
    return [outcome if outcome is not None else receipts[id(item)]
            for item, outcome in zip(items, outcomes, strict=True)]


def _link(staging: Path, final: Path, access: AccessPolicy) -> None:
    # A node of an active/standby pair publishes only while its lease is proven.
    fence.check()
    os.link(staging, final)
    access.settle(final)  # the staging file is the node's alone (0600)


def _drop_staging(item: Publication) -> None:
    item.staging.unlink()
    item.resume_record.unlink(missing_ok=True)


def place_sidecar_batch(names: InboxNames, items: Sequence[Sidecars]) -> list[Exception | None]:
    """Worker pool, after the ``stored`` commit: write each document's sidecars under a
    temporary name and rename them into place, fsyncing neither file nor folder
    (node/inbox/layout.py ``place_sidecars``, ``synced=False``), then make them all durable
    with one flush (``flush_sidecar_batch``). Each result is None, or the error that
    stopped that document (its ``sidecars_due`` row stays, for the next start)."""
    # Stored and receipted, the sidecars not yet begun (docs/design.md §6).
    failpoint("receiver-before-sidecars")
    # Written on the shared inbox only while this node's lease is proven (a standby that took
    # over writes what is left from its ``sidecars_due`` rows when it starts).
    fence.check()
    outcomes: list[Exception | None] = [None] * len(items)
    folders: dict[Path, list[int]] = {}
    for i, item in enumerate(items):
        folders.setdefault(item.final.parent, []).append(i)
    for folder, indices in folders.items():
        try:
            watch(folder)   # before the writes the later flush must report errors of
        except FileNotFoundError:
            pass            # the folder is gone, so are its documents: nothing is written
        except OSError as exc:
            for i in indices:
                outcomes[i] = exc
            continue
        placed = place_sidecars([items[i] for i in indices], names.access,
                                partial(names.own_change, folder), synced=False)
        for i, outcome in zip(indices, placed, strict=True):
            outcomes[i] = outcome
    written = [folder for folder, indices in folders.items()
               if any(outcomes[i] is None for i in indices)]
    if written:
        try:
            flush_sidecar_batch(written)
        except OSError as exc:
            outcomes = [outcome or exc for outcome in outcomes]
    return outcomes


def flush_sidecar_batch(folders: Sequence[Path]) -> None:
    """Worker pool: make the sidecars written in ``folders`` durable, contents and names, with
    one flush of each folder's file system (node/core/syncfs.py); their rows are dropped
    only after it returns."""
    # Sidecars written and renamed, not yet flushed (docs/design.md §6).
    failpoint("receiver-before-sidecars-flushed")
    sync_file_systems(folders)
