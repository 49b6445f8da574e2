"""The figures of the yearly cooperation report, from this office's store alone (blocking).

Theory of operation
-------------------
Every figure is computed from what this node's store knows (docs/review.md §4 says what each
means). A clerk's document (kind ``document`` or ``message``; statuses, recalls, key
announcements, audit heads and reconciliation summaries are the node's own traffic) belongs to
the year and month in which its sender **created** its envelope, by the signed ``created`` of
the header, on Vietnam's calendar (UTC+7). Latency is the recipient's signed receipt time
minus that ``created``; turnaround is the recipient's first signed ``completed`` status minus
its receipt time. Both offices of a pair hold the same header, receipt and status tokens, so
their reports give the same figures for the documents they share, whatever their clocks said
when they recorded them.

Each office sees only its own exchanges: a document from ``hdnd`` to ``ubnd`` is in neither
report of ``tinhuy``. Programme obligations come from the deadline engine
(node/coordination/deadlines.py), due days in the year, assessed on the day of the report.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lienthong.config.schema import CoordinationSection
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys
from lienthong.node.coordination.deadlines import DeadlineEngine, DeadlineQuery, DeadlineRow
from lienthong.node.core.errors import NodeError
from lienthong.node.documents.programme_items import VIETNAM
from lienthong.node.documents.vocabulary import TYPE_NAMES
from lienthong.node.identity.stored_headers import open_stored_header
from lienthong.node.store.database import Store
from lienthong.node.store.records import StatusRow
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import decode_receipt

#: The kinds of document a clerk sends (the rest is the node's own traffic).
CLERK_KINDS = frozenset({"document", "message"})
#: Record times may lie this far outside the year for a document created in it (clocks drift;
#: a document created on 31 December may be received on 2 January).
SLACK = dt.timedelta(days=40)
#: Latency buckets of the distribution chart: upper bounds in seconds, the last unbounded.
LATENCY_BUCKETS = (60, 600, 3600, 4 * 3600, 86400, None)
#: Audit kinds counted as failures in the report (a file refused at the outbox, a delivery
#: failed for good).
FAILURE_KINDS = ("refused", "dispatch-failed")
OBLIGATION_STATES = ("on-time", "late", "missing", "overdue", "due")


class ReportError(NodeError):
    """The report cannot be made: no data for the year, a PDF that cannot be printed."""

    code = "report-error"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One document and one recipient, as this office's record knows them."""

    message_id: str
    sender: str
    recipient: str
    doc_type: str
    month: int
    name: str
    created: str
    receipt_time: str | None
    completed_time: str | None
    failed: str | None

    @property
    def latency(self) -> float | None:
        if self.receipt_time is None:
            return None
        return _seconds(self.receipt_time) - _seconds(self.created)

    @property
    def turnaround(self) -> float | None:
        if self.receipt_time is None or self.completed_time is None:
            return None
        return _seconds(self.completed_time) - _seconds(self.receipt_time)


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and 95th percentile (nearest rank) of a list of seconds."""

    count: int
    median: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        data = sorted(v for v in values if v is not None)
        if not data:
            return cls(0, None, None)
        return cls(len(data), _rank(data, 0.5), _rank(data, 0.95))


@dataclass(frozen=True, slots=True)
class PairFigures:
    """What passed from ``sender`` to ``recipient`` in the year."""

    sender: str
    recipient: str
    documents: int
    receipted: int
    by_type: Mapping[str, int]
    by_month: tuple[int, ...]
    latency: Spread
    turnaround: Spread
    completed: int


@dataclass(frozen=True, slots=True)
class Recall:
    time: str
    sender: str
    name: str
    reason: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Failure:
    time: str
    what: str
    peer: str | None
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reconciliation:
    peer: str
    period: str
    state: str
    differences: int


@dataclass(frozen=True, slots=True)
class Witnessing:
    """Heads exchanged with one peer in the year: ours it witnessed, its heads we hold."""

    peer: str
    ours_witnessed: int
    ours_latest: str | None
    theirs_held: int
    theirs_latest: str | None


@dataclass(frozen=True)
class YearFigures:
    year: int
    office: str
    as_of: str
    offices: tuple[str, ...]
    pairs: tuple[PairFigures, ...]
    exchanges: tuple[Exchange, ...] = field(repr=False)
    obligations: tuple[DeadlineRow, ...]
    recalls: tuple[Recall, ...]
    failures: tuple[Failure, ...]
    reconciliations: tuple[Reconciliation, ...]
    witnessing: tuple[Witnessing, ...]

    def monthly_by_sender(self) -> dict[str, list[int]]:
        """Documents per month (1..12 → index 0..11) by the office that sent them."""
        out = {office: [0] * 12 for office in self.offices}
        for pair in self.pairs:
            out[pair.sender] = [a + b for a, b in zip(out[pair.sender], pair.by_month,
                                                       strict=True)]
        return out

    def obligation_counts(self) -> dict[str, dict[str, int]]:
        """Per owing office, obligations due in the year by state."""
        out: dict[str, dict[str, int]] = {}
        for row in self.obligations:
            per = out.setdefault(row.office, dict.fromkeys(OBLIGATION_STATES, 0))
            per[row.state] = per.get(row.state, 0) + 1
        return out

    def latency_histogram(self) -> list[int]:
        counts = [0] * len(LATENCY_BUCKETS)
        for item in self.exchanges:
            latency = item.latency
            if latency is not None:
                counts[_bucket(latency)] += 1
        return counts

    def as_json(self) -> dict[str, Any]:
        def spread(s: Spread) -> dict[str, Any]:
            return {"count": s.count, "median": s.median, "p95": s.p95}
        return {
            "year": self.year, "office": self.office, "as_of": self.as_of,
            "offices": list(self.offices),
            "pairs": [{"sender": p.sender, "recipient": p.recipient,
                       "documents": p.documents, "receipted": p.receipted,
                       "by_type": dict(p.by_type), "by_month": list(p.by_month),
                       "latency": spread(p.latency), "turnaround": spread(p.turnaround),
                       "completed": p.completed} for p in self.pairs],
            "obligations": [row.as_json() for row in self.obligations],
            "obligation_counts": self.obligation_counts(),
            "latency_histogram": self.latency_histogram(),
            # Each delivery's own latency, so a script (and the tests) can find the documents
            # behind the spread and the histogram.
            "deliveries": [{"message_id": e.message_id, "sender": e.sender,
                            "recipient": e.recipient, "type": e.doc_type,
                            "created": e.created, "receipt_time": e.receipt_time,
                            "latency": e.latency} for e in self.exchanges],
            "recalls": [vars_of(r) for r in self.recalls],
            "failures": [vars_of(f) for f in self.failures],
            "reconciliations": [vars_of(r) for r in self.reconciliations],
            "witnessing": [vars_of(w) for w in self.witnessing],
        }


def vars_of(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


def _rank(data: Sequence[float], q: float) -> float:
    return data[max(0, math.ceil(q * len(data)) - 1)]


def _bucket(seconds: float) -> int:
    for index, bound in enumerate(LATENCY_BUCKETS):
        if bound is None or seconds < bound:
            return index
    return len(LATENCY_BUCKETS) - 1


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(VIETNAM)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def doc_type(meta: Mapping[str, Any]) -> str:
    """The canonical type, or ``other``: a peer's header may name anything."""
    if meta.get("kind") == "message":
        return "message"
    value = meta.get("type")
    return value if isinstance(value, str) and value in TYPE_NAMES else "other"


def _first(statuses: Iterable[StatusRow], status: str, signer: str) -> str | None:
    return next((s.time for s in statuses if s.status == status and s.peer_node_id == signer),
                None)


def year_bounds(year: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(year, 1, 1, tzinfo=VIETNAM)
    return start, dt.datetime(year + 1, 1, 1, tzinfo=VIETNAM)


def collect(store: Store, *, year: int, own_name: str, own_node_id: str,
            coordination: CoordinationSection, now: float, keys: NodeKeys) -> YearFigures:
    """Every figure of the report for ``year`` (blocking: the CLI or the database thread);
    ``keys`` open the sealed contents of v3 headers (this office is a reader of each).

    Raises ``ReportError`` when the store holds no clerk's document of the year: there is
    nothing to show (obligations alone would all be "missing" for a year the node never ran).
    """
    start, end = year_bounds(year)
    since, until = _utc(start - SLACK), _utc(end + SLACK)
    names = {r.peer.node_id: r.peer.name for r in store.list_peers()}
    names[own_node_id] = own_name
    statuses = store.statuses_between(since, _utc(end + 4 * SLACK))
    by_message: dict[str, list[StatusRow]] = {}
    for row in statuses:
        by_message.setdefault(row.message_id, []).append(row)
    exchanges: list[Exchange] = []
    failures: list[Failure] = []
    for sent in store.sent_between(since, until):
        item = _exchange(sent.header_token, sent.receipt, own_node_id, sent.peer_node_id,
                         names, by_message, start, end, keys, name=sent.name,
                         failed=sent.last_error if sent.state == "failed" else None)
        if item is not None:
            exchanges.append(item)
            if item.failed:
                failures.append(Failure(item.created, "delivery", item.recipient, item.name,
                                        item.failed))
    for got in store.received_between(since, until):
        item = _exchange(got.header_token, got.receipt, got.sender_node_id, own_node_id,
                         names, by_message, start, end, keys, name=got.name, failed=None)
        if item is not None:
            exchanges.append(item)
    if not exchanges:
        raise ReportError(f"this office's records hold no document sent or received in "
                          f"{year}: there is nothing to report for {year}")
    obligations = _obligations(store, coordination, own_name, year, now)
    failures += _refusals(store, _utc(start), _utc(end), names)
    offices = tuple(sorted({own_name, *(n for n in names.values())},
                           key=lambda n: (n != own_name, n)))
    return YearFigures(
        year=year, office=own_name, as_of=_utc(dt.datetime.fromtimestamp(now, dt.UTC)),
        offices=offices, pairs=tuple(_pairs(exchanges)), exchanges=tuple(exchanges),
        obligations=tuple(obligations),
        recalls=tuple(_recalls(store, _utc(start), _utc(end), own_node_id, names,
                               by_message)),
        failures=tuple(sorted(failures, key=lambda f: f.time)),
        reconciliations=tuple(_reconciliations(store, year, names)),
        witnessing=tuple(_witnessing(store, _utc(start), _utc(end), names, own_node_id)))


def _exchange(header_token: str, receipt: str | None, sender: str, recipient: str,
              names: Mapping[str, str], statuses: Mapping[str, Sequence[StatusRow]],
              start: dt.datetime, end: dt.datetime, keys: NodeKeys, *, name: str,
              failed: str | None) -> Exchange | None:
    try:
        header = open_stored_header(header_token, keys)
        receipt_time = decode_receipt(receipt).time if receipt else None
    except (ProtocolError, KeysError, ValueError):
        return None  # a damaged record is for audit verify to report
    if header.meta.get("kind", "document") not in CLERK_KINDS:
        return None
    created = _local(header.created)
    if not start <= created < end:
        return None
    done = _first(statuses.get(header.message_id, ()), "completed", recipient)
    return Exchange(message_id=header.message_id, sender=names.get(sender, sender),
                    recipient=names.get(recipient, recipient), doc_type=doc_type(header.meta),
                    month=created.month, name=name, created=header.created,
                    receipt_time=receipt_time, completed_time=done, failed=failed)


def _pairs(exchanges: Sequence[Exchange]) -> list[PairFigures]:
    grouped: dict[tuple[str, str], list[Exchange]] = {}
    for item in exchanges:
        grouped.setdefault((item.sender, item.recipient), []).append(item)
    out = []
    for (sender, recipient), items in sorted(grouped.items()):
        months = [0] * 12
        for item in items:
            months[item.month - 1] += 1
        out.append(PairFigures(
            sender=sender, recipient=recipient, documents=len(items),
            receipted=sum(1 for i in items if i.receipt_time is not None),
            by_type=dict(sorted(Counter(i.doc_type for i in items).items())),
            by_month=tuple(months), latency=Spread.of(i.latency for i in items),
            turnaround=Spread.of(i.turnaround for i in items),
            completed=sum(1 for i in items if i.completed_time is not None)))
    return out


def _obligations(store: Store, section: CoordinationSection, own_name: str, year: int,
                 now: float) -> list[DeadlineRow]:
    engine = DeadlineEngine(store, section, own_name=own_name)
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    rows = engine.rows(now, DeadlineQuery(between=(first, last)))
    return [row for row in rows if first.isoformat() <= row.due <= last.isoformat()]


def _refusals(store: Store, since: str, until: str,
              names: Mapping[str, str]) -> list[Failure]:
    out = []
    for entry in store.audit_between(FAILURE_KINDS, since, until):
        detail = entry.detail
        if entry.kind == "dispatch-failed":
            continue  # the delivery rows say it, per recipient
        out.append(Failure(entry.time, "refused", entry.peer and names.get(entry.peer,
                                                                            entry.peer),
                           str(detail.get("name", "")),
                           str(detail.get("reason") or detail.get("code") or "")))
    return out


def _recalls(store: Store, since: str, until: str, own_node_id: str,
             names: Mapping[str, str],
             statuses: Mapping[str, Sequence[StatusRow]]) -> list[Recall]:
    out = []
    for row in store.recalls_between(since, until):
        sender = names.get(row.sender_node_id, row.sender_node_id)
        if row.state == "sent":
            answers = [s.status for s in statuses.get(row.message_id, ())
                       if s.status in ("recall-accepted", "recall-refused")]
            outcome = ", ".join(sorted(set(answers))) or "sent"
            name = next((d.name for d in store.dispatches_by_ids([row.message_id]).values()),
                        row.message_id)
        else:
            outcome = row.state
            name = row.recalled_path.rsplit("/", 1)[-1] if row.recalled_path else row.message_id
        out.append(Recall(row.time, sender, name, row.reason, outcome))
    return out


def _reconciliations(store: Store, year: int,
                     names: Mapping[str, str]) -> list[Reconciliation]:
    out = []
    for row in store.reconciliations():
        if not row.period.startswith(str(year)):
            continue
        differences = len(json.loads(row.differences)) if row.differences else 0
        out.append(Reconciliation(names.get(row.peer_node_id, row.peer_node_id), row.period,
                                  row.state, differences))
    return sorted(out, key=lambda r: (r.peer, r.period))


def _witnessing(store: Store, since: str, until: str, names: Mapping[str, str],
                own_node_id: str) -> list[Witnessing]:
    ours: dict[str, list[str]] = {}
    for w in store.head_witnesses():
        if since <= w.witnessed_at < until:
            ours.setdefault(w.witness_node_id, []).append(w.witnessed_at)
    theirs: dict[str, list[str]] = {}
    for h in store.peer_heads():
        if since <= h.head_time < until:
            theirs.setdefault(h.node_id, []).append(h.head_time)
    out = []
    for node_id in sorted(set(ours) | set(theirs), key=lambda n: names.get(n, n)):
        if node_id == own_node_id:
            continue
        mine, held = ours.get(node_id, []), theirs.get(node_id, [])
        out.append(Witnessing(names.get(node_id, node_id), len(mine), max(mine, default=None),
                              len(held), max(held, default=None)))
    return out
