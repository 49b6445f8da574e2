"""Group commit of verified receipts, for one peer link.

Why: with many small documents in flight the receipts come back in bursts, and recording each
in a unit of work of its own (read the delivery, update it, count what is pending, read the
dispatch, append the audit entry, then look up the queue again) was a large share of the
sender's CPU per document (docs/benchmarks.md). ``ReceiptBatch`` records the first receipt at
once, and every receipt verified while that transaction commits goes into the next one: no
timer, no added latency for a lone document, and one unit of work, one queue look-up and one
commit per burst.

The guarantees are unchanged: only receipts whose signature and digest were already verified
are queued here, and a document counts as delivered (``on_recorded`` says so) only after the
transaction recording its receipt has committed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, inlineCallbacks

from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.core.failpoints import failpoint
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.audit_log import AuditEvent
from lienthong.node.store.database import Store
from lienthong.node.store.records import DispatchRow, PeerRevoked, StoreError

#: Most receipts recorded in one unit of work (bounds one transaction).
RECEIPT_BATCH = 256


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose signature and digest were checked, waiting to be recorded."""

    message_id: str
    token: str
    digest: str
    receipt_time: str
    already: bool


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the store said about one receipt: ``error`` is None when it was recorded; then
    ``all_done`` tells whether it was the document's last one, and ``dispatch`` is the
    dispatch read in the same transaction (for the outbox to finish), when it was."""

    receipt: VerifiedReceipt
    error: Exception | None
    all_done: bool
    dispatch: DispatchRow | None


def late_receipt_reason(refusal: PeerRevoked) -> str:
    """Why a document whose receipt came after its recipient's revocation is not delivered,
    and what the clerk can do (it is written into the document's ``failed/`` reason)."""
    return (f"its receipt came after {refusal}, so it was not accepted and this document "
            "does not count as delivered. If that office must still get it, send it again "
            "once the office is enrolled again, or by another official channel.")


def record_receipts(store: Store, peer: str, batch: list[VerifiedReceipt], now: str,
                    now_ms: str) -> list[Recorded]:
    """Record verified receipts with their ``receipt-verified`` audit entries in one
    transaction (a unit of work for the database thread). A receipt the store refuses writes
    nothing and does not stop the others."""
    with store.transaction():
        outcomes = store.record_receipts(peer, [(item.message_id, item.token) for item in batch],
                                         now)
        # The entries in the receipts' order, in one INSERT (``fail_delivery`` appends none).
        events: list[AuditEvent] = []
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, PeerRevoked):
                # Too late: the revocation committed first. The delivery fails here, in the
                # same transaction as the refusal, so the audit shows revocation, refusal.
                reason = late_receipt_reason(outcome)
                try:
                    store.fail_delivery(item.message_id, peer, reason, now)
                except StoreError:
                    pass  # already delivered (a repeated receipt) or unknown: nothing to fail
                events.append(AuditEvent("receipt-refused", now_ms, peer=peer,
                                         message_id=item.message_id, digest=item.digest,
                                         detail={"code": outcome.code, "reason": reason}))
                continue
            if isinstance(outcome, Exception):
                continue
            events.append(AuditEvent("receipt-verified", now_ms, peer=peer,
                                     message_id=item.message_id, digest=item.digest,
                                     detail={"receipt_time": item.receipt_time,
                                             "duplicate": item.already}))
        store.append_audits(events)
        done = [item.message_id for item, outcome in zip(batch, outcomes, strict=True)
                if outcome is True]
        dispatches = store.dispatches_by_ids(done)
    return [Recorded(item, outcome if isinstance(outcome, Exception) else None,
                     outcome is True, dispatches.get(item.message_id))
            for item, outcome in zip(batch, outcomes, strict=True)]


class ReceiptBatch:
    """Verified receipts of one peer waiting for their transaction, and the loop that
    records them; ``on_recorded`` gets each committed batch's outcomes, in order."""

    def __init__(self, runtime: NodeRuntime, node_id: str,
                 on_recorded: Callable[[list[Recorded]], None]) -> None:
        self.rt = runtime
        self.node_id = node_id
        self._on_recorded = on_recorded
        self._waiting: dict[str, VerifiedReceipt] = {}
        self._running = False

    def __contains__(self, message_id: str) -> bool:
        """A receipt for this document is already waiting (or being recorded)."""
        return message_id in self._waiting

    def add(self, receipt: VerifiedReceipt) -> Deferred[None] | None:
        """Queue a verified receipt; returns the recording loop's Deferred when this call
        started it (None when a loop already runs and will take it)."""
        self._waiting.setdefault(receipt.message_id, receipt)
        if self._running:
            return None
        return self._run()

    @inlineCallbacks
    def _run(self):
        self._running = True
        try:
            while self._waiting:
                batch = list(self._waiting.values())[:RECEIPT_BATCH]
                try:
                    failpoint("sender-before-receipt-stored")
                    outcomes = yield self.rt.db(record_receipts, self.rt.store, self.node_id,
                                                batch, self.rt.now_text(),
                                                rfc3339_ms(self.rt.now()))
                finally:
                    # Failed or not, these leave the queue: a receipt the store could not
                    # take is asked for again by the next offer of the document.
                    for item in batch:
                        self._waiting.pop(item.message_id, None)
                self._on_recorded(outcomes)
        finally:
            self._running = False
