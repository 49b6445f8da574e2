"""A whole year of programme deadlines for three offices, one day at a time (injected clock).

Three real stores (tinhuy, the consolidating office; hdnd; ubnd) record programmes sent and
received on the days a script says. Every day from 1 November 2026 to 31 December 2027 the
engine of each office is asked for its obligations, and every one of them is compared with
the state the regulation gives it that day. The due days are written out by hand below (not
computed by the code under test), and cover the 30 November 2026 deadline (a Monday), Tết 2027
(4-10 February) and the quarter boundary of 31 March / 1 April 2027.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.config.schema import CoordinationSection
from lienthong.node.coordination.deadlines import LOOKAHEAD_DAYS, DeadlineEngine, DeadlineQuery
from lienthong.node.documents.periods import parse_period
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import NewDispatch, NewReceived
from tests.node.storehelp import T0, make_peer

VN = dt.timezone(dt.timedelta(hours=7))
OFFICES = ("tinhuy", "hdnd", "ubnd")
SECTION = CoordinationSection(kinds=("annual", "quarterly", "monthly"), since="2026-11-01")

#: period -> due day, by hand from the regulation (annual: 30/11 of the year before;
#: quarterly: the 20th of the quarter's previous month; monthly: the 25th of the month before).
DUE = {
    "2027": "2026-11-30", "2028": "2027-11-30",
    "2027-Q1": "2026-12-20", "2027-Q2": "2027-03-20", "2027-Q3": "2027-06-20",
    "2027-Q4": "2027-09-20", "2028-Q1": "2027-12-20",
    "2026-12": "2026-11-25", "2027-01": "2026-12-25", "2027-02": "2027-01-25",
    "2027-03": "2027-02-25", "2027-04": "2027-03-25", "2027-05": "2027-04-25",
    "2027-06": "2027-05-25", "2027-07": "2027-06-25", "2027-08": "2027-07-25",
    "2027-09": "2027-08-25", "2027-10": "2027-09-25", "2027-11": "2027-10-25",
    "2027-12": "2027-11-25", "2028-01": "2027-12-25", "2028-02": "2028-01-25",
    "2028-03": "2028-02-25",
}
#: The last day of each period (a programme never sent becomes "missing" after it).
LAST = {"2027": "2027-12-31", "2028": "2028-12-31", "2027-Q1": "2027-03-31",
        "2027-Q2": "2027-06-30", "2027-Q3": "2027-09-30", "2027-Q4": "2027-12-31",
        "2028-Q1": "2028-03-31"}

#: (office, period) -> the day its programme is sent (and receipted). Not listed: never sent.
SENDS = {
    ("hdnd", "2027"): "2026-11-27",            # on time
    ("ubnd", "2027"): "2026-12-01",            # the day after the Monday deadline: late
    ("hdnd", "2027-Q1"): "2026-12-18",
    ("hdnd", "2027-01"): "2026-12-24",
    ("ubnd", "2027-01"): "2026-12-28",         # late
    ("hdnd", "2027-02"): "2027-01-25",         # on the due day: on time
    ("ubnd", "2027-02"): "2027-01-22",
    ("hdnd", "2027-03"): "2027-02-12",         # just after Tết
    ("ubnd", "2027-03"): "2027-03-01",         # late
    ("hdnd", "2027-Q2"): "2027-03-19",         # the due day is a Saturday; sent the Friday
    ("ubnd", "2027-Q2"): "2027-03-22",         # late (the Monday after)
    ("hdnd", "2027-04"): "2027-03-25", ("ubnd", "2027-04"): "2027-03-25",
    ("hdnd", "2027-05"): "2027-04-23",
    ("hdnd", "2027-Q3"): "2027-06-18", ("ubnd", "2027-Q3"): "2027-06-18",
    ("hdnd", "2027-07"): "2027-06-25", ("ubnd", "2027-07"): "2027-07-02",
    ("hdnd", "2027-08"): "2027-07-23", ("ubnd", "2027-08"): "2027-07-23",
    ("hdnd", "2027-09"): "2027-08-25", ("ubnd", "2027-09"): "2027-08-24",
    ("hdnd", "2027-Q4"): "2027-09-17", ("ubnd", "2027-Q4"): "2027-09-20",
    ("hdnd", "2027-10"): "2027-09-24", ("ubnd", "2027-10"): "2027-09-24",
    ("hdnd", "2027-11"): "2027-10-25", ("ubnd", "2027-11"): "2027-10-22",
    ("hdnd", "2028"): "2027-11-29", ("ubnd", "2028"): "2027-11-30",
    ("hdnd", "2027-12"): "2027-11-25", ("ubnd", "2027-12"): "2027-11-26",
    ("hdnd", "2028-Q1"): "2027-12-17", ("ubnd", "2028-Q1"): "2027-12-20",
    ("hdnd", "2028-01"): "2027-12-24", ("ubnd", "2028-01"): "2027-12-24",
}
# Never sent: ubnd 2027-Q1 (overdue until 31 March, missing from 1 April), ubnd 2027-05 and
# 2027-06, hdnd 2027-06.


def _moment(day: dt.date, hour: int) -> str:
    utc = dt.datetime.combine(day, dt.time(hour), VN).astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(12), VN).timestamp()


def expected_state(period: str, office: str, today: dt.date) -> str:
    due = dt.date.fromisoformat(DUE[period])
    sent = SENDS.get((office, period))
    if sent is not None and dt.date.fromisoformat(sent) <= today:
        return "on-time" if dt.date.fromisoformat(sent) <= due else "late"
    if today <= due:
        return "due"
    last = LAST.get(period) or str(parse_period(period).last_day)
    return "missing" if today > dt.date.fromisoformat(last) else "overdue"


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, Store]]:
    opened = {name: open_store(f"sqlite:///{tmp_path / name / 'store.db'}") for name in OFFICES}
    for seed, name in enumerate(OFFICES, 1):
        for other, store in opened.items():
            if other != name:
                store.add_peer(make_peer(name, seed), "card", T0)
    yield opened
    for store in opened.values():
        store.close()


def _node_id(name: str) -> str:
    return make_peer(name, OFFICES.index(name) + 1).node_id


def send_programme(stores: dict[str, Store], office: str, period: str, day: dt.date,
                   number: int) -> None:
    """``office`` sends its programme: dispatch and receipt there, reception at tinhuy."""
    mid = f"{number:032x}"
    meta = {"kind": "document", "type": "programme", "period": period}
    digest = hashlib.sha256(mid.encode()).hexdigest()
    name = f"Chương trình {period} {office}.pdf"
    stores[office].add_dispatch(NewDispatch(
        message_id=mid, name=name, target="tinhuy", spool_dir=f"spool/{mid}",
        header_token=f"h.{number}.s", size=10, sha256=digest, ciphertext_size=20, priority=3,
        meta=meta, recipients=(_node_id("tinhuy"),)), _moment(day, 9))
    stores[office].record_receipt(mid, _node_id("tinhuy"), f"receipt.{number}", _moment(day, 9))
    sender = _node_id(office)
    stores["tinhuy"].begin_publish(NewReceived(
        sender_node_id=sender, message_id=mid, name=name, stored_path=f"inbox/{office}/{name}",
        size=10, sha256=digest, header_token=f"h.{number}.s", meta=meta), _moment(day, 9))
    stores["tinhuy"].complete_publish(sender, mid, f"receipt.{number}", _moment(day, 9))


def test_a_year_of_deadlines_for_three_offices(stores: dict[str, Store]) -> None:
    engines = {name: DeadlineEngine(stores[name], SECTION, own_name=name) for name in OFFICES}
    sends_by_day: dict[str, list[tuple[str, str]]] = {}
    for (office, period), day in SENDS.items():
        sends_by_day.setdefault(day, []).append((office, period))
    since = dt.date(2026, 11, 1)
    day, number, checked = since, 0, 0
    while day <= dt.date(2027, 12, 31):
        for office, period in sends_by_day.get(day.isoformat(), []):
            number += 1
            send_programme(stores, office, period, day, number)
        horizon = day + dt.timedelta(days=LOOKAHEAD_DAYS)
        in_view = {p for p, due in DUE.items()
                   if since <= dt.date.fromisoformat(due) <= horizon}
        for viewer, engine in engines.items():
            rows = engine.rows(_now(day))
            owing = ("hdnd", "ubnd") if viewer == "tinhuy" else (viewer,)
            seen = {(r.office, r.period): r.state for r in rows}
            wanted = {(office, period): expected_state(period, office, day)
                      for period in in_view for office in owing}
            assert seen == wanted, f"{viewer} on {day}"
            assert all(r.owed_to == "tinhuy" and r.due == DUE[r.period] for r in rows)
            checked += len(rows)
        day += dt.timedelta(days=1)
    assert number == len(SENDS)
    assert checked > 10000


def test_checkpoints_monday_deadline_tet_and_the_quarter_boundary(
        stores: dict[str, Store]) -> None:
    """The working days left and the reminder flag on the days that matter."""
    tinhuy = DeadlineEngine(stores["tinhuy"], SECTION, own_name="tinhuy")
    annual = DeadlineQuery(periods=(parse_period("2027"),))

    def one(day: str, query: DeadlineQuery, office: str = "ubnd"):
        rows = [r for r in tinhuy.rows(_now(dt.date.fromisoformat(day)), query)
                if r.office == office]
        assert len(rows) == 1
        return rows[0]

    # 30 November 2026 is a Monday: on Wednesday 25 Nov three working days remain (26, 27,
    # 30 Nov; the weekend does not count), so the reminder (3 working days) is on.
    row = one("2026-11-25", annual)
    assert (row.state, row.working_days_left, row.reminder) == ("due", 3, True)
    assert row.due_day_off is None
    row = one("2026-11-24", annual)  # Vietnam Cultural Day is not a day off: 4 left
    assert (row.state, row.working_days_left, row.reminder) == ("due", 4, False)
    assert one("2026-11-30", annual).working_days_left == 0
    assert one("2026-12-01", annual).state == "overdue"
    send_programme(stores, "ubnd", "2027", dt.date(2026, 12, 1), 900)
    row = one("2026-12-01", annual)
    assert (row.state, row.received_at) == ("late", "2026-12-01T02:00:00Z")

    # Tết 2027: from Wednesday 3 February to the 2027-03 monthly deadline (25 February) there
    # are 11 working days, not 16: 4-10 February are Tết holidays.
    march = DeadlineQuery(periods=(parse_period("2027-03"),))
    assert one("2027-02-03", march).working_days_left == 11
    # The Q2 deadline, 20 March 2027, is a Saturday: flagged (kept, by default).
    assert one("2027-03-01", DeadlineQuery(periods=(parse_period("2027-Q2"),))).due_day_off \
        == "Saturday"
    # The quarter boundary: Q1 never sent is overdue on 31 March and missing on 1 April.
    q1 = DeadlineQuery(periods=(parse_period("2027-Q1"),))
    assert one("2027-03-31", q1).state == "overdue"
    assert one("2027-04-01", q1).state == "missing"


def test_an_office_that_is_not_consolidating_sees_only_its_own(stores: dict[str, Store]) -> None:
    send_programme(stores, "hdnd", "2027-01", dt.date(2026, 12, 24), 1)
    rows = DeadlineEngine(stores["hdnd"], SECTION, own_name="hdnd").rows(
        _now(dt.date(2026, 12, 26)), DeadlineQuery(kinds=("monthly",)))
    assert {r.office for r in rows} == {"hdnd"}
    january = [r for r in rows if r.period == "2027-01"]
    assert [(r.state, r.sent_at, r.received_at) for r in january] == [
        ("on-time", "2026-12-24T02:00:00Z", "2026-12-24T02:00:00Z")]
