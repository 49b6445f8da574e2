"""A year of the three offices' traffic, played through real nodes (``lienthong demo --year``).

For tests and demonstrations of the yearly report: the demo network (node/app/demo.py) is
created, its three nodes run in this process (real TLS on loopback, real SQLite stores, real
outbox watchers), and a plan of the year is played through them as clerks would: files with
sidecars dropped into outboxes, statuses and recalls asked for through the store as
``lienthong mark`` and ``lienthong recall`` do, the monthly reconciliation and the audit heads
sent to the peers at the start of every month.

How a year fits in a few minutes: the three nodes share one injected wall clock
(``HistoryClock``; docs/design.md §7: everything stored or signed reads the runtime's wall
clock, timers run on the monotonic clock). Before each step of the plan the clock is set to
that step's office time (09:00 in Vietnam on the day); between steps it runs ``RATE`` times
faster than real time, so a delivery that takes 0.5 s is recorded as about 30 s. Nothing else
is faked: every envelope, receipt, status and witness is made and checked by the nodes.

Outages: two offices go down for a while, as offices do (``Outage``): ``ubnd`` is unreachable
for two days in May, ``hdnd``'s node is stopped over a weekend in September. The generator
stops that node (listener, links, watcher, database: ``Node.stop``, as ``lienthong stop``)
at the outage's start on the shared clock and starts it again at its end, from its home as a
restart would. What the others send it meanwhile waits in their queues and their links retry
(``retry_max`` is 5 s in the generated homes: 5 office minutes at 60 times, as 300 s is for a
real office), so those documents' receipts, and the report's latency figures, show the
outage. The down office sends nothing and acts on nothing during its outage: the plan moves
its work to the day it is back.

The plan is deterministic for a year (a seeded ``random.Random``) and written beside the
homes as ``history.json``: what was sent, by whom, to whom, of which type and month, which
programmes were late or missing, what was recalled and refused, and the outages, so tests
compare the reports with what really happened.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import deferLater

from lienthong.config.loader import CONFIG_FILE_NAME, load_config
from lienthong.node.app.demo import (
    SampleDocument,
    create_network,
    open_keys,
    prepare_folder,
    write_sample,
)
from lienthong.node.app.node import Node, build_runtime
from lienthong.node.core.clock import rfc3339
from lienthong.node.documents.programme_items import VIETNAM
from lienthong.node.identity.provision import NewNode

#: Office seconds per real second between the steps of the plan.
RATE = 60.0
#: Real seconds to wait for one step (deliveries, statuses) before giving up.
STEP_TIMEOUT = 60.0
CONSOLIDATING = "tinhuy"
OWING = ("hdnd", "ubnd")
COORDINATION = """
[coordination]
consolidating_office = "tinhuy"
kinds = ["annual", "quarterly", "monthly"]
since = {since}
"""


class HistoryClock:
    """The wall clock the three nodes share: set to each step's time, then running ``rate``
    times faster than real time until the next step. Never set backwards."""

    def __init__(self, start: float, rate: float = RATE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._monotonic = monotonic
        self._base = start
        self._anchor = monotonic()

    def __call__(self) -> float:
        return self._base + (self._monotonic() - self._anchor) * self.rate

    def set(self, moment: float) -> None:
        self._base = max(moment, self())
        self._anchor = self._monotonic()


@dataclass
class PlannedDocument:
    key: str
    day: str
    sender: str
    target: str
    recipients: list[str]
    name: str
    type: str
    sidecar: str
    refused: bool = False
    message_id: str | None = None


@dataclass
class PlannedAction:
    """A status (``mark``) or a recall asked for on ``day`` about document ``key``."""

    day: str
    action: str
    office: str
    key: str
    payload: dict[str, Any]


@dataclass
class Obligation:
    office: str
    kind: str
    period: str
    due: str
    expected: str
    key: str | None


@dataclass
class Outage:
    """``office``'s node is down from ``start_hour`` o'clock on ``start_day`` to ``end_hour``
    on ``end_day`` (Vietnam time); ``start`` and ``end`` are the same moments in RFC 3339."""

    office: str
    start_day: str
    start_hour: int
    end_day: str
    end_hour: int
    why: str
    start: str = ""
    end: str = ""

    def __post_init__(self) -> None:
        self.start = rfc3339(office_time(self.start_day, self.start_hour))
        self.end = rfc3339(office_time(self.end_day, self.end_hour))

    def holds(self, day: str) -> bool:
        """Whether the day's work (at 09:00) falls in the outage."""
        return office_time(self.start_day, self.start_hour) <= office_time(day) < \
            office_time(self.end_day, self.end_hour)


@dataclass
class Plan:
    year: int
    documents: list[PlannedDocument] = field(default_factory=list)
    actions: list[PlannedAction] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    months: list[str] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)

    def days(self) -> list[str]:
        found = {d.day for d in self.documents} | {a.day for a in self.actions}
        found |= {o.start_day for o in self.outages} | {o.end_day for o in self.outages}
        return sorted(found)


def _day(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, day)


def _working_before(day: dt.date, n: int) -> dt.date:
    while n > 0 or day.weekday() >= 5:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def _working_after(day: dt.date, n: int) -> dt.date:
    while n > 0 or day.weekday() >= 5:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def plan_year(year: int, *, until: dt.date | None = None) -> Plan:
    """The year's traffic: programmes by their deadlines (a few late, a few missing),
    directives with due dates, reports, meeting conclusions, statuses, two recalls and two
    files refused at the outbox. Deterministic for ``year``."""
    rng = random.Random(year)
    plan = Plan(year)
    last = until or dt.date(year, 12, 31)

    def add(doc: PlannedDocument) -> None:
        if dt.date.fromisoformat(doc.day) <= last:
            plan.documents.append(doc)

    def act(action: PlannedAction) -> None:
        if dt.date.fromisoformat(action.day) <= last:
            plan.actions.append(action)

    # Programmes owed to the consolidating office, with due days in the year.
    owed: list[tuple[str, str, dt.date]] = [("annual", str(year + 1), _day(year, 11, 30))]
    for quarter_end, quarter in ((3, 2), (6, 3), (9, 4), (12, 1)):
        period_year = year + 1 if quarter == 1 else year
        owed.append(("quarterly", f"{period_year}-Q{quarter}", _day(year, quarter_end, 20)))
    for month in range(1, 13):
        period = f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"
        owed.append(("monthly", period, _day(year, month, 25)))
    late_or_missing = {office: rng.sample(range(len(owed)), 4) for office in OWING}
    for office in OWING:
        for index, (kind, period, due) in enumerate(owed):
            picks = late_or_missing[office]
            if index == picks[0]:
                plan.obligations.append(Obligation(office, kind, period, due.isoformat(),
                                                   "missing", None))
                continue
            late = index in picks[1:3]
            sent = due + dt.timedelta(days=rng.randint(1, 4)) if late else \
                _working_before(due, rng.randint(1, 5))
            key = f"programme-{office}-{period}"
            if sent > last:
                continue
            plan.obligations.append(Obligation(office, kind, period, due.isoformat(),
                                               "late" if late else "on-time", key))
            add(PlannedDocument(
                key, sent.isoformat(), office, CONSOLIDATING, [CONSOLIDATING],
                f"Chuong trinh {kind} {period} {office.upper()}.pdf", "programme",
                f'type = "chương trình"\nperiod = "{period}"\n'
                f'subject = "Chương trình công tác {period} của {office}"\n'))
    number = 0
    for month in range(1, 13):
        # Directives with a processing deadline from the consolidating office to both.
        for _ in range(2):
            number += 1
            day = _working_after(_day(year, month, rng.randint(2, 20)), 0)
            due = _working_after(day, 10)
            key = f"directive-{number}"
            add(PlannedDocument(
                key, day.isoformat(), CONSOLIDATING, "all", list(OWING),
                f"Chi thi {number}-CT-TU.pdf", "directive",
                f'type = "chỉ thị"\nnumber = "{number}-CT/TU"\ndue = {due.isoformat()}\n'
                f'subject = "Về việc triển khai nhiệm vụ số {number} <năm {year}>"\n'))
            for office in OWING:
                done = _working_after(day, rng.randint(3, 14))
                act(PlannedAction(done.isoformat(), "status", office, key,
                                  {"status": "completed", "note": "Đã triển khai",
                                   "register_number": None}))
        # Reports: ubnd to hdnd twice a month, hdnd to both others once.
        for _ in range(2):
            number += 1
            day = _working_after(_day(year, month, rng.randint(1, 26)), 0)
            add(PlannedDocument(
                f"report-{number}", day.isoformat(), "ubnd", "hdnd", ["hdnd"],
                f"Bao cao {number}-BC-UBND.pdf", "report",
                f'type = "báo cáo"\nnumber = "{number}/BC-UBND"\n'))
        number += 1
        day = _working_after(_day(year, month, rng.randint(5, 25)), 0)
        add(PlannedDocument(
            f"report-{number}", day.isoformat(), "hdnd", "tinhuy+ubnd", ["tinhuy", "ubnd"],
            f"Bao cao {number}-BC-HDND.pdf", "report",
            f'type = "báo cáo"\nnumber = "{number}/BC-HĐND"\n'))
        if month % 3 == 0:
            number += 1
            meeting = _working_after(_day(year, month, 26), 0)
            day = _working_after(meeting, 1)
            key = f"conclusion-{number}"
            add(PlannedDocument(
                key, day.isoformat(), CONSOLIDATING, "all", list(OWING),
                f"Ket luan {number}-KL-TU.pdf", "conclusion",
                f'type = "kết luận"\nnumber = "{number}-KL/TU"\n'
                f'meeting = "Hội nghị giao ban quý {month // 3}/{year}"\n'
                f'meeting_date = {meeting.isoformat()}\nmeeting_chair = "Bí thư Tỉnh ủy"\n'
                f'meeting_host = "tinhuy"\nconcerned = ["hdnd", "ubnd"]\n'))
            for office in OWING:
                done = _working_after(day, rng.randint(1, 5))
                act(PlannedAction(done.isoformat(), "status", office, key,
                                  {"status": "registered", "note": "",
                                   "register_number": f"{number}/VT"}))
    # Two recalls, each a few days after the document; two files refused at the outbox.
    plan.documents.sort(key=lambda d: (d.day, d.key))
    ubnd_report = next((d.key for d in plan.documents if d.sender == "ubnd"
                        and d.type == "report" and d.day >= f"{year}-03"), None)
    directive = next((d.key for d in plan.documents if d.type == "directive"
                      and d.day >= f"{year}-02"), None)
    for wanted, office in ((directive, CONSOLIDATING), (ubnd_report, "ubnd")):
        doc = next((d for d in plan.documents if d.key == wanted), None)
        if doc is not None:
            key = doc.key
            plan.actions = [a for a in plan.actions if a.key != key]
            when = _working_after(dt.date.fromisoformat(doc.day), 2)
            act(PlannedAction(when.isoformat(), "recall", office, key,
                              {"reason": "Sai sót về số liệu <phụ lục 2>",
                               "replaced_by": None}))
    add(PlannedDocument("refused-period", _working_after(_day(year, 4, 8), 0).isoformat(),
                        "ubnd", "tinhuy", ["tinhuy"], "Chuong trinh khong ky.pdf", "programme",
                        'type = "chương trình"\n', refused=True))
    add(PlannedDocument("refused-number", _working_after(_day(year, 8, 12), 0).isoformat(),
                        "hdnd", "tinhuy", ["tinhuy"], "Cong van sai so.pdf", "report",
                        'type = "báo cáo"\nnumber = "so 45"\n', refused=True))
    plan.documents.sort(key=lambda d: (d.day, d.key))
    plan.actions = [a for a in plan.actions
                    if any(d.key == a.key and d.day < a.day for d in plan.documents)]
    _add_outages(plan, last)
    plan.documents.sort(key=lambda d: (d.day, d.key))
    plan.actions.sort(key=lambda a: (a.day, a.key, a.office))
    plan.months = [f"{year}-{m:02d}" for m in range(1, 13)
                   if dt.date(year, m, 1) <= last]
    return plan


def _weekday_from(day: dt.date, weekday: int) -> dt.date:
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def _add_outages(plan: Plan, last: dt.date) -> None:
    """Two outages, neither over the 1st of a month (the monthly reconciliation waits for
    every office): ``ubnd`` unreachable Tuesday 08:00 to Thursday 08:00 in May, with a report
    from each other office sent to it meanwhile; ``hdnd`` stopped Friday 17:00 to Monday
    07:00 in September, with one sent to it on the Saturday. The down office's own documents
    and actions in the outage move to the day it is back (and a status after its document)."""
    tuesday = _weekday_from(dt.date(plan.year, 5, 12), 1)
    friday = _weekday_from(dt.date(plan.year, 9, 15), 4)
    outages = [Outage("ubnd", tuesday.isoformat(), 8,
                      (tuesday + dt.timedelta(days=2)).isoformat(), 8,
                      "unreachable: the provincial network link to it was cut"),
               Outage("hdnd", friday.isoformat(), 17,
                      (friday + dt.timedelta(days=3)).isoformat(), 7,
                      "node stopped over the weekend for server maintenance")]
    waiting = [("outage-report-1", tuesday, "tinhuy", "ubnd"),
               ("outage-report-2", tuesday + dt.timedelta(days=1), "hdnd", "ubnd"),
               ("outage-report-3", friday + dt.timedelta(days=1), "tinhuy", "hdnd")]
    for outage in outages:
        if dt.date.fromisoformat(outage.end_day) <= last:
            plan.outages.append(outage)
    for key, day, sender, recipient in waiting:
        if any(o.office == recipient for o in plan.outages):
            plan.documents.append(PlannedDocument(
                key, day.isoformat(), sender, recipient, [recipient],
                f"Bao cao {key} {sender.upper()}.pdf", "report",
                f'type = "báo cáo"\nsubject = "Báo cáo gửi khi {recipient} không liên lạc '
                f'được ({day.isoformat()})"\n'))
    docs = {d.key: d for d in plan.documents}
    for outage in plan.outages:
        down = outage.office
        for doc in plan.documents:
            if doc.sender == down and outage.holds(doc.day):
                doc.day = outage.end_day
        for action in plan.actions:
            doc = docs[action.key]
            if outage.holds(action.day) and down in (action.office, doc.sender,
                                                     *doc.recipients):
                action.day = outage.end_day
    for action in plan.actions:
        doc = docs[action.key]
        if action.day <= doc.day:
            action.day = _working_after(dt.date.fromisoformat(doc.day), 1).isoformat()
    for obligation in plan.obligations:
        sent = docs.get(obligation.key or "")
        if sent is not None:
            obligation.expected = "late" if sent.day > obligation.due else "on-time"


def office_time(day: str, hour: int = 9) -> float:
    """``hour`` o'clock in Vietnam on ``day``, as epoch seconds."""
    moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=VIETNAM)
    return moment.timestamp()


Reporter = Callable[[str], None]


class HistoryRun:
    """Plays a plan through three nodes in this process (call ``run`` under the reactor)."""

    def __init__(self, reactor: Any, folder: Path, plan: Plan, *,
                 report: Reporter = lambda line: None) -> None:
        self.reactor = reactor
        self.folder = folder
        self.plan = plan
        self.report = report
        self.clock = HistoryClock(office_time(f"{plan.year}-01-01", 8))
        self.homes: dict[str, NewNode] = {}
        self.nodes: dict[str, Node] = {}
        self.databases: dict[str, Any] = {}
        self.message_ids: dict[str, str] = {}
        self._sent: dict[str, str] = {}
        #: Offices whose node is stopped now, and documents sent to them meanwhile (their
        #: receipts are awaited once they are back).
        self.down: set[str] = set()
        self.held: list[PlannedDocument] = []

    def create(self) -> None:
        prepare_folder(self.folder)
        start = rfc3339(office_time(f"{self.plan.year}-01-01", 0) - 86400)
        self.homes = create_network(self.folder, now=start)
        for name, new in self.homes.items():
            config_file = new.config.home / CONFIG_FILE_NAME
            text = config_file.read_text(encoding="utf-8")
            # The retry schedule in office time: 5 s at RATE times is 5 office minutes, as
            # 300 s is for a real office (a link back from an outage waits no longer).
            text = text.replace("retry_max = 300.0", "retry_max = 5.0")
            config_file.write_text(text + COORDINATION.format(since=f"{self.plan.year}-01-01"),
                                   encoding="utf-8")
            self.homes[name] = NewNode(load_config(new.config.home), new.node_id,
                                       new.card_path)

    @inlineCallbacks
    def start_node(self, name: str) -> Generator[Deferred[Any], Any, None]:
        """Start ``name``'s node from its home, as ``lienthong start`` does."""
        config = self.homes[name].config
        runtime, self.databases[name] = build_runtime(
            self.reactor, config, open_keys(config), wall_clock=self.clock)
        self.nodes[name] = Node(runtime)
        yield self.nodes[name].start()

    @inlineCallbacks
    def stop_node(self, name: str) -> Generator[Deferred[Any], Any, None]:
        """Stop ``name``'s node as its process ending would: ``Node.stop``, then every
        connection it still holds cut (a process that exits leaves none open; in this process
        a transfer closed gracefully would keep the peer's side of it busy)."""
        node, database = self.nodes.pop(name), self.databases.pop(name)
        yield node.stop()
        transports = [link.proto.transport for link in node.links.values()
                      if link.proto is not None]
        transports += [proto.transport for proto in node.receiver_factory.connections]
        for transport in transports:
            if transport is not None:
                cast(Any, transport).abortConnection()  # TCP and TLS transports have it
        yield database.stop()

    @inlineCallbacks
    def outage_begins(self, outage: Outage) -> Generator[Deferred[Any], Any, None]:
        self.clock.set(office_time(outage.start_day, outage.start_hour))
        yield self.stop_node(outage.office)
        self.down.add(outage.office)
        self.report(f"{outage.start}: {outage.office} down ({outage.why})")

    @inlineCallbacks
    def outage_ends(self, outage: Outage) -> Generator[Deferred[Any], Any, None]:
        """Start the office again and wait for what the others sent it meanwhile."""
        self.clock.set(office_time(outage.end_day, outage.end_hour))
        yield self.start_node(outage.office)
        self.down.discard(outage.office)
        held = [d for d in self.held if not self.down & set(d.recipients)]
        self.held = [d for d in self.held if d not in held]
        for doc in held:
            yield self.wait_async(partial(self._settled, doc), f"{doc.name} from {doc.sender}")
            self.message_ids[doc.key] = doc.message_id = self._sent[doc.key]
        self.report(f"{outage.end}: {outage.office} back; {len(held)} document(s) sent to it "
                    "meanwhile delivered")

    @inlineCallbacks
    def run(self) -> Generator[Deferred[Any], Any, None]:
        for name in self.homes:
            yield self.start_node(name)
        try:
            months = iter(self.plan.months[1:] + [f"{self.plan.year + 1}-01"])
            next_month = next(months, None)
            for day in self.plan.days():
                while next_month is not None and day >= f"{next_month}-01":
                    yield self.month_start(next_month)
                    next_month = next(months, None)
                yield self.step(day)
            for month in [next_month, *months]:
                if month is not None and month <= f"{self.plan.year + 1}-01":
                    yield self.month_start(month)
        finally:
            for name, node in self.nodes.items():
                yield node.stop()
                yield self.databases[name].stop()
        self.write_manifest()

    @inlineCallbacks
    def step(self, day: str) -> Generator[Deferred[Any], Any, None]:
        """The day's outages that end (or begin) before 09:00, its documents and actions at
        09:00, then the outages that begin after the day's work."""
        for outage in self.plan.outages:
            if outage.end_day == day:
                yield self.outage_ends(outage)
        for outage in self.plan.outages:
            if outage.start_day == day and outage.start_hour < 9:
                yield self.outage_begins(outage)
        self.clock.set(office_time(day))
        documents = [d for d in self.plan.documents if d.day == day]
        for doc in documents:
            config = self.homes[doc.sender].config
            write_sample(config.outbox, SampleDocument(
                doc.sender, doc.target, doc.name,
                f"%PDF-1.7\n% {doc.name} ({doc.key}, {day})\n", sidecar=doc.sidecar))
        for doc in documents:
            if self.down & set(doc.recipients):
                # Sealed now (its created is today's), receipted when the office is back.
                yield self.wait_async(partial(self._taken, doc), f"{doc.name} taken")
                self.held.append(doc)
                continue
            yield self.wait_async(partial(self._settled, doc), f"{doc.name} from {doc.sender}")
            if not doc.refused:
                self.message_ids[doc.key] = doc.message_id = self._sent[doc.key]
        actions = [a for a in self.plan.actions if a.day == day]
        for action in actions:
            yield self.act(action)
        self.report(f"{day}: {len(documents)} document(s), {len(actions)} status(es) and "
                    "recall(s)")
        for outage in self.plan.outages:
            if outage.start_day == day and outage.start_hour >= 9:
                yield self.outage_begins(outage)

    @inlineCallbacks
    def _settled(self, doc: PlannedDocument) -> Generator[Deferred[Any], Any, bool]:
        """Refused into failed/ with its reason, or sent: every recipient's receipt is in."""
        config = self.homes[doc.sender].config
        if doc.refused:
            return any(config.failed.rglob(f"{doc.name}.reason.txt"))
        rt = self.nodes[doc.sender].rt
        rows = yield rt.db(rt.store.recent_dispatches, 50)
        row = next((r for r in rows if r.name == doc.name and r.state == "sent"), None)
        if row is None:
            return False
        self._sent[doc.key] = row.message_id
        return True

    @inlineCallbacks
    def _taken(self, doc: PlannedDocument) -> Generator[Deferred[Any], Any, bool]:
        """Taken from the outbox and sealed (queued for its recipients)."""
        rt = self.nodes[doc.sender].rt
        rows = yield rt.db(rt.store.recent_dispatches, 50)
        return any(r.name == doc.name for r in rows)

    @inlineCallbacks
    def act(self, action: PlannedAction) -> Generator[Deferred[Any], Any, None]:
        mid = self.message_ids.get(action.key)
        if mid is None:
            return
        doc = next(d for d in self.plan.documents if d.key == action.key)
        rt = self.nodes[action.office].rt
        sender = self.nodes[doc.sender].rt
        if action.action == "status":
            yield rt.db(rt.store.add_control_request, "status", mid, action.payload,
                        rt.now_text(), peer=sender.node_id)
            wanted = {(rt.node_id, action.payload["status"])}
        else:
            yield rt.db(rt.store.add_control_request, "recall", mid, action.payload,
                        rt.now_text())
            wanted = {(self.nodes[o].rt.node_id, "recall-accepted") for o in doc.recipients}

        def arrived() -> Deferred:
            d = sender.db(sender.store.statuses_for, mid)
            d.addCallback(lambda rows: wanted <= {(r.peer_node_id, r.status) for r in rows})
            return d
        yield self.wait_async(arrived, f"{action.action} of {doc.name} by {action.office}")

    @inlineCallbacks
    def month_start(self, month: str) -> Generator[Deferred[Any], Any, None]:
        """The 1st of the month: each node signs and sends its audit head; last month is
        reconciled with every peer (what the nodes' own schedules do, on this clock)."""
        self.clock.set(office_time(f"{month}-01", 8))
        for node in self.nodes.values():
            if node.head_signer is not None:
                yield node.head_signer.sign_now()
            yield node.head_witnessing.send_head()
        for node in self.nodes.values():
            yield node.reconciler.start_monthly()

        def settled() -> Deferred:
            pending = []
            for node in self.nodes.values():
                pending.append(node.rt.db(node.rt.store.reconciliations,
                                          states=("requested", "pending")))
            d = gatherResults(pending)
            d.addCallback(lambda results: not any(results))
            return d
        yield self.wait_async(settled, f"the reconciliation at the start of {month}")
        self.report(f"{month}-01: audit heads witnessed, last month reconciled")

    @inlineCallbacks
    def wait_async(self, condition: Callable[[], Deferred],
                   what: str) -> Generator[Deferred[Any], Any, None]:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            done = yield condition()
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the history stalled waiting for {what}")
            yield deferLater(self.reactor, 0.1, lambda: None)

    def write_manifest(self) -> None:
        manifest = {
            "year": self.plan.year, "rate": self.clock.rate,
            "documents": [asdict(d) for d in self.plan.documents],
            "actions": [asdict(a) for a in self.plan.actions],
            "obligations": [asdict(o) for o in self.plan.obligations],
            "outages": [asdict(o) for o in self.plan.outages],
            "homes": {name: str(new.config.home) for name, new in self.homes.items()},
        }
        (self.folder / "history.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
