"""The plan of a demo year (``lienthong demo --year``, node/app/history.py plays it): which
documents each office sends on which day, the programmes owed to the consolidating office and
whether each is on time, late or missing, statuses and recalls, and two outages.

Pure and deterministic for a year (a seeded ``random.Random``), so tests compare the reports
with what the plan says happened.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from lienthong.node.core.clock import rfc3339
from lienthong.node.documents.programme_items import VIETNAM

CONSOLIDATING = "tinhuy"
OWING = ("hdnd", "ubnd")


def office_time(day: str, hour: int = 9) -> float:
    """``hour`` o'clock in Vietnam on ``day``, as epoch seconds."""
    moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=VIETNAM)
    return moment.timestamp()


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
