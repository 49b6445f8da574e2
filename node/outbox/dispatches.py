"""Dispatches of documents sealed together, recorded in ONE unit of work.

Why: a burst of small documents is taken and sealed in batches of up to 32 in one worker hop
(``node/outbox/batches.py``), but each document then recorded its dispatch in a unit of work
of its own: a savepoint, three look-ups (known IDs, current node IDs, the last sequence
number), two inserts, its audit entries, and a Deferred fired back on the reactor. That was
the largest part of the sender's database thread in a burst of 2,000 (docs/benchmarks.md,
History 40). ``DispatchBatch`` records the first dispatch at once and every dispatch sealed
while that unit runs in the next one: one look-up of each kind and one insert per table for
the batch, each document's own audit entries (``document-metadata``, ``taken``, ``sealed``)
in its order, and one hand-back to the reactor. No timer: a lone document waits for nothing.

The guarantees are those of a dispatch recorded alone: each document's Deferred fires only
after the transaction holding its row, its deliveries and its audit entries has committed, and
a document the store refuses (a message ID already recorded, say) fails alone -- the batch is
then recorded again one document at a time, each in a savepoint of its own, so the others are
still recorded. A crash before the commit leaves every document of the batch taken, sealed and
unrecorded, which start-up already repairs one by one (``Outbox.recover``: sealed again, same
message ID; docs/design.md §6).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.core.failpoints import failpoint
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.audit_log import AuditEvent
from lienthong.node.store.database import Store
from lienthong.node.store.records import DispatchRow, NewDispatch

log = Logger(namespace="lienthong.outbox")

#: Most dispatches recorded in one unit of work (bounds one transaction).
DISPATCH_BATCH = 256

Events = Sequence[tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SealedDispatch:
    """A sealed document waiting for its dispatch row, with the audit entries that record it."""

    dispatch: NewDispatch
    events: tuple[tuple[str, dict[str, Any]], ...]


def _audit_events(events: Events, now_ms: str) -> list[AuditEvent]:
    out = []
    for kind, fields in events:
        fields = dict(fields)
        out.append(AuditEvent(kind, now_ms, peer=fields.pop("peer", None),
                              message_id=fields.pop("message_id", None),
                              digest=fields.pop("digest", None), detail=fields))
    return out


def _append_events(store: Store, events: Events, now_ms: str) -> None:
    store.append_audits(_audit_events(events, now_ms))


def record_dispatches(store: Store, batch: Sequence[SealedDispatch], now: str,
                      now_ms: str) -> list[DispatchRow | Exception]:
    """Record the dispatches of ``batch`` with their audit entries in one transaction (a unit
    of work for the database thread); each result is the document's row, or the error that
    refused it alone."""
    with store.transaction():
        try:
            with store.savepoint():
                rows: list[DispatchRow | Exception] = list(
                    store.add_dispatches([item.dispatch for item in batch], now))
                # Every document's entries in its order, in one INSERT for the batch.
                store.append_audits([event for item in batch
                                     for event in _audit_events(item.events, now_ms)])
                # Every row and audit entry of the batch is written, none committed. The stage
                # is a unit of several documents (a lone one is "after the take": §6).
                if len(batch) > 1:
                    failpoint("sender-before-dispatches-committed")
        except Exception:  # noqa: BLE001 - recorded one by one below, to find which
            return [_record_alone(store, item, now, now_ms) for item in batch]
        return rows


def _record_alone(store: Store, item: SealedDispatch, now: str,
                  now_ms: str) -> DispatchRow | Exception:
    try:
        with store.savepoint():
            row = store.add_dispatch(item.dispatch, now)
            _append_events(store, item.events, now_ms)
    except Exception as exc:  # noqa: BLE001 - this document's own refusal, handed back
        return exc
    return row


class DispatchBatch:
    """Sealed documents waiting for their dispatch rows, and the loop that records them."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.rt = runtime
        self._waiting: list[tuple[SealedDispatch, Deferred[DispatchRow]]] = []
        self._running = False
        #: Units of work run and dispatches recorded (for tests and the benchmark's notes).
        self.units = 0
        self.recorded = 0

    def add(self, dispatch: NewDispatch, events: Events) -> Deferred[DispatchRow]:
        """Queue ``dispatch``; fires with its row once committed, or fails with its refusal."""
        d: Deferred[DispatchRow] = Deferred()
        self._waiting.append((SealedDispatch(dispatch, tuple(events)), d))
        if not self._running:
            self._run()
        return d

    @inlineCallbacks
    def _run(self):
        self._running = True
        try:
            while self._waiting:
                batch = self._waiting[:DISPATCH_BATCH]
                del self._waiting[:DISPATCH_BATCH]
                try:
                    results = yield self.rt.db(
                        record_dispatches, self.rt.store, [item for item, _ in batch],
                        self.rt.now_text(), rfc3339_ms(self.rt.now()))
                except Exception:  # noqa: BLE001 - the commit failed: every document with it
                    failure = Failure()
                    for _, d in batch:
                        d.errback(failure)
                    continue
                self.units += 1
                sealed = [item.dispatch for (item, _), result in zip(batch, results, strict=True)
                          if not isinstance(result, Exception)]
                _log_sealed(sealed)
                for (_, d), result in zip(batch, results, strict=True):
                    if isinstance(result, Exception):
                        d.errback(Failure(result))
                    else:
                        self.recorded += 1
                        d.callback(result)
        finally:
            self._running = False


def _log_sealed(sealed: list[NewDispatch]) -> None:
    """One log line for the documents a unit recorded: a line per document was a tenth of the
    reactor's CPU in a burst of small documents (docs/benchmarks.md, History 55)."""
    if len(sealed) == 1:
        item = sealed[0]
        log.info("sealed {name!r} ({size} bytes) as {message_id} for {count} recipient(s)",
                 name=item.name, size=item.size, message_id=item.message_id,
                 count=len(item.recipients))
    elif sealed:
        log.info("sealed {count} documents: {documents}", count=len(sealed),
                 documents="; ".join(f"{item.name!r} ({item.size} bytes) as {item.message_id} "
                                     f"for {len(item.recipients)} recipient(s)"
                                     for item in sealed))
