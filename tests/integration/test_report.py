"""The yearly report from a year played through three real nodes (``lienthong demo --year``).

One module-wide history (about a minute): the generator's nodes run in a child process with
real TLS, SQLite and outbox watchers, on an injected wall clock; then each office's report is
made by the real CLI, rendered in headless Chromium (a screenshot kept under build/), printed
to PDF, and its figures are checked against the generator's plan and against the other
offices' reports for the documents they share.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser  # noqa: F401 - the session-wide Chromium fixture

ROOT = Path(__file__).resolve().parents[2]
YEAR = 2025
OFFICES = ("tinhuy", "hdnd", "ubnd")
ARTIFACTS = ROOT / "build" / "test-artifacts" / "report"


def _lienthong(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("history") / "network"
    done = _lienthong("demo", "--year", str(YEAR), "--dir", str(folder), timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    manifest = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    reports = {}
    for office in OFFICES:
        out = folder / f"{office}-{YEAR}.html"
        made = _lienthong("report", "--home", str(folder / office), "--year", str(YEAR),
                          "--out", str(out), "--json")
        assert made.returncode == 0, made.stderr
        reports[office] = {"json": json.loads(made.stdout), "html": out}
    return {"folder": folder, "manifest": manifest, "reports": reports}


def _pair(report: dict[str, Any], sender: str, recipient: str) -> dict[str, Any]:
    return next(p for p in report["pairs"]
                if p["sender"] == sender and p["recipient"] == recipient)


def test_figures_match_the_traffic_played(history: dict[str, Any]) -> None:
    """Every pair's documents by type and month, as the generator sent them."""
    played: Counter[tuple[str, str, str, int]] = Counter()
    for doc in history["manifest"]["documents"]:
        if doc["refused"]:
            continue
        for recipient in doc["recipients"]:
            played[(doc["sender"], recipient, doc["type"], int(doc["day"][5:7]))] += 1
    for office in OFFICES:
        report = history["reports"][office]["json"]
        seen: Counter[tuple[str, str, str, int]] = Counter()
        for pair in report["pairs"]:
            assert pair["receipted"] == pair["documents"], pair
            assert sum(pair["by_month"]) == pair["documents"] == sum(pair["by_type"].values())
        for (sender, recipient, doc_type, month), n in played.items():
            if office not in (sender, recipient):
                continue
            seen[(sender, recipient, doc_type, month)] = n
        expected_pairs: Counter[tuple[str, str]] = Counter()
        expected_types: Counter[tuple[str, str, str]] = Counter()
        expected_months: dict[tuple[str, str], list[int]] = {}
        for (sender, recipient, doc_type, month), n in seen.items():
            expected_pairs[(sender, recipient)] += n
            expected_types[(sender, recipient, doc_type)] += n
            expected_months.setdefault((sender, recipient), [0] * 12)[month - 1] += n
        assert {(p["sender"], p["recipient"]): p["documents"]
                for p in report["pairs"]} == dict(expected_pairs)
        for pair in report["pairs"]:
            key = (pair["sender"], pair["recipient"])
            assert pair["by_month"] == expected_months[key]
            for doc_type, n in pair["by_type"].items():
                assert expected_types[(*key, doc_type)] == n


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_outages_show_in_the_latencies(history: dict[str, Any]) -> None:
    """The generator took ubnd offline for two days and hdnd for a weekend: each document
    sent to the office while it was down has a latency of at least the outage's remaining
    time (receipted only once it was back), at both ends; every other delivery took less than
    an hour; the histogram's slow buckets hold exactly those documents, and the p95 of a pair
    where they are more than 5 % shows it."""
    manifest = history["manifest"]
    outages = manifest["outages"]
    assert {o["office"] for o in outages} == {"ubnd", "hdnd"}
    waited: dict[tuple[str, str], float] = {}  # (message ID, recipient) -> outage end
    for outage in outages:
        start, end = _seconds(outage["start"]), _seconds(outage["end"])
        for doc in manifest["documents"]:
            if outage["office"] in doc["recipients"] and not doc["refused"] and \
                    start <= _seconds(f"{doc['day']}T02:00:00Z") < end:
                waited[(doc["message_id"], outage["office"])] = end
    assert len(waited) >= 4, waited  # the plan sends three reports into the outages, and more
    for office in OFFICES:
        report = history["reports"][office]["json"]
        slow = set()
        for d in report["deliveries"]:
            key = (d["message_id"], d["recipient"])
            if key in waited:
                assert d["latency"] >= waited[key] - _seconds(d["created"]) > 3600, d
                assert _seconds(d["receipt_time"]) >= waited[key]
                slow.add(key)
            else:
                assert d["latency"] is not None and d["latency"] < 3600, d
        assert slow == {k for k in waited if office in (k[1], _sender(manifest, k[0]))}
        assert sum(report["latency_histogram"][3:]) == len(slow)
        for pair in report["pairs"]:
            mine = sorted(d["latency"] for d in report["deliveries"]
                          if (d["sender"], d["recipient"]) == (pair["sender"], pair["recipient"]))
            assert pair["latency"]["p95"] == mine[math.ceil(0.95 * len(mine)) - 1]
    hdnd_ubnd = _pair(history["reports"]["ubnd"]["json"], "hdnd", "ubnd")
    assert hdnd_ubnd["latency"]["p95"] > 86400  # two of its 13 waited for ubnd


def _sender(manifest: dict[str, Any], message_id: str) -> str:
    return next(d["sender"] for d in manifest["documents"] if d["message_id"] == message_id)


def _as_of_today(expected: str, period: str) -> str:
    """A programme never sent is "missing" once its period has ended, "overdue" before."""
    from lienthong.node.documents.periods import parse_period

    ended = parse_period(period).last_day < dt.date.today()
    return "overdue" if expected == "missing" and not ended else expected


def test_programme_obligations_as_planned(history: dict[str, Any]) -> None:
    """On time, late and missing programmes at each owing office and at tinhuy, as planned."""
    planned = {(o["office"], o["period"]): _as_of_today(o["expected"], o["period"])
               for o in history["manifest"]["obligations"]}
    for office in OFFICES:
        rows = [r for r in history["reports"][office]["json"]["obligations"]
                if r["kind"] in ("annual", "quarterly", "monthly")]
        got = {(r["office"], r["period"]): r["state"] for r in rows}
        wanted = {k: v for k, v in planned.items() if office in (k[0], "tinhuy")}
        assert got == wanted, office
    assert "missing" in set(planned.values()) and "late" in set(planned.values())


def test_recalls_refusals_reconciliations_and_heads(history: dict[str, Any]) -> None:
    manifest = history["manifest"]
    recalled = {a["key"] for a in manifest["actions"] if a["action"] == "recall"}
    refused = {d["name"] for d in manifest["documents"] if d["refused"]}
    for office in OFFICES:
        report = history["reports"][office]["json"]
        senders = {d["key"]: d for d in manifest["documents"]}
        involved = {k for k in recalled if office == senders[k]["sender"]
                    or office in senders[k]["recipients"]}
        assert len(report["recalls"]) == len(involved)
        assert all(r["reason"] == "Sai sót về số liệu <phụ lục 2>" for r in report["recalls"])
        own_refused = {d["name"] for d in manifest["documents"]
                       if d["refused"] and d["sender"] == office}
        assert {f["name"] for f in report["failures"] if f["what"] == "refused"} == own_refused
        periods = {(r["peer"], r["period"]) for r in report["reconciliations"]}
        for peer in OFFICES:
            if peer != office:
                assert {(peer, f"{YEAR}-{m:02d}") for m in range(1, 13)} <= periods
        assert all(r["state"] == "agreed" for r in report["reconciliations"])
        witnessing = {w["peer"]: w for w in report["witnessing"]}
        assert set(witnessing) == set(OFFICES) - {office}
        assert all(w["ours_witnessed"] >= 11 and w["theirs_held"] >= 11
                   for w in witnessing.values())
    assert refused and len(recalled) == 2


def test_two_offices_agree_on_the_documents_they_share(history: dict[str, Any]) -> None:
    """Counts by type and month, receipts, delivery and processing times: the same at both
    ends of every pair, and the due-date obligations of the owing office the same at tinhuy."""
    reports = {o: history["reports"][o]["json"] for o in OFFICES}
    compared = 0
    for a in OFFICES:
        for b in OFFICES:
            if a == b:
                continue
            at_sender = next((p for p in reports[a]["pairs"]
                              if p["sender"] == a and p["recipient"] == b), None)
            at_recipient = next((p for p in reports[b]["pairs"]
                                 if p["sender"] == a and p["recipient"] == b), None)
            assert (at_sender is None) == (at_recipient is None)
            if at_sender is not None:
                assert at_sender == at_recipient, (a, b)
                compared += 1
    assert compared == 6  # the plan sends in every direction
    for office in ("hdnd", "ubnd"):
        # Conclusions are followed at the office that sent them only (docs/coordination.md).
        shared = ("annual", "quarterly", "monthly", "document")
        own = sorted((r["kind"], r["period"], r["due"], r["state"], r["message_id"])
                     for r in reports[office]["obligations"]
                     if r["office"] == office and r["kind"] in shared)
        at_tinhuy = sorted((r["kind"], r["period"], r["due"], r["state"], r["message_id"])
                           for r in reports["tinhuy"]["obligations"]
                           if r["office"] == office and r["kind"] in shared)
        assert own == at_tinhuy


def test_rendered_in_chromium_and_printed_to_pdf(history: dict[str, Any],
                                                 browser: Any) -> None:  # noqa: F811
    from pypdf import PdfReader

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for office in OFFICES:
        html = history["reports"][office]["html"]
        text = html.read_text(encoding="utf-8")
        # Self-contained: nothing to run, nothing fetched (the SVG namespaces are names).
        assert "<script" not in text and "<link" not in text and "<img" not in text
        assert 'src="' not in text and "url(http" not in text and "@import" not in text
        assert "Sai sót về số liệu &lt;phụ lục 2&gt;" in text  # a recall's reason, inert
        assert text.count("<svg") == 3
        context = browser.new_context(viewport={"width": 1100, "height": 1400})
        try:
            page = context.new_page()
            page.goto(html.as_uri())
            assert page.locator("h1").inner_text() == f"Báo cáo kết quả phối hợp năm {YEAR}"
            sent = history["reports"][office]["json"]
            summary = page.locator("#summary-line").inner_text()
            total = sum(p["documents"] for p in sent["pairs"] if p["sender"] == office)
            assert f"đã gửi {total} và nhận" in summary
            page.screenshot(path=str(ARTIFACTS / f"{office}-{YEAR}.png"), full_page=True)
            # Every table fits the page's text column, on a wide screen, a narrow one, and
            # on A4 paper (the print rules): none is wider than the body.
            for width, media in ((1100, "screen"), (720, "screen"), (703, "print")):
                page.emulate_media(media=media)
                page.set_viewport_size({"width": width, "height": 1400})
                wide = page.evaluate("""() => {
                    const body = document.body.getBoundingClientRect().right;
                    return [...document.querySelectorAll('table')]
                        .filter(t => t.getBoundingClientRect().right > body + 0.5)
                        .map(t => t.id || t.rows[0].innerText)
                        .concat(document.documentElement.scrollWidth >
                                document.documentElement.clientWidth ? ['the page'] : []);
                }""")
                assert wide == [], (office, width, media, wide)
        finally:
            context.close()
    pdf = history["folder"] / f"hdnd-{YEAR}.pdf"
    made = _lienthong("report", "--home", str(history["folder"] / "hdnd"), "--year",
                      str(YEAR), "--out", str(pdf.with_suffix(".html")), "--pdf")
    assert made.returncode == 0, made.stderr
    assert pdf.read_bytes().startswith(b"%PDF-")
    reader = PdfReader(str(pdf))
    assert len(reader.pages) >= 2
    words = " ".join(page.extract_text() for page in reader.pages)
    hdnd = history["reports"]["hdnd"]["json"]
    sent_total = sum(p["documents"] for p in hdnd["pairs"] if p["sender"] == "hdnd")
    assert f"hdnd đã gửi {sent_total} và nhận" in " ".join(words.split())
    shutil.copy(pdf, ARTIFACTS / pdf.name)


def test_english_and_a_year_without_data(history: dict[str, Any]) -> None:
    out = history["folder"] / "en.html"
    made = _lienthong("report", "--home", str(history["folder"] / "ubnd"), "--year",
                      str(YEAR), "--out", str(out), "--lang", "en")
    assert made.returncode == 0, made.stderr
    assert f"Cooperation report for {YEAR}" in out.read_text(encoding="utf-8")
    empty = history["folder"] / "empty.html"
    made = _lienthong("report", "--home", str(history["folder"] / "ubnd"), "--year", "2031",
                      "--out", str(empty))
    assert made.returncode == 2
    assert "nothing to report for 2031" in made.stderr
    assert not empty.exists()
