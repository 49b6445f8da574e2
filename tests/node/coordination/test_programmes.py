"""Programme items from .ics and .xlsx, clashes between offices' programmes, and
``lienthong programmes consolidate`` / ``lienthong deadlines`` on a real store and real files."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from lienthong.node.cli.main import main
from lienthong.node.coordination.clashes import SourcedItem, find_clashes
from lienthong.node.documents.programme_items import (
    ProgrammeFileError,
    ProgrammeItem,
    read_programme_items,
)
from lienthong.node.store.database import open_store
from lienthong.node.store.records import NewReceived
from tests.node.coordination.programmes import VN, ics, xlsx
from tests.node.storehelp import T0, make_peer


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the English wording, so they ask for it (the default is Vietnamese;
    test_words.py shows the Vietnamese)."""
    monkeypatch.setenv("LIENTHONG_LANG", "en")


D = dt.date.fromisoformat
T = dt.time.fromisoformat


def test_xlsx_items_with_a_title_row_and_vietnamese_headings() -> None:
    items = read_programme_items("CT tuan.xlsx", xlsx([
        ["05/01/2027", "08:00-11:30", "Họp Thường trực HĐND", "Chủ tịch HĐND; Phó Chủ tịch",
         "Phòng họp số 1", "Thường trực HĐND"],
        [dt.datetime(2027, 1, 6), "14h00", "Tiếp công dân", "Phó Chủ tịch", "Trụ sở tiếp dân",
         ""],
        ["07/01/2027", "", "Làm việc tại cơ sở", "", "", ""],
    ]))
    assert items == [
        ProgrammeItem(D("2027-01-05"), T("08:00"), T("11:30"), "Họp Thường trực HĐND",
                      ("Chủ tịch HĐND", "Phó Chủ tịch"), "Phòng họp số 1", "Thường trực HĐND"),
        ProgrammeItem(D("2027-01-06"), T("14:00"), None, "Tiếp công dân", ("Phó Chủ tịch",),
                      "Trụ sở tiếp dân", ""),
        ProgrammeItem(D("2027-01-07"), None, None, "Làm việc tại cơ sở", (), "", ""),
    ]


def test_ics_items_in_local_time() -> None:
    items = read_programme_items("CT.ics", ics([
        {"start": dt.datetime(2027, 1, 5, 1, 0, tzinfo=dt.UTC),
         "end": dt.datetime(2027, 1, 5, 3, 0, tzinfo=dt.UTC), "summary": "Hội nghị",
         "location": "Hội trường A", "leaders": ["Bí thư Tỉnh ủy"]},
        {"start": D("2027-01-06"), "summary": "Cả ngày"},
    ]))
    assert items[0] == ProgrammeItem(D("2027-01-05"), T("08:00"), T("10:00"), "Hội nghị",
                                     ("Bí thư Tỉnh ủy",), "Hội trường A", "")
    assert (items[1].start, items[1].day) == (None, D("2027-01-06"))


@pytest.mark.parametrize(("name", "data", "says"), [
    ("x.ics", b"BEGIN:VCALENDAR\r\nthis is not", "not a valid iCalendar"),
    ("x.xlsx", b"PK\x03\x04 not a zip", "not a readable .xlsx"),
    ("x.xlsx", xlsx([["hôm qua", "08:00", "Họp", "", "", ""]]), "row 3: the date"),
    ("x.xlsx", xlsx([["05/01/2027", "tám giờ", "Họp", "", "", ""]]), "the time"),
    ("x.xlsx", xlsx([]), None),
])
def test_files_that_do_not_parse_say_what_to_fix(name: str, data: bytes,
                                                  says: str | None) -> None:
    if says is None:
        assert read_programme_items(name, data) == []  # a heading and no rows: no items
        return
    with pytest.raises(ProgrammeFileError, match=says):
        read_programme_items(name, data)


def test_a_sheet_without_the_template_headings_is_refused() -> None:
    from openpyxl import Workbook
    book = Workbook()
    book.active.append(["Thứ", "Việc"])
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(ProgrammeFileError, match="no heading row"):
        read_programme_items("x.xlsx", out.getvalue())


def _item(office: str, day: str, start: str, end: str, activity: str, leaders: tuple[str, ...],
          place: str) -> SourcedItem:
    return SourcedItem(office, f"{office}.xlsx", ProgrammeItem(
        D(day), T(start), T(end), activity, leaders, place, ""))


def test_clashes_leader_place_and_event_time_but_not_a_joint_event() -> None:
    items = [
        _item("hdnd", "2027-01-05", "08:00", "10:00", "Họp Thường trực", ("Nguyễn Văn An",),
              "Phòng 1"),
        _item("ubnd", "2027-01-05", "09:00", "11:00", "Làm việc với Sở", ("Nguyen Van  An",),
              "Phòng 2"),
        _item("ubnd", "2027-01-05", "09:30", "10:30", "Tiếp khách", ("Trần Thị Bình",),
              "phòng 1"),
        _item("hdnd", "2027-01-06", "08:00", "11:00", "Hội nghị tổng kết", ("Lê C",), "HT A"),
        _item("ubnd", "2027-01-06", "08:00", "11:00", "Hội nghị tổng kết", ("Lê C",), "HT A"),
        _item("hdnd", "2027-01-07", "08:00", "09:00", "Giao ban", (), ""),
        _item("ubnd", "2027-01-07", "14:00", "15:00", "Giao ban", (), ""),
        _item("hdnd", "2027-01-08", "08:00", "09:00", "Việc A", ("Phạm D",), ""),
        _item("ubnd", "2027-01-08", "09:00", "10:00", "Việc B", ("Phạm D",), ""),  # back to back
    ]
    found = sorted((c.kind, c.subject, c.first.office, c.second.office)
                   for c in find_clashes(items))
    assert found == [("event-time", "Giao ban", "hdnd", "ubnd"),
                     ("leader", "Nguyễn Văn An", "hdnd", "ubnd"),
                     ("place", "Phòng 1", "hdnd", "ubnd")]


CONFIG = """config_version = 1
[node]
name = "{name}"
listen = "127.0.0.1:7701"
[coordination]
kinds = ["annual", "quarterly", "monthly"]
"""


def make_home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    (home / "inbox").mkdir(parents=True)
    (home / "lienthong.toml").write_text(CONFIG.format(name=name), encoding="utf-8")
    return home


def receive(home: Path, sender: str, seed: int, number: int, name: str, data: bytes,
            meta: dict[str, object], at: str) -> None:
    path = home / "inbox" / sender / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    store = open_store(f"sqlite:///{home / 'state' / 'lienthong.db'}")
    try:
        peer = make_peer(sender, seed)
        if store.get_peer(sender) is None:
            store.add_peer(peer, "card", T0)
        mid = f"{number:032x}"
        digest = hashlib.sha256(data).hexdigest()
        store.begin_publish(NewReceived(
            sender_node_id=peer.node_id, message_id=mid, name=name,
            stored_path=str(path.relative_to(home)), size=len(data), sha256=digest,
            header_token="h.x.s", meta=meta), at)
        store.complete_publish(peer.node_id, mid, "receipt", at)
    finally:
        store.close()


def test_consolidate_finds_a_clash_between_two_offices_and_writes_the_draft(
        tmp_path: Path) -> None:
    home = make_home(tmp_path, "tinhuy")
    programme = {"kind": "document", "type": "programme", "period": "2027-01"}
    receive(home, "hdnd", 2, 1, "CT thang 1 HDND.xlsx", xlsx([
        ["05/01/2027", "08:00-11:00", "Phiên họp Thường trực HĐND", "Nguyễn Văn An",
         "Phòng họp 1", "Thường trực HĐND"],
        ["12/01/2027", "08:00", "Giám sát chuyên đề", "Trần B", "Huyện X", "Ban KT-NS"]]),
        programme, "2026-12-20T02:00:00Z")
    receive(home, "ubnd", 3, 2, "CT thang 1 UBND.ics", ics([
        {"start": dt.datetime(2027, 1, 5, 9, 30, tzinfo=VN),
         "end": dt.datetime(2027, 1, 5, 10, 30, tzinfo=VN),
         "summary": "Làm việc với Sở Tài chính", "location": "Phòng họp 1",
         "leaders": ["Lê Văn C"]}]), programme, "2026-12-22T02:00:00Z")
    receive(home, "ubnd", 3, 3, "Bao cao.pdf", b"%PDF", {"kind": "document",
                                                        "type": "report"}, "2026-12-22T03:00:00Z")
    result = CliRunner().invoke(main, ["programmes", "consolidate", "--period", "2027-01",
                                       "--home", str(home), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["items"] == 3
    assert [(c["kind"], c["subject"], c["first"]["office"], c["second"]["office"])
            for c in report["clashes"]] == [("place", "Phòng họp 1", "hdnd", "ubnd")]
    assert {s["office"]: s["items"] for s in report["sources"]} == {"hdnd": 2, "ubnd": 1}
    folder = home / "consolidated" / "2027-01"
    draft = folder / "Chuong trinh tong hop 2027-01.xlsx"
    sheet = load_workbook(draft).worksheets
    rows = list(sheet[0].iter_rows(values_only=True))
    assert rows[1][-1] == "Cơ quan gửi"
    assert [(r[0], r[2], r[6]) for r in rows[2:]] == [
        ("05/01/2027", "Phiên họp Thường trực HĐND", "hdnd"),
        ("05/01/2027", "Làm việc với Sở Tài chính", "ubnd"),
        ("12/01/2027", "Giám sát chuyên đề", "hdnd")]
    assert len(list(sheet[1].iter_rows(values_only=True))) == 2  # heading + the clash
    again = read_programme_items("draft.ics", (folder / "Chuong trinh tong hop 2027-01.ics")
                                 .read_bytes())
    assert [i.activity for i in again] == [r[2] for r in rows[2:]]
    sidecar = (folder / "Chuong trinh tong hop 2027-01.ics.meta.toml").read_text("utf-8")
    assert 'period = "2027-01"' in sidecar and "consolidated = true" in sidecar
    text = CliRunner().invoke(main, ["programmes", "consolidate", "--period", "2027-01",
                                     "--home", str(home)], catch_exceptions=False).output
    assert "1 clash(es)" in text and "Phòng họp 1" in text


def test_consolidate_refuses_elsewhere_and_a_bad_period(tmp_path: Path) -> None:
    home = make_home(tmp_path, "hdnd")
    result = CliRunner().invoke(main, ["--lang", "en", "programmes", "consolidate", "--period",
                                       "2027-01", "--home", str(home)])
    assert result.exit_code == 2 and "not the consolidating office" in result.output
    result = CliRunner().invoke(main, ["--lang", "en", "programmes", "consolidate", "--period",
                                       "tháng 1", "--home", str(make_home(tmp_path, "tinhuy"))])
    assert result.exit_code == 2 and "2027-Q1" in result.output


def test_deadlines_json_and_table_filter_by_office_kind_and_period(tmp_path: Path) -> None:
    home = make_home(tmp_path, "tinhuy")
    programme = {"kind": "document", "type": "programme", "period": "2027"}
    receive(home, "hdnd", 2, 1, "CT nam 2027.pdf", b"%PDF", programme, "2026-11-27T02:00:00Z")
    receive(home, "ubnd", 3, 2, "Khac.pdf", b"%PDF", {"type": "report"}, "2026-11-27T02:00:00Z")
    result = CliRunner().invoke(main, ["deadlines", "--period", "2027", "--on", "01/12/2026",
                                       "--json", "--home", str(home)], catch_exceptions=False)
    rows = json.loads(result.output)["deadlines"]
    assert {(r["office"], r["period"], r["due"], r["state"]) for r in rows} == {
        ("hdnd", "2027", "2026-11-30", "on-time"), ("ubnd", "2027", "2026-11-30", "overdue")}
    only = CliRunner().invoke(main, ["deadlines", "--period", "2027", "--office", "hdnd",
                                     "--home", str(home)], catch_exceptions=False).output
    assert "hdnd" in only and "ubnd" not in only and "On time" in only
    bad = CliRunner().invoke(main, ["deadlines", "--period", "Q1", "--home", str(home)])
    assert bad.exit_code == 2 and "is not a period" in bad.output


def test_deadlines_and_consolidate_speak_vietnamese_by_default(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """The deadlines table (title, headings, states by name, dates dd/mm/yyyy) and
    consolidate's errors are Vietnamese by default and English with --lang en; --json is the
    same either way."""
    monkeypatch.delenv("LIENTHONG_LANG")
    monkeypatch.setenv("COLUMNS", "200")  # the table's cells whole, not wrapped
    home = make_home(tmp_path, "tinhuy")
    programme = {"kind": "document", "type": "programme", "period": "2027"}
    receive(home, "hdnd", 2, 1, "CT nam 2027.pdf", b"%PDF", programme, "2026-11-27T02:00:00Z")
    args = ["deadlines", "--period", "2027", "--office", "hdnd", "--on", "01/12/2026",
            "--home", str(home)]
    vi = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert "Đúng hạn" in vi and "Các hạn mà tinhuy theo dõi" in vi, vi
    assert "tính đến ngày 01/12/2026" in vi and "30/11/2026" in vi and "On time" not in vi
    en = CliRunner().invoke(main, ["--lang", "en", *args], catch_exceptions=False).output
    assert "On time" in en and "as of 01/12/2026" in en
    as_json = [CliRunner().invoke(main, [*lang, *args, "--json"]).output
               for lang in ([], ["--lang", "en"])]
    assert as_json[0] == as_json[1] and '"on-time"' in as_json[0]
    bad = CliRunner().invoke(main, ["programmes", "consolidate", "--period", "tháng 1",
                                    "--home", str(home)])
    assert bad.exit_code == 2 and "không phải là một kỳ" in bad.output
    elsewhere = CliRunner().invoke(main, ["programmes", "consolidate", "--period", "2027-01",
                                          "--home", str(make_home(tmp_path, "hdnd"))])
    assert elsewhere.exit_code == 2 and "not the consolidating office" not in elsewhere.output
