"""Signed reminder messages from the consolidating office (``[coordination] send_reminders``):
real keys, real stores and the real outbox, on an injected clock (no threads, no sockets)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lienthong.config.schema import CoordinationSection
from lienthong.node.coordination.reminders import ProgrammeReminders
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.spool.record import PAYLOAD_FILE
from lienthong.node.store.database import open_store
from lienthong.node.store.records import NewReceived
from tests.node.runtimehelp import FakeReactor, Office, enrol, make_office

VN = dt.timezone(dt.timedelta(hours=7))


def _at(day: str, hour: int = 9) -> float:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), VN).timestamp()


def _offices(tmp_path: Path, *, send: bool = True, offices: tuple[str, ...] = ("hdnd",),
             day: str = "2027-01-20") -> tuple[FakeReactor, Office, Office]:
    reactor = FakeReactor(start=_at(day))
    tinhuy = make_office(tmp_path, "tinhuy", reactor)
    hdnd = make_office(tmp_path, "hdnd", reactor, port=7444)
    enrol(tinhuy, hdnd)
    tinhuy.runtime.config = dataclasses.replace(
        tinhuy.runtime.config, coordination=CoordinationSection(
            kinds=("monthly",), offices=offices, since="2026-12-01", send_reminders=send))
    return reactor, tinhuy, hdnd


def _check(reminders: ProgrammeReminders) -> list[str]:
    out: list[Any] = []
    reminders.check().addBoth(out.append)
    assert len(out) == 1 and isinstance(out[0], list), out
    return out[0]


def _sent_text(office: Office, message_id: str) -> str:
    return (office.runtime.config.spool / message_id / PAYLOAD_FILE).read_text("utf-8")


def test_a_reminder_and_an_overdue_message_each_sent_once(tmp_path: Path) -> None:
    reactor, tinhuy, hdnd = _offices(tmp_path)
    dispatched: list[Any] = []
    reminders = ProgrammeReminders(tinhuy.runtime, Outbox(tinhuy.runtime,
                                                          on_dispatch=dispatched.append))
    # Wednesday 20 January 2027: the programme for 2027-01 (due 25 December) is overdue; the
    # one for 2027-02 is due Monday 25 January, 3 working days away (21, 22, 25): remind.
    first = _check(reminders)
    assert len(first) == 2 and [[d.peer_node_id for d in row.deliveries]
                                for row in dispatched] == [[hdnd.node_id], [hdnd.node_id]]
    rows = {(r.period, r.step): r for r in tinhuy.store.reminders()}
    assert set(rows) == {("2027-01", "overdue"), ("2027-02", "reminder")}
    assert {r.message_id for r in rows.values()} == set(first)
    assert all(r.office == "hdnd" and r.kind == "monthly" for r in rows.values())
    overdue = _sent_text(tinhuy, rows["2027-01", "overdue"].message_id or "")
    assert "Quá hạn" in overdue and "kỳ 2027-01" in overdue and "25/12/2026" in overdue
    assert "tháng" in overdue and "hdnd" in overdue and "tinhuy" in overdue
    reminder = _sent_text(tinhuy, rows["2027-02", "reminder"].message_id or "")
    assert "Nhắc hạn" in reminder and "25/01/2027" in reminder
    assert "còn 3 ngày làm việc" in reminder
    for message_id in first:
        dispatch = tinhuy.store.get_dispatch(message_id)
        assert dispatch.meta["kind"] == "message" and dispatch.meta["type"] == "message"
        assert [d.peer_node_id for d in dispatch.deliveries] == [hdnd.node_id]
        assert dispatch.name.endswith(".txt")
    audit = [(e.kind, e.detail.get("period"), e.detail.get("step"))
             for e in tinhuy.store.audit_entries()
             if e.kind.startswith("programme-reminder")]
    assert sorted(audit) == sorted([
        ("programme-reminder", "2027-01", "overdue"),
        ("programme-reminder-queued", "2027-01", "overdue"),
        ("programme-reminder", "2027-02", "reminder"),
        ("programme-reminder-queued", "2027-02", "reminder")])

    # Asked again, the same day or the next: nothing new.
    assert _check(reminders) == []
    reactor.advance(24 * 3600)
    assert _check(reminders) == []

    # A restart: another process over the same store sends nothing twice either.
    again = open_store(tinhuy.runtime.config.store.url)
    try:
        restarted = dataclasses.replace(tinhuy.runtime, store=again)
        assert _check(ProgrammeReminders(restarted, Outbox(restarted,
                                                           on_dispatch=lambda ids: None))) == []
    finally:
        again.close()
    claims = [e for e in tinhuy.store.audit_entries() if e.kind == "programme-reminder"]
    assert len(claims) == 2  # a claim refused is no event: nothing happened

    # Tuesday 26 January: 2027-02 is now overdue (its reminder was sent; now the overdue).
    reactor.advance(5 * 24 * 3600)
    (late,) = _check(reminders)
    assert "Quá hạn" in _sent_text(tinhuy, late) and "kỳ 2027-02" in _sent_text(tinhuy, late)
    assert len(tinhuy.store.reminders()) == 3
    assert len(tinhuy.store.recent_dispatches(10)) == 3


def test_a_programme_received_in_time_is_never_reminded(tmp_path: Path) -> None:
    reactor, tinhuy, hdnd = _offices(tmp_path, day="2027-02-10")
    mid = "ab" * 16
    meta = {"kind": "document", "type": "programme", "period": "2027-03"}
    tinhuy.store.begin_publish(NewReceived(
        sender_node_id=hdnd.node_id, message_id=mid, name="CT.pdf", stored_path="inbox/hdnd/CT.pdf",
        size=4, sha256=hashlib.sha256(b"x").hexdigest(), header_token="h.x.s", meta=meta),
        "2027-02-10T02:00:00Z")
    tinhuy.store.complete_publish(hdnd.node_id, mid, "receipt", "2027-02-10T02:00:00Z")
    reminders = ProgrammeReminders(tinhuy.runtime, Outbox(tinhuy.runtime,
                                                          on_dispatch=lambda ids: None))
    # 22 February: 2027-03 (due 25 February) would be in the reminder window; it came on the
    # 10th. The 2027-02 programme (due 25 January) was never sent: overdue.
    reactor.advance(12 * 24 * 3600)
    sent = _check(reminders)
    assert [(r.period, r.step) for r in tinhuy.store.reminders()] == [("2027-02", "overdue")]
    assert len(sent) == 1


@pytest.mark.parametrize("who", ["disabled", "not-consolidating"])
def test_off_by_default_and_only_at_the_consolidating_office(tmp_path: Path, who: str) -> None:
    if who == "disabled":
        _, office, _ = _offices(tmp_path, send=False)
        assert CoordinationSection().send_reminders is False
    else:
        _, tinhuy, office = _offices(tmp_path)
        enrol(office, tinhuy)
        office.runtime.config = dataclasses.replace(
            office.runtime.config, coordination=tinhuy.runtime.config.coordination)
    reminders = ProgrammeReminders(office.runtime, Outbox(office.runtime,
                                                          on_dispatch=lambda ids: None))
    assert not reminders.enabled
    reminders.start()
    assert _check(reminders) == []
    assert office.store.reminders() == [] and office.store.recent_dispatches(5) == []


def test_an_office_not_enrolled_is_not_claimed_until_it_is(tmp_path: Path) -> None:
    reactor, tinhuy, hdnd = _offices(tmp_path, offices=("hdnd", "ubnd"))
    reminders = ProgrammeReminders(tinhuy.runtime, Outbox(tinhuy.runtime,
                                                          on_dispatch=lambda ids: None))
    assert len(_check(reminders)) == 2
    assert {r.office for r in tinhuy.store.reminders()} == {"hdnd"}
    ubnd = make_office(tmp_path, "ubnd", reactor, port=7445)
    enrol(tinhuy, ubnd)
    later = _check(reminders)
    assert len(later) == 2
    assert {(r.office, r.step) for r in tinhuy.store.reminders() if r.office == "ubnd"} == {
        ("ubnd", "overdue"), ("ubnd", "reminder")}
    assert all(json.dumps(tinhuy.store.get_dispatch(m).meta) for m in later)


def test_the_loop_checks_at_start_and_every_interval(tmp_path: Path) -> None:
    reactor, tinhuy, _ = _offices(tmp_path)
    reminders = ProgrammeReminders(tinhuy.runtime, Outbox(tinhuy.runtime,
                                                          on_dispatch=lambda ids: None),
                                   interval=600.0)
    reminders.start()
    assert len(tinhuy.store.reminders()) == 2  # at start
    reactor.advance(6 * 24 * 3600)  # the clock jumps to Tuesday the 26th
    reactor.advance(600)
    assert len(tinhuy.store.reminders()) == 3
    reminders.stop()
