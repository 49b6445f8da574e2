"""The deadline engine: every obligation this office can see, with its state today.

Theory of operation
-------------------
Three things have deadlines (docs/coordination.md):

* **programmes** (``programme``): each office owes the consolidating office its programme for
  every configured period, by the rule's due day (node/coordination/rules.py). At the
  consolidating office the engine lists what every other office owes it (answered by
  programmes *received* from that office); at any other office, what this office owes
  (answered by programmes *sent* to the consolidating office, on time by the signed receipt's
  time, or the sending time while no receipt is back).
* **documents with a due date** (``due``, hạn xử lý): a recipient owes its completion
  (``completed`` status) by that day. The sender sees one row per recipient, the recipient
  its own.
* **meeting conclusions** sent by this office: each office concerned should register the
  conclusion (``registered`` status, vào sổ) within ``conclusion_working_days``.

Each row is assessed on today's local day (node/coordination/obligations.py). Everything is
read from the store through ``tracked_documents``; ``now`` is injected, nothing else is read.
Blocking: call on the database thread or in the CLI.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lienthong.config.schema import CoordinationSection
from lienthong.node.coordination.calendar import WorkingCalendar
from lienthong.node.coordination.obligations import (
    Assessment,
    Fulfilment,
    Obligation,
    assess,
    assess_due,
    happened_by,
    local_day,
    local_today,
)
from lienthong.node.coordination.rules import Deadline, DeadlineRules
from lienthong.node.documents.periods import Period, parse_period
from lienthong.node.store.database import Store
from lienthong.node.store.records import DispatchRow, TrackedRow

#: Without ``[coordination] since``, deadlines further back than this are not shown.
LOOKBACK_DAYS = 92
#: Upcoming deadlines shown (the status screen alerts only within the reminder window).
LOOKAHEAD_DAYS = 62


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    """One obligation and its state: a line of ``lienthong deadlines``."""

    kind: str
    #: The programme's period; for a due-date document or a conclusion, the month it is due
    #: or was held in (2027-03), the same form as a monthly period.
    period: str
    #: The document type (``programme``, ``directive``, ``conclusion``...).
    doc_type: str | None
    office: str
    owed_to: str
    due: str
    due_day_off: str | None
    state: str
    working_days_left: int | None
    reminder: bool
    sent_at: str | None
    received_at: str | None
    message_id: str | None
    name: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadlineQuery:
    """Which rows to list: all by default; ``periods`` overrides the date window, and
    ``between`` (first and last due day, both included) replaces it (the yearly report)."""

    offices: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    periods: tuple[Period, ...] = ()
    between: tuple[dt.date, dt.date] | None = None


def office_names(store: Store) -> dict[str, str]:
    """Node ID -> office name, for every identity each peer has had, current and former.

    A peer that rotated its identity (docs/keys.md §3) keeps its former identity keys in the
    directory; a programme it sent before rotating was received (and receipted) under the
    former node ID and must still count for the same office.
    """
    names: dict[str, str] = {}
    for record in store.list_peers():
        for key in record.peer.all_identity_keys():
            names[key.kid] = record.peer.name
        names[record.peer.node_id] = record.peer.name
    return names


def working_calendar(section: CoordinationSection) -> WorkingCalendar:
    return WorkingCalendar.from_text(section.days_off, section.working_days)


class DeadlineEngine:
    """Obligations of one office's view, from its store and its ``[coordination]`` rules."""

    def __init__(self, store: Store, section: CoordinationSection, *, own_name: str,
                 calendar: WorkingCalendar | None = None) -> None:
        self.store = store
        self.section = section
        self.own_name = own_name
        self.calendar = calendar or working_calendar(section)
        self.rules = DeadlineRules(section, self.calendar)

    @property
    def consolidating(self) -> bool:
        return self.own_name == self.section.consolidating_office

    def window(self, today: dt.date,
               query: DeadlineQuery = DeadlineQuery()) -> tuple[dt.date, dt.date]:
        if query.between is not None:
            return query.between
        first = today - dt.timedelta(days=LOOKBACK_DAYS)
        if self.section.since:
            first = dt.date.fromisoformat(self.section.since)
        return first, today + dt.timedelta(days=LOOKAHEAD_DAYS)

    def rows(self, now: float, query: DeadlineQuery = DeadlineQuery()) -> list[DeadlineRow]:
        """Every row the query asks for, by due day."""
        today = local_today(now)
        names, ids_of = self._directory()
        rows = self._programme_rows(today, query, names, ids_of)
        if not query.kinds or "document" in query.kinds or "conclusion" in query.kinds:
            rows += self._document_rows(today, names, _months_of(query))
        if query.offices:
            rows = [row for row in rows if row.office in query.offices
                    or row.owed_to in query.offices]
        if query.kinds:
            rows = [row for row in rows if row.kind in query.kinds]
        if query.periods:
            wanted = {str(period) for period in query.periods}
            rows = [row for row in rows if row.period in wanted]
        return sorted(rows, key=lambda r: (r.due, r.kind, r.period, r.office))

    # -- programmes ------------------------------------------------------------------------

    def _directory(self) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        names = office_names(self.store)
        ids_of: dict[str, list[str]] = {}
        for node_id, name in names.items():
            ids_of.setdefault(name, []).append(node_id)
        return names, {name: tuple(ids) for name, ids in ids_of.items()}

    def _owing_offices(self, ids_of: Mapping[str, Sequence[str]]) -> list[str]:
        configured = self.section.offices
        if self.consolidating:
            offices = list(configured) if configured else sorted(ids_of)
            return [o for o in offices if o != self.own_name]
        if configured and self.own_name not in configured:
            return []
        # An office owes programmes only to a consolidating office it exchanges with: a node
        # whose directory does not hold it (another network, a test pair) owes nothing.
        if self.section.consolidating_office not in ids_of:
            return []
        return [self.own_name]

    def _deadlines(self, today: dt.date, query: DeadlineQuery) -> list[Deadline]:
        if query.periods:
            return [self.rules.deadline(p) for p in query.periods
                    if p.kind in self.rules.kinds]
        first, last = self.window(today, query)
        kinds = tuple(k for k in query.kinds if k in self.rules.kinds) if query.kinds else None
        if query.kinds and not kinds:
            return []
        return list(self.rules.deadlines_between(first, last, kinds))

    def _programme_rows(self, today: dt.date, query: DeadlineQuery, names: Mapping[str, str],
                        ids_of: Mapping[str, Sequence[str]]) -> list[DeadlineRow]:
        deadlines = self._deadlines(today, query)
        offices = self._owing_offices(ids_of)
        if not deadlines or not offices:
            return []
        tracked = [row for row in self.store.tracked_documents(
            doc_type="programme", periods=[str(d.period) for d in deadlines])
            if not row.consolidated]
        answers = (self._received_answers(tracked, names) if self.consolidating
                   else self._sent_answers(tracked, ids_of))
        out = []
        for deadline in deadlines:
            for office in offices:
                obligation = Obligation(office, self.section.consolidating_office, deadline)
                found = answers.get((office, obligation.period))
                found = found.as_of(today) if found is not None else None
                state = assess(obligation, found, today, self.calendar,
                               remind_working_days=self.section.remind_working_days)
                out.append(_row(obligation.kind, obligation.period, office,
                                obligation.owed_to, deadline.due, deadline.day_off, state,
                                found))
        return out

    def _received_answers(self, tracked: Iterable[TrackedRow], names: Mapping[str, str]
                          ) -> dict[tuple[str, str], Fulfilment]:
        keys = [(row.sender_node_id, row.message_id) for row in tracked
                if row.direction == "received"]
        found: dict[tuple[str, str], Fulfilment] = {}
        for (sender, _), received in self.store.received_rows(keys).items():
            office = names.get(sender)
            period = received.meta.get("period")
            if office is None or not isinstance(period, str):
                continue
            _keep_first(found, (office, period), Fulfilment(
                received.message_id, received.name, None, received.received_at))
        return found

    def _sent_answers(self, tracked: Iterable[TrackedRow], ids_of: Mapping[str, Sequence[str]]
                      ) -> dict[tuple[str, str], Fulfilment]:
        target_ids = set(ids_of.get(self.section.consolidating_office, ()))
        mids = [row.message_id for row in tracked if row.direction == "sent"]
        found: dict[tuple[str, str], Fulfilment] = {}
        for dispatch in self.store.dispatches_by_ids(mids).values():
            period = dispatch.meta.get("period")
            delivery = next((d for d in dispatch.deliveries if d.peer_node_id in target_ids),
                            None)
            if delivery is None or not isinstance(period, str):
                continue
            _keep_first(found, (self.own_name, period), Fulfilment(
                dispatch.message_id, dispatch.name, dispatch.created_at, delivery.receipt_at))
        return found

    # -- documents with a due date, and conclusions ------------------------------------------

    def _document_rows(self, today: dt.date, names: Mapping[str, str],
                       query: DeadlineQuery) -> list[DeadlineRow]:
        first, last = self.window(today, query)
        tracked = self.store.tracked_documents(due_from=first.isoformat(),
                                               due_until=last.isoformat())
        conclusions = [row for row in self.store.tracked_documents(
            doc_type="conclusion", direction="sent")
            if first - dt.timedelta(days=LOOKAHEAD_DAYS) <= local_day(row.recorded_at) <= last
            and happened_by(row.recorded_at, today)]
        mids = [r.message_id for r in tracked] + [r.message_id for r in conclusions]
        statuses = self.store.statuses_of(mids)
        dispatches = self.store.dispatches_by_ids(
            [r.message_id for r in (*tracked, *conclusions) if r.direction == "sent"])
        received = self.store.received_rows(
            [(r.sender_node_id, r.message_id) for r in tracked if r.direction == "received"])
        out: list[DeadlineRow] = []
        remind = self.section.remind_working_days
        for row in tracked:
            if row.due is None:
                continue
            due = dt.date.fromisoformat(row.due)
            day_off = self.calendar.day_off_reason(due)
            if row.direction == "sent" and row.message_id in dispatches:
                dispatch = dispatches[row.message_id]
                if not happened_by(dispatch.created_at, today):
                    continue
                for delivery in dispatch.deliveries:
                    done = _first_status(statuses.get(row.message_id, ()), "completed",
                                         delivery.peer_node_id, today)
                    state = assess_due(due, done, today, self.calendar,
                                       remind_working_days=remind)
                    out.append(_row("document", month_label(due),
                                    names.get(delivery.peer_node_id, delivery.peer_node_id),
                                    self.own_name, due, day_off, state,
                                    Fulfilment(dispatch.message_id, dispatch.name,
                                               dispatch.created_at, done),
                                    doc_type=row.doc_type or None))
            elif row.direction == "received":
                got = received.get((row.sender_node_id, row.message_id))
                if got is None or not happened_by(got.received_at, today):
                    continue
                done = _first_status(statuses.get(row.message_id, ()), "completed", None, today)
                state = assess_due(due, done, today, self.calendar, remind_working_days=remind)
                out.append(_row("document", month_label(due), self.own_name,
                                names.get(row.sender_node_id, row.sender_node_id), due, day_off,
                                state, Fulfilment(got.message_id, got.name, got.received_at,
                                                  done), doc_type=row.doc_type or None))
        for row in conclusions:
            concluded = dispatches.get(row.message_id)
            if concluded is not None:
                out.extend(self._conclusion_rows(concluded, statuses, names, today))
        return out

    def _conclusion_rows(self, dispatch: DispatchRow, statuses: Mapping[str, Sequence[Any]],
                         names: Mapping[str, str], today: dt.date) -> list[DeadlineRow]:
        due = self.calendar.add_working_days(local_day(dispatch.created_at),
                                             self.section.conclusion_working_days)
        meeting = _iso_day(dispatch.meta.get("meeting_date")) or local_day(dispatch.created_at)
        out = []
        for delivery in dispatch.deliveries:
            done = _first_status(statuses.get(dispatch.message_id, ()), "registered",
                                 delivery.peer_node_id, today)
            state = assess_due(due, done, today, self.calendar,
                               remind_working_days=self.section.remind_working_days)
            out.append(_row("conclusion", month_label(meeting),
                            names.get(delivery.peer_node_id, delivery.peer_node_id),
                            self.own_name, due, None, state,
                            Fulfilment(dispatch.message_id, dispatch.name, dispatch.created_at,
                                       done), doc_type="conclusion"))
        return out


def _keep_first(found: dict[tuple[str, str], Fulfilment], key: tuple[str, str],
                candidate: Fulfilment) -> None:
    """The earliest programme answers an obligation (a later one is a revision)."""
    current = found.get(key)
    if current is None or (candidate.done_at or "") < (current.done_at or ""):
        found[key] = candidate


def _first_status(rows: Iterable[Any], status: str, peer_node_id: str | None,
                  today: dt.date) -> str | None:
    """When ``status`` was first reported (by ``peer_node_id``), if by the end of ``today``."""
    for row in rows:
        if row.status == status and (peer_node_id is None or row.peer_node_id == peer_node_id) \
                and happened_by(str(row.time), today):
            return str(row.time)
    return None


def _months_of(query: DeadlineQuery) -> DeadlineQuery:
    """The window of due days for documents when periods are asked for: from the first day of
    the earliest period to the last day of the latest (document rows are labelled by month)."""
    if not query.periods:
        return query
    return DeadlineQuery(between=(min(p.first_day for p in query.periods),
                                  max(p.last_day for p in query.periods)))


def month_label(day: dt.date) -> str:
    """The period a due-date document or a conclusion is listed under: its month (2027-03),
    in the same form as a monthly programme's period, so the report's "Kỳ" column and
    ``--period`` read alike for every row."""
    return f"{day.year:04d}-{day.month:02d}"


def _iso_day(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _row(kind: str, period: str, office: str, owed_to: str, due: dt.date, day_off: str | None,
         state: Assessment, found: Fulfilment | None, *,
         doc_type: str | None = "programme") -> DeadlineRow:
    return DeadlineRow(kind=kind, period=period, doc_type=doc_type, office=office,
                       owed_to=owed_to,
                       due=due.isoformat(), due_day_off=day_off, state=state.state,
                       working_days_left=state.working_days_left, reminder=state.reminder,
                       sent_at=found.sent_at if found else None,
                       received_at=found.received_at if found else None,
                       message_id=found.message_id if found else None,
                       name=found.name if found else None)


def parse_periods(texts: Iterable[str]) -> tuple[Period, ...]:
    """``--period`` values as periods (ValueError with the forms for a bad one)."""
    return tuple(parse_period(text) for text in texts)


def summary(rows: Sequence[DeadlineRow]) -> dict[str, Any]:
    """The status snapshot's ``deadlines`` part: reminders, overdue rows, counts per office.

    A programme whose period has ended ("missing") is counted, not alerted: a node installed
    today would otherwise greet its officer with every week of the last three months.
    """
    alerts = [row.as_json() for row in rows
              if row.state == "overdue" or (row.state == "due" and row.reminder)]
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        per = counts.setdefault(row.office, {})
        per[row.state] = per.get(row.state, 0) + 1
    return {"alerts": alerts, "by_office": counts}
