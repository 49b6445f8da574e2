"""The petition register (sổ theo dõi đơn): each petition's state and its time limits.

Theory of operation
-------------------
Every petition this office received from a peer or forwarded to one (chuyển đơn) is a row of
the store's ``petitions`` table (node/store/petitions.py). Its state:

==============  ======================================================================
received        received here, not yet decided (thụ lý or not)
accepted        accepted for resolution here (thụ lý)
rejected        not accepted here (không thụ lý)
resolved        resolved here (đã giải quyết)
forwarded       forwarded to another office, nothing reported back yet
taken-over      that office registered it (its signed ``registered`` status)
refused         that office refused it, with a signed refusal (protocol/refusal.py)
==============  ======================================================================

and, for a forwarded petition, ``accepted``, ``rejected`` and ``resolved`` as the handling
office reports them in signed processing statuses (``in-progress`` is its acceptance,
``rejected`` its refusal to accept, ``completed`` the resolution; docs/petitions.md §4).

Two limits per petition, from ``[petitions]`` (working days of the deadline engine's calendar
unless ``working_days = false``): the decision to accept within ``accept`` days of the day the
handling office got it (here: the day it was received; for a forwarded one: the day it was
forwarded), and the resolution within ``resolve`` days (``complex`` for a complex case) of
the acceptance. Each is assessed like any other deadline (node/coordination/obligations.py).

Blocking: call on the database thread or in the CLI.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lienthong.config.schema import NodeConfig, PetitionLimits
from lienthong.node.coordination.calendar import WorkingCalendar
from lienthong.node.coordination.deadlines import working_calendar
from lienthong.node.coordination.obligations import assess_due, local_day, local_today
from lienthong.node.documents.petitions import petition_reference
from lienthong.node.store.database import Store
from lienthong.node.store.records import PetitionRow, StatusRow

STATES = ("received", "accepted", "rejected", "resolved", "forwarded", "taken-over",
          "refused")
#: A handling office's processing status -> what it means for the petition it got.
STATUS_MEANING = {"registered": "taken-over", "in-progress": "accepted",
                  "rejected": "rejected", "completed": "resolved"}


@dataclass(frozen=True, slots=True)
class Limit:
    """One time limit of a petition and its state (obligations.py's states)."""

    due: str
    state: str
    days_left: int | None


@dataclass(frozen=True, slots=True)
class RegisterLine:
    """One line of ``lienthong petitions``."""

    reference: str
    message_id: str
    direction: str
    office: str
    kind: str
    number: str | None
    received: str
    channel: str | None
    petitioner: str
    address: str | None
    id_number: str | None
    subject: str | None
    handling_office: str | None
    related: tuple[str, ...]
    state: str
    accepted_at: str | None
    resolved_at: str | None
    complex: bool
    accept_limit: Limit | None
    resolve_limit: Limit | None
    refusal: str | None
    #: Forwarded: when the office that took it over signed its delivery receipt (the signed
    #: record of the transfer, kept with the dispatch); None before, or for a received one.
    receipt_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["related"] = list(self.related)
        for name in ("accept_limit", "resolve_limit"):
            limit = out[name]
            out[name] = None if limit is None else {"due": limit.due, "state": limit.state,
                                                    "days_left": limit.days_left}
        return out


@dataclass(frozen=True, slots=True)
class RegisterQuery:
    direction: str | None = None
    kinds: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    received_from: str | None = None
    received_until: str | None = None


def _day(moment: str | None) -> dt.date | None:
    return local_day(moment) if moment else None


class PetitionRegister:
    """The register of one office, from its store and its ``[petitions]`` limits."""

    def __init__(self, store: Store, config: NodeConfig, *,
                 calendar: WorkingCalendar | None = None,
                 peer_name: Any = None) -> None:
        self.store = store
        self.config = config
        self.calendar = calendar or working_calendar(config.coordination)
        self._peer_name = peer_name or (lambda node_id: node_id)

    def lines(self, now: float, query: RegisterQuery = RegisterQuery()) -> list[RegisterLine]:
        rows = self.store.petitions(direction=query.direction, kinds=query.kinds,
                                    received_from=query.received_from,
                                    received_until=query.received_until)
        statuses = self.store.statuses_of(sorted({row.message_id for row in rows}))
        sent = self.store.dispatches_by_ids(sorted({row.message_id for row in rows
                                                    if row.direction == "sent"}))
        receipts = {(d.message_id, d.peer_node_id): d.receipt_at
                    for dispatch in sent.values() for d in dispatch.deliveries if d.receipt}
        today = local_today(now)
        lines = [self._line(row, statuses.get(row.message_id, []), today,
                            receipts.get((row.message_id, row.peer_node_id)))
                 for row in rows]
        if query.states:
            lines = [line for line in lines if line.state in query.states]
        return lines

    def _add(self, start: dt.date, days: int) -> dt.date:
        if self.config.petitions.working_days:
            return self.calendar.add_working_days(start, days)
        return start + dt.timedelta(days=days)

    def _limit(self, start: dt.date, days: int, done_at: str | None, today: dt.date) -> Limit:
        due = self._add(start, days)
        found = assess_due(due, done_at, today, self.calendar,
                           remind_working_days=self.config.coordination.remind_working_days)
        return Limit(due=due.isoformat(), state=found.state, days_left=found.working_days_left)

    def _line(self, row: PetitionRow, statuses: Sequence[StatusRow], today: dt.date,
              receipt_at: str | None = None) -> RegisterLine:
        details = row.details
        person = details.get("petitioner") or {}
        limits: PetitionLimits = self.config.petitions.limits[row.kind]
        refusal = None
        if row.direction == "received":
            accepted_at, rejected_at, resolved_at = (row.accepted_at, row.rejected_at,
                                                     row.resolved_at)
            state = ("resolved" if resolved_at else "rejected" if rejected_at
                     else "accepted" if accepted_at else "received")
        else:
            theirs = [s for s in statuses if s.peer_node_id == row.peer_node_id]
            first: dict[str, str] = {}
            for status in theirs:
                first.setdefault(status.status, status.time)
            accepted_at = first.get("in-progress")
            rejected_at = first.get("rejected")
            resolved_at = first.get("completed")
            state = "forwarded"
            for status in theirs:
                state = STATUS_MEANING.get(status.status, state)
            if row.refusal_code is not None:
                state, refusal = "refused", f"{row.refusal_code}: {row.refusal_reason}"
        got = _day(row.recorded_at) or dt.date.fromisoformat(row.received_date)
        decided = accepted_at or rejected_at
        accept_limit = None if state == "refused" else self._limit(
            got, limits.accept, decided, today)
        resolve_limit = None
        if accepted_at is not None:
            days = limits.complex if row.complex else limits.resolve
            accepted_day = _day(accepted_at)
            if accepted_day is not None:
                resolve_limit = self._limit(accepted_day, days, resolved_at, today)
        return RegisterLine(
            reference=petition_reference(row.message_id), message_id=row.message_id,
            direction=row.direction, office=self._peer_name(row.peer_node_id), kind=row.kind,
            number=row.number, received=row.received_date, channel=details.get("channel"),
            petitioner=str(person.get("name", "")), address=person.get("address"),
            id_number=person.get("id_number"), subject=details.get("subject"),
            handling_office=details.get("handling_office"),
            related=tuple(details.get("related") or ()), state=state,
            accepted_at=accepted_at, resolved_at=resolved_at, complex=row.complex,
            accept_limit=accept_limit, resolve_limit=resolve_limit, refusal=refusal,
            receipt_at=receipt_at)


def summary(lines: Sequence[RegisterLine]) -> dict[str, int]:
    """How many petitions are in each state, and how many limits are overdue."""
    counts = {state: 0 for state in STATES}
    overdue = 0
    for line in lines:
        counts[line.state] += 1
        overdue += any(limit is not None and limit.state == "overdue"
                       for limit in (line.accept_limit, line.resolve_limit))
    return dict(counts, overdue=overdue)
