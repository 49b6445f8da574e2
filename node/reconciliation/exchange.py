"""Reconciling with a peer: signed summaries exchanged, roots compared, lists when they differ.

Theory of operation
-------------------
One exchange, between the office that asks (A: ``lienthong reconcile`` or the monthly run)
and its peer (B), for one period; every message is a ``lienthong-reconciliation/1`` summary
(protocol/reconciliation.py) sent as a control document of kind ``reconciliation``::

    A: row requested -> sign "request" (roots only) -> send -> pending (retried every
       reconcile_retry until answered; shown as pending)
    B: verify -> its own summary; the days whose roots differ -> sign "answer" carrying B's
       items of those days -> send -> row agreed (no difference) or pending (lists awaited)
    A: verify -> roots equal: agreed; else compare A's items with B's for the differing days
       -> differs (the differences kept, audited, shown in status) -> sign "detail" carrying
       A's items of those days -> send
    B: verify -> compare -> differs (or agreed)

A difference is a warning, never repaired: nothing here changes a document, a receipt or a
record other than the exchange's own row. A summary that does not verify
(``reconciliation-summary-invalid``), is addressed to another office
(``reconciliation-not-for-us``), answers an exchange that does not exist
(``reconciliation-unknown-exchange``) or contradicts what is already held for that exchange
(``reconciliation-contradiction``) is refused with a ``security-refused`` audit event of that
code and stored nowhere. A summary is checked with the key its ``kid`` names among the peer's
identities (node/identity/signers.py), so one signed just before the peer rotated still
verifies. Every summary received ends with one audit entry naming its control document; at
start, :meth:`Reconciler.recover` applies again those a crash left without one. A request
resent by A (its retry) gets the answer already signed. The monthly run asks for the month
before, once per peer: the office with the smaller node ID asks first, the other only if
nothing came by the 3rd.
"""
from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.node.core.errors import NodeError
from lienthong.node.identity.signers import (
    check_signed_while_current,
    office_node_id,
    signer_key,
)
from lienthong.node.reconciliation.records import own_items
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.ports import ControlSender
from lienthong.node.store.records import ReconciliationRow
from lienthong.protocol.envelope import EnvelopeHeader, decode_header
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.reconciliation import (
    MAX_ITEMS,
    SUMMARY_TYP,
    Difference,
    Item,
    Side,
    SummaryInfo,
    carried_days,
    compare,
    decode_summary,
    digest_side,
    issue_summary,
    listed,
    month_before,
    parse_period,
    verify_summary,
)

log = Logger(namespace="lienthong.reconciliation")

SUMMARY_KIND = "reconciliation"
POLL_SECONDS = 1.0
#: How often the monthly run looks whether last month still needs reconciling.
MONTHLY_CHECK_SECONDS = 3600.0
#: A summary carrying lists for a year of a busy pair stays well under jws.MAX_TOKEN_BYTES.
MAX_SUMMARY_BYTES = 1024 * 1024
#: The audit kinds that record what became of a received summary (each names the control
#: document's message ID); a summary without any is applied again at start.
OUTCOME_KINDS = ("reconciliation-summary-received", "security-refused", "control-failed")


def _later(now: str, seconds: float) -> str:
    when = datetime.strptime(now[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return (when + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_reconciliation(store: Any, peer_node_id: str, period: str, now: str) -> Any:
    """Ask the running daemon to reconcile with a peer for a period (the CLI's door: no
    passphrase needed); returns the new ``requested`` row. Blocking."""
    parse_period(period)
    with store.transaction():
        row = store.add_reconciliation(exchange=new_message_id(), peer_node_id=peer_node_id,
                                       period=period, role="initiator", state="requested",
                                       now=now)
        store.append_audit("reconciliation-requested", now, peer=peer_node_id,
                           detail={"period": period, "exchange": row.exchange})
    return row


class Reconciler:
    """Carries out requested reconciliations, answers peers' summaries, retries the
    unanswered, and starts the monthly run."""

    def __init__(self, runtime: NodeRuntime, sender: ControlSender, *, retry: float,
                 monthly: bool) -> None:
        self.rt = runtime
        self.sender = sender
        self.retry = retry
        self.monthly = monthly
        self._loop: LoopingCall | None = None
        self._busy = False
        self._next_monthly = 0.0
        #: Summaries are applied one at a time: a request and its retry arriving together
        #: (a peer back from an outage, or a restart's recovery beside a new arrival) would
        #: each find no row for the exchange and both add one.
        self._applying = DeferredLock()

    def start(self) -> None:
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.rt.reactor
        self._loop.start(POLL_SECONDS, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    # -- A: asking -------------------------------------------------------------------------

    @inlineCallbacks
    def poll(self) -> Generator[Deferred[Any], Any, None]:
        """Start requested exchanges, resend unanswered ones that are due, and the monthly
        run; never raises (a LoopingCall would stop)."""
        if self._busy:
            return
        self._busy = True
        try:
            if self.monthly and self.rt.reactor.seconds() >= self._next_monthly:
                self._next_monthly = self.rt.reactor.seconds() + MONTHLY_CHECK_SECONDS
                yield self.start_monthly()
            rows = yield self.rt.db(self.rt.store.reconciliations,
                                    states=("requested", "pending"), role="initiator")
            now = self.rt.now_text()
            for row in reversed(rows):  # oldest first
                if row.state == "requested":
                    yield self._ask(row)
                elif row.next_attempt_at is not None and row.next_attempt_at <= now:
                    yield self._resend(row)
        except Exception:  # noqa: BLE001 - logged; the next tick tries again
            log.failure("reconciliation could not proceed")
        finally:
            self._busy = False

    @inlineCallbacks
    def start_monthly(self) -> Generator[Deferred[Any], Any, list[str]]:
        """Request last month's reconciliation with each trusted peer that has none yet and was
        enrolled before the month ended."""
        rt = self.rt
        now = rt.now_text()
        period = month_before(now)
        ends = parse_period(period).end
        records = yield rt.db(rt.store.list_peers)
        # A peer enrolled after the month ended exchanged nothing with us in it: comparing
        # two empty records would only add traffic (and a warning if the peer never answers).
        enrolled_in_time = {r.peer.node_id for r in records if r.added_at < ends}
        started = []
        for peer in sorted(p.node_id for p in rt.directory.peers if p.state == "trusted"):
            if peer not in enrolled_in_time:
                continue
            if rt.node_id > peer and int(now[8:10]) < 3:
                continue  # the peer asks first; we ask only if it has not by the 3rd
            known = yield rt.db(rt.store.reconciliations, peer_node_id=peer, period=period)
            if known:
                continue
            yield rt.db(request_reconciliation, rt.store, peer, period, now)
            started.append(peer)
        return started

    @inlineCallbacks
    def _ask(self, row: ReconciliationRow) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        period = parse_period(row.period)
        sent, received = yield rt.db(own_items, rt.store, self._ids(row.peer_node_id),
                                     period, rt.keys)
        now = rt.now_text()
        token = issue_summary(rt.keys.identity, role="request", exchange=row.exchange,
                              peer=row.peer_node_id, period=row.period, time=now,
                              sent=digest_side(sent), received=digest_side(received))
        yield rt.db(rt.store.update_reconciliation, row.id, now, state="pending",
                    own_summary=token, attempts=1, next_attempt_at=_later(now, self.retry))
        yield self._send(row.peer_node_id, token, row.period, "request")

    @inlineCallbacks
    def _resend(self, row: ReconciliationRow) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        now = rt.now_text()
        yield rt.db_audited(rt.store.update_reconciliation, row.id, now, state="pending",
                            attempts=row.attempts + 1, next_attempt_at=_later(now, self.retry),
                            events=[("reconciliation-retried", {
                                "peer": row.peer_node_id, "period": row.period,
                                "exchange": row.exchange, "attempt": row.attempts + 1})])
        log.info("no answer from {peer} to the reconciliation of {period}; asking again",
                 peer=rt.peer_name(row.peer_node_id), period=row.period)
        yield self._send(row.peer_node_id, row.own_summary or "", row.period, "request")

    def _send(self, peer: str, token: str, period: str, role: str) -> Deferred:
        return self.sender.send_control(
            [peer], name=f"reconciliation-{period}-{role}.jws", data=token.encode("ascii"),
            meta={"kind": SUMMARY_KIND, "period": period, "role": role})

    # -- summaries arriving ----------------------------------------------------------------

    @inlineCallbacks
    def recover(self) -> Generator[Deferred[Any], Any, int]:
        """At start: apply the summaries a crash left between their receipt and their outcome
        (each outcome is an audit entry naming the control document); returns how many."""
        rt = self.rt
        rows = yield rt.db(rt.store.unsettled_control, SUMMARY_KIND, OUTCOME_KINDS)
        for row in rows:
            log.info("applying reconciliation summary {mid} received before a restart",
                     mid=row.message_id)
            yield self.on_summary(row.sender_node_id, decode_header(row.header_token),
                                  rt.config.home / row.stored_path)
        return len(rows)

    def on_summary(self, peer: str, header: EnvelopeHeader, stored: Path) -> Deferred:
        """A peer's summary: a request to answer, an answer, or the lists after an answer;
        applied after any still being applied.

        Its outcome is audited last, naming the control document (``reconciliation-summary-
        received``, or ``security-refused`` with the code of the refusal), after whatever it
        asks for is sent: a crash before that leaves it to :meth:`recover`."""
        return self._applying.run(self._apply, peer, header, stored)

    @inlineCallbacks
    def _apply(self, peer: str, header: EnvelopeHeader,
               stored: Path) -> Generator[Deferred[Any], Any, None]:
        rt = self.rt
        # Answered under the office's current node ID, whichever identity sealed it.
        peer = office_node_id(rt.directory, peer)
        try:
            try:
                token = yield rt.io(_read_summary, stored)
                # Signed just before the peer rotated its identity, it names the former key.
                key, closed = signer_key(rt.directory, peer, token, SUMMARY_TYP)
                info = verify_summary(token, key)
                check_signed_while_current(closed, info.time)
            except (ProtocolError, KeysError, NodeError, ValueError) as exc:
                raise _Refused("reconciliation-summary-invalid", str(exc)) from exc
            if info.peer not in self._own_ids():
                raise _Refused("reconciliation-not-for-us", f"it is addressed to {info.peer}, "
                               "not to this office")
            row = yield rt.db(_exchange_row, rt.store, info.exchange, self._ids(peer))
            if info.role == "request":
                outcome = yield self._answer(peer, info, row)
            elif info.role == "answer":
                outcome = yield self._answered(peer, info, row)
            else:
                outcome = yield self._detailed(peer, info, row)
        except _Refused as refused:
            yield self._refuse(peer, header, refused.code, refused.reason)
            return
        yield rt.audit("reconciliation-summary-received", peer=peer,
                       message_id=header.message_id, role=info.role, exchange=info.exchange,
                       period=info.period.label, outcome=outcome)

    def _refuse(self, peer: str, header: EnvelopeHeader, code: str, reason: str) -> Deferred:
        log.warn("refused a reconciliation summary from {peer}: {reason}",
                 peer=self.rt.peer_name(peer), reason=reason)
        return self.rt.audit("security-refused", peer=peer, message_id=header.message_id,
                             code=code, reason=reason[:500])

    @inlineCallbacks
    def _answer(self, peer: str, info: SummaryInfo,
                row: ReconciliationRow | None) -> Generator[Deferred[Any], Any, str]:
        """B: answer a request (again, with the same answer, if A asks again)."""
        rt = self.rt
        if row is not None:
            if row.role != "responder" or row.peer_summary != info.token:
                raise _Refused("reconciliation-contradiction", f"exchange {info.exchange} is "
                               "already held with other content; the request contradicts it")
            yield self._send(peer, row.own_summary or "", info.period.label, "answer")
            return "answered-again"
        sent, received = yield rt.db(own_items, rt.store, self._ids(peer),
                                     info.period, rt.keys)
        mine_sent, mine_received = digest_side(sent), digest_side(received)
        days_out = mine_sent.differing_days(info.received)
        days_in = mine_received.differing_days(info.sent)
        carry_out, carry_in = carried_days(mine_sent, days_out, mine_received, days_in)
        now = rt.now_text()
        token = issue_summary(rt.keys.identity, role="answer", exchange=info.exchange, peer=peer,
                              period=info.period.label, time=now,
                              sent=mine_sent.carrying(sent, carry_out),
                              received=mine_received.carrying(received, carry_in))
        state = "pending" if days_out or days_in else "agreed"
        events = [] if state == "pending" else [("reconciliation-agreed", {
            "peer": peer, "period": info.period.label, "exchange": info.exchange,
            "sent": mine_sent.count, "received": mine_received.count})]
        yield rt.db_audited(rt.store.add_reconciliation, exchange=info.exchange,
                            peer_node_id=peer, period=info.period.label, role="responder",
                            state=state, now=now, own_summary=token, peer_summary=info.token,
                            differences=None if state == "pending" else "[]", events=events)
        yield self._send(peer, token, info.period.label, "answer")
        return "answered"

    @inlineCallbacks
    def _answered(self, peer: str, info: SummaryInfo,
                  row: ReconciliationRow | None) -> Generator[Deferred[Any], Any, str]:
        """A: the answer to our request: agree, or compare the lists and send ours."""
        rt = self.rt
        if row is None or row.role != "initiator" or row.own_summary is None:
            raise _Refused("reconciliation-unknown-exchange", f"it answers exchange "
                           f"{info.exchange}, which this office never asked for")
        if info.period.label != row.period:
            raise _Refused("reconciliation-contradiction", f"it answers for period "
                           f"{info.period.label}, but exchange {info.exchange} asked for "
                           f"{row.period}")
        if row.peer_summary is not None:
            if row.peer_summary != info.token:
                raise _Refused("reconciliation-contradiction", f"exchange {info.exchange} was "
                               "already answered with other content; this answer contradicts "
                               "it")
            if row.state == "differs":
                # Applied again after a crash: the lists may not have gone out.
                yield self._send_detail(row, info)
            return "answered-again"
        # The record as it is now (a late receipt may have come since the request).
        sent, received = yield rt.db(own_items, rt.store, self._ids(peer),
                                     info.period, rt.keys)
        mine_sent, mine_received = digest_side(sent), digest_side(received)
        days_out = mine_sent.differing_days(info.received)
        days_in = mine_received.differing_days(info.sent)
        now = rt.now_text()
        if not days_out and not days_in:
            yield rt.db_audited(rt.store.update_reconciliation, row.id, now, state="agreed",
                                peer_summary=info.token, differences="[]",
                                next_attempt_at=None, events=[("reconciliation-agreed", {
                                    "peer": peer, "period": row.period,
                                    "exchange": row.exchange, "sent": mine_sent.count,
                                    "received": mine_received.count})])
            return "agreed"
        plan = _Plan.of(mine_sent, mine_received, info)
        differences = _differences(rt.node_id, peer, sent, received, info, plan)
        yield self._record_differences(row, info, differences, now)
        yield self._send_detail(row, info)
        return "differs" if differences else "agreed"

    @inlineCallbacks
    def _send_detail(self, row: ReconciliationRow,
                     info: SummaryInfo) -> Generator[Deferred[Any], Any, None]:
        """A: our items of the days whose roots differ from the peer's answer ``info``."""
        rt = self.rt
        sent, received = yield rt.db(own_items, rt.store, self._ids(row.peer_node_id),
                                     info.period, rt.keys)
        mine_sent, mine_received = digest_side(sent), digest_side(received)
        plan = _Plan.of(mine_sent, mine_received, info)
        detail = issue_summary(rt.keys.identity, role="detail", exchange=row.exchange,
                               peer=row.peer_node_id, period=row.period, time=rt.now_text(),
                               sent=mine_sent.carrying(sent, plan.out),
                               received=mine_received.carrying(received, plan.into))
        yield self._send(office_node_id(rt.directory, row.peer_node_id), detail, row.period,
                         "detail")

    @inlineCallbacks
    def _detailed(self, peer: str, info: SummaryInfo,
                  row: ReconciliationRow | None) -> Generator[Deferred[Any], Any, str]:
        """B: A's lists after our answer showed a difference."""
        rt = self.rt
        if row is None or row.role != "responder" or row.own_summary is None:
            raise _Refused("reconciliation-unknown-exchange", f"it details exchange "
                           f"{info.exchange}, which this office never answered")
        if info.period.label != row.period:
            raise _Refused("reconciliation-contradiction", f"it details period "
                           f"{info.period.label}, but exchange {info.exchange} is for "
                           f"{row.period}")
        if row.state != "pending":
            if row.state == "differs":
                return "detailed-again"  # already compared (a resend)
            raise _Refused("reconciliation-contradiction", f"exchange {info.exchange} is "
                           f"{row.state}; the lists contradict it")
        own = decode_summary(row.own_summary)
        sent, received = yield rt.db(own_items, rt.store, self._ids(peer),
                                     own.period, rt.keys)
        # Compared where both lists travelled: ours in the answer, theirs in these lists.
        plan = _Plan.of(own.sent, own.received, info, own=own)
        differences = _differences(rt.node_id, peer, sent, received, info, plan)
        yield self._record_differences(row, info, differences, rt.now_text())
        return "differs" if differences else "agreed"

    def _record_differences(self, row: ReconciliationRow, info: SummaryInfo,
                            differences: list[Difference], now: str) -> Deferred:
        rt = self.rt
        state = "differs" if differences else "agreed"
        counts: dict[str, int] = {}
        for d in differences:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        if differences:
            log.warn("reconciliation of {period} with {peer}: {n} difference(s)",
                     period=row.period, peer=rt.peer_name(row.peer_node_id),
                     n=len(differences))
        return rt.db_audited(
            rt.store.update_reconciliation, row.id, now, state=state, peer_summary=info.token,
            differences=json.dumps([d.as_dict() for d in differences], sort_keys=True),
            next_attempt_at=None, events=[(f"reconciliation-{state}", {
                "peer": row.peer_node_id, "period": row.period, "exchange": row.exchange,
                "differences": counts,
                "message_ids": [d.message_id for d in differences][:100]})])

    def _own_ids(self) -> set[str]:
        """This office's node IDs: current, and former ones still held."""
        rt = self.rt
        return {rt.node_id, *rt.former_keys, *rt.retired_ids}

    def _ids(self, peer: str) -> set[str]:
        """Every node ID (current and former) of the peer ``peer`` names."""
        return {peer, *(key.kid for key in self.rt.directory.identities_of(peer))}


class _Refused(NodeError):
    """A summary refused; the instance's ``code`` names the case in the ``security-refused``
    audit entry (docs/review.md)."""

    code = "summary-refused"

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _exchange_row(store: Any, exchange: str, peer_ids: set[str]) -> ReconciliationRow | None:
    """The exchange's row with the peer under any of its node IDs (it may have rotated since
    the exchange began). Blocking."""
    for node_id in sorted(peer_ids):
        row = store.reconciliation(exchange, node_id)
        if row is not None:
            return row
    return None


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which differing days are compared (``out``: what we sent, ``into``: what we received)
    and which are not, because their lists did not fit in one exchange."""

    out: set[str]
    into: set[str]
    left_out: set[str]
    left_in: set[str]

    @classmethod
    def of(cls, mine_sent: Side, mine_received: Side, info: SummaryInfo, *,
           own: SummaryInfo | None = None) -> _Plan:
        """The days whose roots differ from the peer's summary ``info``, compared where the
        peer listed them whole (and, with ``own``, where our summary did too), as many as
        fit in the lists we send back."""
        days_out = mine_sent.differing_days(info.received)
        days_in = mine_received.differing_days(info.sent)
        out = {d for d in days_out if listed(info.received, d) and
               (own is None or listed(own.sent, d))}
        into = {d for d in days_in if listed(info.sent, d) and
                (own is None or listed(own.received, d))}
        if own is None:  # what we compare is what our lists carry back
            out, into = carried_days(mine_sent, out, mine_received, into)
        return cls(out, into, days_out - out, days_in - into)


def _not_compared(days: set[str], sender: str, recipient: str) -> list[Difference]:
    if not days:
        return []
    return [Difference("not-compared", "-", sender, recipient,
                       f"{len(days)} day(s) from {min(days)} to {max(days)}: more documents "
                       f"differ than one exchange carries ({MAX_ITEMS}); reconcile those "
                       "months one by one", days=len(days))]


def _differences(me: str, peer: str, sent: list[Item], received: list[Item], info: SummaryInfo,
                 plan: _Plan) -> list[Difference]:
    """What we sent vs what the peer received, and what it sent vs what we received, on the
    days compared; one ``not-compared`` entry per direction for the days that were not."""
    theirs_received = [i for i in info.received.items if i.day in plan.out]
    theirs_sent = [i for i in info.sent.items if i.day in plan.into]
    return (compare([i for i in sent if i.day in plan.out], theirs_received, sender=me,
                    recipient=peer) +
            _not_compared(plan.left_out, me, peer) +
            compare(theirs_sent, [i for i in received if i.day in plan.into], sender=peer,
                    recipient=me) +
            _not_compared(plan.left_in, peer, me))


def _read_summary(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_SUMMARY_BYTES + 1)
    if len(data) > MAX_SUMMARY_BYTES:
        raise ValueError(f"{path.name} is too large to be a reconciliation summary")
    return data.decode("ascii", errors="replace").strip()
