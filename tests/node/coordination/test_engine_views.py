"""The deadline engine's views on real stores: a peer that rotated its identity between two
programmes, due-date documents listed under their month, and ``deadlines --on DATE`` (the
state as of a past day, later programmes not counted)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong.config.schema import CoordinationSection
from lienthong.keys.directory import PeerKey
from lienthong.node.cli.coordination import parse_day
from lienthong.node.cli.main import main
from lienthong.node.coordination.consolidate import gather
from lienthong.node.coordination.deadlines import DeadlineEngine, DeadlineQuery
from lienthong.node.documents.periods import parse_period
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import NewDispatch, NewReceived, NewStatus
from tests.node.coordination.programmes import xlsx
from tests.node.coordination.test_programmes import make_home, receive
from tests.node.storehelp import T0, make_peer


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the English wording, so they ask for it (the default is Vietnamese;
    test_words.py shows the Vietnamese)."""
    monkeypatch.setenv("LIENTHONG_LANG", "en")


VN = dt.timezone(dt.timedelta(hours=7))
SECTION = CoordinationSection(kinds=("monthly",), since="2026-11-01")


def _at(day: str, hour: int = 9) -> str:
    moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), VN)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(day: str) -> float:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(12), VN).timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'tinhuy.db'}")
    opened.add_peer(make_peer("hdnd", 2), "card", T0)
    yield opened
    opened.close()


def _received(store: Store, sender: str, number: int, period: str, day: str,
              name: str = "CT.pdf") -> None:
    mid = f"{number:032x}"
    meta = {"kind": "document", "type": "programme", "period": period}
    store.begin_publish(NewReceived(
        sender_node_id=sender, message_id=mid, name=name, stored_path=f"inbox/hdnd/{name}",
        size=4, sha256=hashlib.sha256(mid.encode()).hexdigest(), header_token="h.x.s",
        meta=meta), _at(day))
    store.complete_publish(sender, mid, "receipt", _at(day))


def rotate(store: Store, old_node_id: str, seed: int, when: str) -> str:
    """hdnd continues to a new identity (its announcement already verified); the new ID."""
    fresh = make_peer("hdnd", seed, since=when)
    keys = [PeerKey(k.kind, k.value, k.kid, when) for k in fresh.keys]
    record, _ = store.continue_peer_identity(old_node_id, keys, "card-2", when)
    return record.peer.node_id


def test_a_programme_received_under_a_former_identity_still_counts(store: Store) -> None:
    former = make_peer("hdnd", 2).node_id
    _received(store, former, 1, "2027-01", "2026-12-20")
    current = rotate(store, former, 40, _at("2027-01-10"))
    assert current != former
    _received(store, current, 2, "2027-02", "2027-01-22")
    engine = DeadlineEngine(store, SECTION, own_name="tinhuy")
    rows = engine.rows(_now("2027-01-26"), DeadlineQuery(
        periods=(parse_period("2027-01"), parse_period("2027-02"))))
    assert [(r.office, r.period, r.state, r.received_at) for r in rows] == [
        ("hdnd", "2027-01", "on-time", _at("2026-12-20")),
        ("hdnd", "2027-02", "on-time", _at("2027-01-22"))]


def test_consolidation_merges_a_programme_sent_before_the_rotation(tmp_path: Path) -> None:
    home = make_home(tmp_path, "tinhuy")
    programme = {"kind": "document", "type": "programme", "period": "2027-01"}
    receive(home, "hdnd", 2, 1, "CT HDND.xlsx", xlsx([
        ["05/01/2027", "08:00-11:00", "Phiên họp", "Nguyễn Văn An", "Phòng 1", "HĐND"]]),
        programme, _at("2026-12-20"))
    store = open_store(f"sqlite:///{home / 'state' / 'lienthong.db'}")
    try:
        rotate(store, make_peer("hdnd", 2).node_id, 41, _at("2026-12-28"))
        result = gather(store, parse_period("2027-01"), home=home, own_name="tinhuy")
    finally:
        store.close()
    assert [(s.office, s.items) for s in result.sources] == [("hdnd", 1)]


def test_a_sending_office_sees_its_programme_after_the_consolidating_office_rotated(
        tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'hdnd.db'}")
    try:
        store.add_peer(make_peer("tinhuy", 1), "card", T0)
        tinhuy = make_peer("tinhuy", 1).node_id
        mid = f"{7:032x}"
        store.add_dispatch(NewDispatch(
            message_id=mid, name="CT.pdf", target="tinhuy", spool_dir=f"spool/{mid}",
            header_token="h.7.s", size=4, sha256="0" * 64, ciphertext_size=8, priority=3,
            meta={"kind": "document", "type": "programme", "period": "2027-01"},
            recipients=(tinhuy,)), _at("2026-12-21"))
        store.record_receipt(mid, tinhuy, "receipt.7", _at("2026-12-21", 10))
        fresh = make_peer("tinhuy", 42, since=_at("2026-12-23"))
        store.continue_peer_identity(
            tinhuy, [PeerKey(k.kind, k.value, k.kid, _at("2026-12-23")) for k in fresh.keys],
            "card-2", _at("2026-12-23"))
        rows = DeadlineEngine(store, SECTION, own_name="hdnd").rows(
            _now("2026-12-28"), DeadlineQuery(periods=(parse_period("2027-01"),)))
    finally:
        store.close()
    assert [(r.office, r.state, r.received_at) for r in rows] == [
        ("hdnd", "on-time", _at("2026-12-21", 10))]


def test_due_date_documents_are_listed_under_the_month_they_are_due(store: Store) -> None:
    hdnd = make_peer("hdnd", 2).node_id
    mid = f"{9:032x}"
    store.add_dispatch(NewDispatch(
        message_id=mid, name="Chỉ thị 05.pdf", target="hdnd", spool_dir=f"spool/{mid}",
        header_token="h.9.s", size=4, sha256="0" * 64, ciphertext_size=8, priority=3,
        meta={"kind": "document", "type": "directive", "due": "2027-03-15"},
        recipients=(hdnd,)), _at("2027-03-01"))
    engine = DeadlineEngine(store, SECTION, own_name="tinhuy")
    (row,) = [r for r in engine.rows(_now("2027-03-10")) if r.kind == "document"]
    assert (row.period, row.doc_type, row.office, row.owed_to, row.state,
            row.working_days_left) == ("2027-03", "directive", "hdnd", "tinhuy", "due", 3)
    # --period 2027-03 finds it (and the monthly programme for March); 2027-04 does not.
    march = engine.rows(_now("2027-03-10"), DeadlineQuery(periods=(parse_period("2027-03"),)))
    assert {(r.kind, r.period) for r in march} == {("document", "2027-03"),
                                                  ("monthly", "2027-03")}
    april = engine.rows(_now("2027-03-10"), DeadlineQuery(periods=(parse_period("2027-04"),)))
    assert {r.kind for r in april} == {"monthly"}
    # Completed on 16 March: late, as of any day from the 16th; overdue as of the 16th morning
    # is not asked (days are whole); as of the 15th it was still due today.
    store.record_status(NewStatus(
        message_id=mid, peer_node_id=hdnd, sender_node_id="", status="completed", note="",
        register_number=None, token="t", token_sha256="1" * 64, receipt_sha256=None,
        time=_at("2027-03-16")), _at("2027-03-16"))
    assert [r.state for r in engine.rows(_now("2027-03-20")) if r.kind == "document"] == [
        "late"]
    assert [(r.state, r.working_days_left) for r in engine.rows(_now("2027-03-15"))
            if r.kind == "document"] == [("due", 0)]
    # Before it was sent it was nobody's obligation.
    assert [r for r in engine.rows(_now("2027-02-27")) if r.kind == "document"] == []


def test_deadlines_on_a_past_day_ignores_what_came_later(tmp_path: Path) -> None:
    home = make_home(tmp_path, "tinhuy")
    programme = {"kind": "document", "type": "programme", "period": "2027"}
    receive(home, "hdnd", 2, 1, "CT nam 2027 HDND.pdf", b"%PDF", programme, _at("2026-11-27"))
    receive(home, "ubnd", 3, 2, "CT nam 2027 UBND.pdf", b"%PDF", programme, _at("2026-12-02"))

    def states(on: str) -> set[tuple[str, str, str | None]]:
        result = CliRunner().invoke(main, ["deadlines", "--period", "2027", "--on", on,
                                           "--json", "--home", str(home)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        answer = json.loads(result.output)
        return {(r["office"], r["state"], r["received_at"]) for r in answer["deadlines"]}

    # 30 November 2026 (a Monday) is the annual deadline: ubnd's programme came on 2 December.
    assert states("30/11/2026") == {("hdnd", "on-time", _at("2026-11-27")),
                                    ("ubnd", "due", None)}
    assert states("2026-12-01") == {("hdnd", "on-time", _at("2026-11-27")),
                                    ("ubnd", "overdue", None)}
    assert states("02/12/2026") == {("hdnd", "on-time", _at("2026-11-27")),
                                    ("ubnd", "late", _at("2026-12-02"))}
    assert states("01/11/2026") == {("hdnd", "due", None), ("ubnd", "due", None)}
    table = CliRunner().invoke(main, ["deadlines", "--period", "2027", "--on", "30/11/2026",
                                      "--home", str(home)], catch_exceptions=False).output
    assert "as of 30/11/2026" in table and "due today" in table
    assert "Year 2027" in table and "│ 2027 " not in table  # the period as offices write it
    bad = CliRunner().invoke(main, ["deadlines", "--on", "hôm qua", "--home", str(home)])
    assert bad.exit_code == 2 and "--on" in bad.output and "30/11/2026" in bad.output


def test_a_clerks_date_without_a_year_is_this_year() -> None:
    today = dt.date(2027, 5, 4)
    assert parse_day("30/11", today) == dt.date(2027, 11, 30)
    assert parse_day("30/11/2026", today) == dt.date(2026, 11, 30)
    assert parse_day("2026-11-30", today) == dt.date(2026, 11, 30)
    assert parse_day("31/02", today) is None
    assert parse_day("", today) is None


def test_the_report_shows_the_month_in_its_period_column(store: Store) -> None:
    """node/report reads ``period`` for its "Kỳ" column: a due-date document shows its month
    there, not its document type."""
    import re

    from lienthong.node.report.figures import YearFigures
    from lienthong.node.report.render import render_html

    hdnd = make_peer("hdnd", 2).node_id
    mid = f"{11:032x}"
    store.add_dispatch(NewDispatch(
        message_id=mid, name="Chỉ thị 07.pdf", target="hdnd", spool_dir=f"spool/{mid}",
        header_token="h.11.s", size=4, sha256="0" * 64, ciphertext_size=8, priority=3,
        meta={"kind": "document", "type": "directive", "due": "2027-03-15"},
        recipients=(hdnd,)), _at("2027-03-01"))
    rows = [r for r in DeadlineEngine(store, SECTION, own_name="tinhuy").rows(
        _now("2027-03-20")) if r.kind == "document"]
    figures = YearFigures(2027, "tinhuy", "2027-03-20T05:00:00Z", ("tinhuy", "hdnd"), (), (),
                          tuple(rows), (), (), (), ())
    page = render_html(figures, lang="vi")
    assert "<th>Kỳ</th>" in page
    (cells,) = [r for r in re.findall(r"<tr>(.*?)</tr>", page, re.S) if "15/03/2027" in r]
    assert "<td>Tháng 03/2027</td>" in cells and "directive" not in cells
