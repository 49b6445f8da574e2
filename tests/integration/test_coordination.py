"""The coordination regulation between real nodes: programmes on deadline, refused bad input,
consolidation finding a clash between two offices' programmes, and a meeting conclusion sent by
the hosting office to exactly the offices concerned."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from typing import Any

from tests.integration.harness import ROOT, TestNode, sent_all, wait_for
from tests.integration.test_documents import audit_of, documents_sent, drop_with_sidecar
from tests.node.coordination.programmes import VN, ics, xlsx


def cli(node: TestNode, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args, "--home", str(node.home)],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          cwd=str(ROOT), timeout=60, check=False)


def cli_json(node: TestNode, *args: str) -> Any:
    done = cli(node, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def next_monthly_period() -> tuple[str, dt.date]:
    """A month whose programme is due in the future (so "on time" does not depend on the day
    the suite runs) and within the status screen's view: the month 45 days from now."""
    today = dt.datetime.now(VN).date()
    month = today + dt.timedelta(days=45)
    return f"{month.year}-{month.month:02d}", month.replace(day=5)


def programme_sidecar(period: str) -> str:
    return f'type = "chương trình"\nperiod = "{period}"\nsubject = "Chương trình công tác"\n'


BAD_INPUTS = [
    # (file name, contents, sidecar, refusal code, words in the reason)
    ("CT khong ky.pdf", b"%PDF programme", 'type = "chương trình"\n', "bad-metadata",
     "must name the period"),
    ("CT sai ky.pdf", b"%PDF programme", 'type = "chương trình"\nperiod = "quý 1/2027"\n',
     "bad-metadata", "is not a period"),
    ("CT hong.ics", b"BEGIN:VCALENDAR\r\nnot really\r\n", programme_sidecar("2027-01"),
     "bad-programme", "not a valid iCalendar"),
    ("CT hong.xlsx", b"PK\x03\x04broken", programme_sidecar("2027-01"), "bad-programme",
     "not a readable .xlsx"),
    ("Chi thi.pdf", b"%PDF directive", 'type = "chỉ thị"\nnumber = "05/NQ-UBND"\n', "bad-number",
     "carries CT"),
    ("Cong van.pdf", b"%PDF letter", 'type = "công văn"\nnumber = "so 45 UBND"\n', "bad-number",
     "neither notation"),
]


def test_programmes_deadlines_consolidation_and_a_conclusion(network) -> None:  # type: ignore[no-untyped-def]
    nodes = network("tinhuy", "hdnd", "ubnd", groups={"tinhuy": {"council": ["hdnd", "ubnd"]}})
    tinhuy, hdnd, ubnd = nodes["tinhuy"], nodes["hdnd"], nodes["ubnd"]
    for node in nodes.values():
        node.start()

    # Bad input: each refused into failed/ with its sidecar and a reason; nothing sent.
    for name, data, sidecar, _, _ in BAD_INPUTS:
        drop_with_sidecar(hdnd, "tinhuy", name, data, sidecar)
    failed = hdnd.home / "failed"
    wait_for(lambda: len(audit_of(hdnd, "refused")) == len(BAD_INPUTS), timeout=30,
             what="every bad input refused and audited")
    refused = {e["name"]: e for e in audit_of(hdnd, "refused")}
    for name, data, sidecar, code, words in BAD_INPUTS:
        assert (failed / name).read_bytes() == data
        assert (failed / f"{name}.meta.toml").read_text(encoding="utf-8") == sidecar
        reason = (failed / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert words in reason and code in reason, reason
        assert refused[name]["code"] == code
    assert documents_sent(hdnd) == []

    # Two offices send their programmes for the same month; they clash in Phòng họp 1.
    period, day = next_monthly_period()
    date_text = day.strftime("%d/%m/%Y")
    drop_with_sidecar(hdnd, "tinhuy", "CT HDND.xlsx", xlsx([
        [date_text, "08:00-11:00", "Phiên họp Thường trực HĐND", "Chủ tịch HĐND",
         "Phòng họp 1", "Thường trực HĐND"]]), programme_sidecar(period))
    drop_with_sidecar(ubnd, "tinhuy", "CT UBND.ics", ics([
        {"start": dt.datetime.combine(day, dt.time(9, 30), VN),
         "end": dt.datetime.combine(day, dt.time(10, 30), VN),
         "summary": "Làm việc với Sở Tài chính", "location": "Phòng họp 1",
         "leaders": ["Chủ tịch UBND"]}]), programme_sidecar(period))
    wait_for(lambda: sent_all(hdnd, 1) and sent_all(ubnd, 1), timeout=30,
             what="both programmes receipted")

    seen = cli_json(tinhuy, "deadlines", "--period", period)
    assert seen["consolidating_office"] == "tinhuy"
    assert {(r["office"], r["kind"], r["state"], r["received_at"] is not None)
            for r in seen["deadlines"]} == {("hdnd", "monthly", "on-time", True),
                                            ("ubnd", "monthly", "on-time", True)}
    own = cli_json(hdnd, "deadlines", "--period", period)["deadlines"]
    assert [(r["office"], r["owed_to"], r["state"]) for r in own] == [
        ("hdnd", "tinhuy", "on-time")]
    assert own[0]["sent_at"] and own[0]["received_at"]

    merged = cli_json(tinhuy, "programmes", "consolidate", "--period", period)
    assert merged["items"] == 2, merged
    assert [(c["kind"], c["subject"], {c["first"]["office"], c["second"]["office"]})
            for c in merged["clashes"]] == [("place", "Phòng họp 1", {"hdnd", "ubnd"})]
    assert all(os.path.exists(p) for p in merged["written"])

    status = cli_json(tinhuy, "status")
    assert status["deadlines"]["by_office"]["hdnd"]["on-time"] >= 1
    metrics = tinhuy_metrics(tinhuy)
    assert 'lienthong_obligations{office="hdnd",state="on-time"}' in metrics

    # A conclusion: refused when it would not reach every office concerned, sent otherwise;
    # the dispatch shows who has registered it.
    conclusion = ('type = "kết luận"\nnumber = "15-KL/TU"\nmeeting = "Giao ban quý"\n'
                  'meeting_host = "tinhuy"\nconcerned = ["hdnd", "ubnd"]\n')
    drop_with_sidecar(tinhuy, "hdnd", "Ket luan sai.pdf", b"%PDF KL", conclusion)
    drop_with_sidecar(tinhuy, "council", "Ket luan 15.pdf", b"%PDF KL 15", conclusion)
    wait_for(lambda: (tinhuy.home / "failed" / "Ket luan sai.pdf.reason.txt").exists(),
             timeout=30, what="the misrouted conclusion refused")
    assert "missing: ubnd" in (tinhuy.home / "failed" / "Ket luan sai.pdf.reason.txt").read_text(
        encoding="utf-8")
    wait_for(lambda: sent_all(tinhuy, 1), timeout=30, what="the conclusion receipted")
    (sent,) = [d for d in documents_sent(tinhuy) if d.meta.get("type") == "conclusion"]
    marked = cli(hdnd, "mark", sent.message_id, "registered", "--number", "88/VP", "--wait", "20")
    assert marked.returncode == 0, marked.stderr
    wait_for(lambda: len(tinhuy.query("statuses_for", sent.message_id)) == 1, timeout=30,
             what="the registered status at the host")
    rows = cli_json(tinhuy, "deadlines", "--kind", "conclusion")["deadlines"]
    assert {(r["office"], r["state"]) for r in rows} == {("hdnd", "on-time"), ("ubnd", "due")}


def tinhuy_metrics(node: TestNode) -> str:
    import urllib.request
    address = (node.home / "state" / "status.port").read_text().strip()
    if address.isdigit():
        address = f"127.0.0.1:{address}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}/metrics", timeout=10) as answer:
        return answer.read().decode("utf-8")


def test_the_consolidating_office_reminds_an_office_that_owes_a_programme(network) -> None:  # type: ignore[no-untyped-def]
    """With send_reminders on, tinhuy's node sends hdnd a signed message for the weekly
    programme of this week (due last Thursday, not received: overdue); it arrives in hdnd's
    inbox as a Vietnamese text, and a restart of tinhuy sends it no second time."""
    from lienthong.node.documents.periods import period_containing

    nodes = network("tinhuy", "hdnd")
    tinhuy, hdnd = nodes["tinhuy"], nodes["hdnd"]
    today = dt.datetime.now(VN).date()
    with open(tinhuy.home / "lienthong.toml", "a", encoding="utf-8") as config:
        config.write(f'\n[coordination]\nkinds = ["weekly"]\noffices = ["hdnd"]\n'
                     f'send_reminders = true\nsince = {today - dt.timedelta(days=14)}\n')
    for node in nodes.values():
        node.start()
    week = str(period_containing("weekly", today))
    inbox = hdnd.home / "inbox" / "tinhuy"

    def overdue_texts() -> list[str]:
        if not inbox.is_dir():
            return []
        texts = [p.read_text(encoding="utf-8") for p in inbox.glob("*.txt")]
        return [t for t in texts if "Quá hạn" in t and f"kỳ {week}" in t]

    wait_for(lambda: len(overdue_texts()) == 1, timeout=60,
             what="the overdue reminder in hdnd's inbox")
    (text,) = overdue_texts()
    assert "chương trình công tác tuần" in text and "hdnd" in text and "tinhuy" in text
    claimed = audit_of(tinhuy, "programme-reminder")
    assert {(e["period"], e["step"]) for e in claimed} >= {(week, "overdue")}
    assert all(e["peer"] == hdnd.node_id for e in claimed)
    wait_for(lambda: len(audit_of(tinhuy, "programme-reminder-queued")) == len(claimed),
             timeout=30, what="every claimed reminder queued")
    # What tinhuy's deadlines say agrees: each reminder names an overdue or reminded row.
    rows = {(r["period"], r["state"]) for r in cli_json(tinhuy, "deadlines", "--kind",
                                                       "weekly")["deadlines"]}
    assert (week, "overdue") in rows

    before = len(list(inbox.glob("*.txt")))
    assert tinhuy.stop() == 0
    tinhuy.start()
    wait_for(lambda: len(audit_of(tinhuy, "node-started")) == 2, timeout=30,
             what="tinhuy started again")
    time.sleep(3)  # its start-up check has run (it is the first thing after listening)
    assert len(audit_of(tinhuy, "programme-reminder")) == len(claimed)
    assert len(list(inbox.glob("*.txt"))) == before
