"""Status snapshot, warnings, rendering, console keys and metrics, from a real store and home."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from lienthong.keys.card import make_card, read_card
from lienthong.keys.directory import Peer
from lienthong.keys.identity import generate_node_keys
from lienthong.node.cli.console import ESC, Mode, View, press, split_keys
from lienthong.node.cli.main import main
from lienthong.node.cli.status import gather
from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.delivery.links import LinkState
from lienthong.node.delivery.outcomes import Progress
from lienthong.node.status.api import host_name, to_json
from lienthong.node.status.metrics import (
    MetricsState,
    escape_label,
    histogram,
    label_code,
    render_metrics,
)
from lienthong.node.status.render import clean, render_status, render_trail
from lienthong.node.status.snapshot import Thresholds, build_snapshot, live_from_links, probe_home
from lienthong.node.store.records import NewDispatch, NewReceived
from tests.node.audit.test_verify import T0, T2, Home, make_honest_home

HOSTILE = "[bold red]GIẢ[/bold red]\x1b[2J\u202etxt.exe"
#: Two hours and a bit after the honest home's events.
NOW = parse_rfc3339(T2) + 2 * 3600 + 300


@dataclass
class Office:
    honest: Home
    ubnd_id: str
    queued_id: str

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return self.honest.config

    def store(self):  # type: ignore[no-untyped-def]
        return self.honest.store()


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    """The honest home, plus a peer 'ubnd' that is down with one document waiting for it, a
    document with a hostile name received from hdnd, and some audited failures."""
    honest = make_honest_home(tmp_path)
    ubnd = generate_node_keys("ubnd", now=T0)
    card = read_card(make_card(ubnd, addresses=["127.0.0.1:7703"], now=T0))
    store = honest.store()
    queued_id = "c3" * 16
    try:
        store.add_peer(Peer.from_card(card, now=T0), card.token, T0)
        store.add_dispatch(NewDispatch(
            message_id=queued_id, name="Tờ trình 7.pdf", target="ubnd",
            spool_dir=str(honest.home / "spool" / queued_id), header_token="h.e.s", size=2048,
            sha256="d" * 64, ciphertext_size=2100, priority=3, meta={},
            recipients=(card.node_id,)), T0)
        store.record_connect_failure(card.node_id, "Connection refused", parse_rfc3339(T2) + 60,
                                     T2)
        store.begin_publish(NewReceived(
            sender_node_id=honest.peer.node_id, message_id="e4" * 16, name=HOSTILE,
            stored_path="inbox/hdnd/x", size=5, sha256="e" * 64, header_token="h.x.y",
            meta={}), T2)
        store.append_audit("security-refused", "2026-11-25T09:00:00.000Z",
                           detail={"code": "tls-unknown-key"})
        store.append_audit("rejected-by-peer", "2026-11-25T09:00:01.000Z",
                           peer=honest.peer.node_id, message_id=queued_id,
                           detail={"code": 'evil"\ncode', "reason": HOSTILE})
    finally:
        store.close()
    yield Office(honest, card.node_id, queued_id)


def snapshot_of(office: Office, *, now: float = NOW, live: dict | None = None,
                probe: dict | None = None, running: bool = False) -> dict:
    store = office.store()
    try:
        return build_snapshot(
            store, node={"name": "tinhuy", "display_name": "Văn phòng Tỉnh ủy",
                         "node_id": office.honest.keys.node_id, "listen": "0.0.0.0:7701",
                         "home": str(office.honest.home)},
            home=office.honest.home, now=now, daemon={"running": running, "note": ""},
            live=live, probe=probe if probe is not None else probe_home(office.honest.home),
            tz=UTC)
    finally:
        store.close()


def rendered(snapshot: dict, **kwargs) -> str:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_status(snapshot, **kwargs))
    return console.export_text()


def peer(snapshot: dict, name: str) -> dict:
    return next(p for p in snapshot["peers"] if p["name"] == name)


# -- the snapshot --------------------------------------------------------------------------------

def test_snapshot_says_what_waits_for_whom(office: Office) -> None:
    """Queue depth, bytes and the oldest waiting document with its age, per peer."""
    snap = snapshot_of(office)
    ubnd = peer(snap, "ubnd")
    assert ubnd["queue"]["count"] == 1 and ubnd["queue"]["bytes"] == 2048
    oldest = ubnd["queue"]["oldest"]
    assert oldest["name"] == "Tờ trình 7.pdf" and oldest["message_id"] == office.queued_id
    assert oldest["age_seconds"] == NOW - parse_rfc3339(T0)
    assert ubnd["failures"] == 1 and ubnd["last_error"] == "Connection refused"
    hdnd = peer(snap, "hdnd")
    assert hdnd["queue"] == {"count": 0, "bytes": 0, "oldest": None}
    assert hdnd["sent"]["documents"] == 1 and hdnd["received"]["documents"] == 1
    assert snap["outbox"]["dispatches"] == {"sending": 1, "sent": 1, "failed": 0}
    assert snap["outbox"]["deliveries"] == {"queued": 1, "delivered": 1, "failed": 0}
    assert snap["today"]["received"] == 1 and snap["today"]["sent"] == 1
    assert {r["name"]: r["state"] for r in snap["recent_received"]} == {
        "Báo cáo kỳ họp 9.txt": "stored", HOSTILE: "publishing"}
    json.dumps(snap)  # plain values only


def test_a_stopped_daemon_is_critical_and_the_store_still_speaks(office: Office) -> None:
    """Without the daemon: a critical warning saying how to start it, store data still shown."""
    snap = snapshot_of(office)
    assert snap["health"] == "critical"
    assert snap["warnings"][0]["code"] == "daemon-down"
    assert f"lienthong run {office.honest.home}" in snap["warnings"][0]["message"]
    assert snap["daemon"]["running"] is False and snap["transfers"] == []


def test_peer_unreachable_for_hours_is_a_warning(office: Office) -> None:
    """ubnd, never seen, a document waiting 2 h+: overdue by default, unreachable past 1 h."""
    snap = snapshot_of(office, running=True, live={"peers": {}, "transfers": []})
    codes = {(w["code"], w["peer"]) for w in snap["warnings"]}
    assert ("peer-unreachable", "ubnd") not in codes and ("receipt-overdue", "ubnd") in codes
    store = office.store()
    try:
        tight = build_snapshot(store, node={"name": "tinhuy", "home": "h"},
                               home=office.honest.home, now=NOW, daemon={"running": True},
                               live={"peers": {}}, probe={},
                               thresholds=Thresholds(peer_unreachable_hours=1.0))
        loose = build_snapshot(store, node={"name": "tinhuy", "home": "h"},
                               home=office.honest.home, now=NOW, daemon={"running": True},
                               live={"peers": {}}, probe={},
                               thresholds=Thresholds(peer_unreachable_hours=48.0))
    finally:
        store.close()
    unreachable = [w for w in tight["warnings"] if w["code"] == "peer-unreachable"]
    assert len(unreachable) == 1 and unreachable[0]["peer"] == "ubnd"
    assert "Connection refused" in unreachable[0]["message"]
    overdue = [w for w in loose["warnings"] if w["code"] == "receipt-overdue"]
    assert len(overdue) == 1 and overdue[0]["peer"] == "ubnd"


def test_low_disk_and_unwritable_folders_are_critical(office: Office) -> None:
    """A probe with 100 MiB free and state/ unwritable yields two critical warnings."""
    probe = {"disk": {"free_bytes": 100 * 1024 ** 2, "total_bytes": 100 * 1024 ** 3},
             "not_writable": ["state"], "outbox_waiting": 3, "failed_files": 0}
    snap = snapshot_of(office, probe=probe, running=True, live={"peers": {}})
    critical = [w["code"] for w in snap["warnings"] if w["level"] == "critical"]
    assert critical == ["disk-low", "not-writable"]
    assert snap["outbox"]["waiting_in_outbox"] == 3


def test_probe_counts_files_waiting_in_the_outbox_but_not_temporary_ones(tmp_path: Path) -> None:
    """Visible files in outbox/<target>/ count; hidden, .part and ~$ files do not."""
    for name in ("a.pdf", ".b.pdf.part", "~$c.docx", "d.txt.part"):
        (tmp_path / "outbox" / "ubnd").mkdir(parents=True, exist_ok=True)
        (tmp_path / "outbox" / "ubnd" / name).write_text("x")
    probe = probe_home(tmp_path)
    assert probe["outbox_waiting"] == 1
    assert "state" in probe["not_writable"]  # missing folders cannot be written either


def test_recent_failures_and_security_refusals_warn(office: Office) -> None:
    """Audited refusals in the last 24 h are grouped by kind and code and raise a warning."""
    snap = snapshot_of(office, running=True, live={"peers": {}})
    kinds = {(f["kind"], f["code"]) for f in snap["failures_24h"]}
    assert ("security-refused", "tls-unknown-key") in kinds
    assert any(w["code"] == "security-refusals" for w in snap["warnings"])
    later = snapshot_of(office, now=NOW + 2 * 86400, running=True, live={"peers": {}})
    assert later["failures_24h"] == []


def test_live_transfers_have_rate_and_eta() -> None:
    """A transfer that moved 1 MiB in 2 s from offset 0 of 5 MiB: 512 KiB/s, 8 s left.

    Rate and uptime come from the timer clock: the wall clock stepped back a day since the
    start (``started_at`` is after ``now``) and neither changes."""
    link = SimpleNamespace(state=LinkState.CONNECTED, last_error=None, offered={"m": 1},
                           progress={"m": Progress("m" * 32, "Niên giám.pdf", 5 << 20, 1 << 20,
                                                   100.0, 0)})
    live = live_from_links({"PEER": link}, node_id="ME", now=NOW, started_at=NOW + 86400 - 62,
                           uptime=62.0, monotonic=102.0, receiving=[("OTHER", "f" * 32)])
    transfer = live["transfers"][0]
    assert transfer["rate_bytes_per_second"] == 512 * 1024
    assert transfer["eta_seconds"] == 8.0
    assert transfer["elapsed_seconds"] == 2.0
    assert live["peers"]["PEER"] == {"link": "connected", "connected": True,
                                     "last_error": None, "offered": 1}
    assert live["uptime_seconds"] == 62.0 and live["receiving"][0]["peer"] == "OTHER"
    assert live["now"] == NOW


# -- rendering -----------------------------------------------------------------------------------

def test_the_screen_answers_the_operators_questions(office: Office) -> None:
    """Node, daemon state, who waits for what, what arrived, in one rendered screen."""
    link = SimpleNamespace(state=LinkState.CONNECTED, last_error=None, offered={},
                           progress={"m": Progress(office.queued_id, "Tờ trình 7.pdf", 2100,
                                                   700, 5.0, 0)})
    live = live_from_links({office.ubnd_id: link}, node_id="ME", now=NOW, started_at=NOW - 90,
                           uptime=90.0, monotonic=7.0)
    text = rendered(snapshot_of(office, running=True, live=live))
    for expected in ("tinhuy", "Văn phòng Tỉnh ủy", "● running for 1 min", "ubnd", "hdnd",
                     "Tờ trình 7.pdf", "2 h", "1 · 2.0 KiB", "Transfers in progress",
                     "700 B / 2.1 KiB", "Báo cáo kỳ họp 9.txt", "Latest documents received",
                     "✓ hdnd", "… ubnd waiting", "1 received"):
        assert expected in text, expected
    down = rendered(snapshot_of(office))
    assert "✗ NOT RUNNING" in down and "daemon is not running" in down


def test_peer_filter_limits_the_screen_to_one_peer(office: Office) -> None:
    """With peer='ubnd' the hdnd rows and documents disappear."""
    text = rendered(snapshot_of(office), peer="ubnd")
    assert "ubnd" in text and "Báo cáo kỳ họp 9.txt" not in text and "Công văn 45" not in text


def test_hostile_names_are_shown_as_inert_text(office: Office) -> None:
    """Markup stays literal; escape sequences and bidi overrides never reach the terminal."""
    snapshot = snapshot_of(office)
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(render_status(snapshot))
    raw = console.file.getvalue()
    plain = console.export_text()
    assert "[bold red]GIẢ[/bold red]" in plain
    assert "\x1b[2J" not in raw and "\u202e" not in raw
    assert clean(HOSTILE) == "[bold red]GIẢ[/bold red]\ufffd[2J\ufffdtxt.exe"


def test_status_shows_what_each_document_is_and_what_became_of_it(office: Office) -> None:
    """Issue 7: the signed metadata (type, number, urgency, subject, confidentiality) and the
    latest processing status are shown beside each document, in the JSON and on screen; a
    peer's metadata is inert text like its file names."""
    from lienthong.node.store.records import NewStatus
    store = office.store()
    sent_id, got_id = "a7" * 16, "b8" * 16
    me, hdnd = office.honest.keys.node_id, office.honest.peer.node_id
    try:
        store.add_dispatch(NewDispatch(
            message_id=sent_id, name="Nghị quyết 12.pdf", target="hdnd",
            spool_dir=str(office.honest.home / "spool" / sent_id), header_token="h.e.s",
            size=10, sha256="a" * 64, ciphertext_size=60, priority=0,
            meta={"kind": "document", "type": "resolution", "number": "12-NQ/TU",
                  "urgency": "flash", "confidentiality": "secret",
                  "subject": "Về chuyển đổi số"}, recipients=(hdnd,)), T0)
        store.begin_publish(NewReceived(
            sender_node_id=hdnd, message_id=got_id, name="Công văn 9.txt",
            stored_path="inbox/hdnd/y", size=5, sha256="b" * 64, header_token="h.x.z",
            meta={"type": "report", "number": "9/BC-HĐND", "urgency": "normal",
                  "subject": HOSTILE}), T2)
        for message_id, signer, status in ((sent_id, hdnd, "registered"),
                                           (sent_id, hdnd, "completed"),
                                           (got_id, me, "assigned")):
            store.record_status(NewStatus(
                message_id=message_id, peer_node_id=signer, sender_node_id=me,
                status=status, note="", register_number=None, token=f"t.{status}.s",
                token_sha256=hashlib.sha256(status.encode()).hexdigest(),
                receipt_sha256=None, time=T2), T2)
    finally:
        store.close()
    snap = snapshot_of(office)
    sent = next(r for r in snap["recent_sent"] if r["message_id"] == sent_id)
    assert sent["document"] == {"kind": "document", "type": "resolution",
                                "number": "12-NQ/TU", "urgency": "flash",
                                "confidentiality": "secret", "subject": "Về chuyển đổi số"}
    assert sent["recipients"][0]["processing"] == "completed"   # the latest one
    got = next(r for r in snap["recent_received"] if r["message_id"] == got_id)
    assert got["document"]["number"] == "9/BC-HĐND" and got["processing"] == "assigned"
    other = next(r for r in snap["recent_received"] if r["message_id"] != got_id)
    assert other["document"] == {} and other["processing"] is None
    json.dumps(snap)
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(render_status(snap))
    plain = console.export_text()
    assert "resolution · 12-NQ/TU · flash · secret" in plain
    assert "Về chuyển đổi số" in plain and "completed" in plain and "assigned" in plain
    assert "report · 9/BC-HĐND" in plain and "[bold red]GIẢ[/bold red]" in plain
    assert "\x1b[2J" not in console.file.getvalue()


def test_trail_rendering_shows_the_story(office: Office) -> None:
    """A trail lists the document, its recipients and its audit events in order."""
    from lienthong.node.status.snapshot import build_trail
    store = office.store()
    try:
        story = build_trail(store, office.honest.sent_message_id)
        missing = build_trail(store, "0" * 32)
    finally:
        store.close()
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_trail(story, now=NOW))
    text = console.export_text()
    assert [e["kind"] for e in story["events"]] == ["taken", "sealed", "receipt-verified",
                                                    "delivered"]
    assert "Công văn 45.txt" in text and "→ hdnd" in text and "receipt-verified" in text
    assert missing["found"] is False


# -- the command line ----------------------------------------------------------------------------

def test_status_command_json_and_screen(office: Office) -> None:
    """lienthong status HOME --json gives the snapshot; without --json, the screen."""
    result = CliRunner().invoke(main, ["status", str(office.honest.home), "--json"])
    snap = json.loads(result.output)
    assert result.exit_code == 0 and snap["daemon"]["running"] is False
    assert {p["name"] for p in snap["peers"]} == {"hdnd", "ubnd"}
    result = CliRunner().invoke(main, ["status", "--home", str(office.honest.home)])
    assert result.exit_code == 0 and "NOT RUNNING" in result.output
    # For monitoring: the daemon being down is critical (2); without --check always 0.
    checked = CliRunner().invoke(main, ["status", str(office.honest.home), "--check", "--json"])
    assert checked.exit_code == 2 and json.loads(checked.output)["health"] == "critical"


def test_a_stale_port_file_means_daemon_down(office: Office) -> None:
    """A port file left by a crash, with nothing listening, is reported, not trusted."""
    from tests.integration.harness import free_port
    (office.honest.home / "state" / "status.port").write_text(f"127.0.0.1:{free_port()}\n")
    snap = gather(office.config, now=NOW)
    assert snap["daemon"]["running"] is False and "Nothing answers" in snap["daemon"]["note"]


def test_another_program_on_the_port_is_not_taken_for_the_daemon(office: Office) -> None:
    """Something answering JSON with another node ID is not our daemon."""
    class Impostor(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"node_id": "SOMEONE-ELSE", "peers": {}}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (office.honest.home / "state" / "status.port").write_text(
            f"127.0.0.1:{server.server_address[1]}\n")
        snap = gather(office.config, now=NOW)
    finally:
        server.shutdown()
        server.server_close()
    assert snap["daemon"]["running"] is False and "Something else" in snap["daemon"]["note"]


def test_console_without_a_terminal_prints_one_snapshot_and_exits(office: Office) -> None:
    """With stdin not a TTY the console shows one screen, says why, and exits 0."""
    result = CliRunner().invoke(main, ["console", str(office.honest.home)])
    assert result.exit_code == 0
    assert "tinhuy" in result.output and "needs an interactive terminal" in result.output


def test_console_keys_form_a_small_state_machine() -> None:
    """p cycles the peer filter; t, typing, Enter shows a trail; Esc goes back; q quits."""
    peers = ["hdnd", "ubnd"]
    view = View()
    view = press(view, "p", peers)
    assert view.peer == "hdnd"
    view = press(press(view, "p", peers), "p", peers)
    assert view.peer is None
    view = press(view, "t", peers)
    for key in "c3c3c3x\x7f":
        view = press(view, key, peers)
    assert view.mode is Mode.TYPING and view.typed == "c3c3c3"
    assert press(view, "q", peers).typed == "c3c3c3q"  # q is a letter while typing
    view = press(view, "\r", peers)
    assert view.mode is Mode.TRAIL and view.query == "c3c3c3"
    assert press(view, ESC, peers).mode is Mode.STATUS
    assert press(view, "q", peers).mode is Mode.QUIT
    assert press(press(View(), "t", peers), ESC, peers).mode is Mode.STATUS
    assert split_keys("\x1b[A") == [] and split_keys(ESC) == [ESC]
    assert split_keys("pq") == ["p", "q"]


# -- metrics -------------------------------------------------------------------------------------

def metric_lines(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_describe_queues_traffic_and_failures(office: Office) -> None:
    """Per-peer gauges and counters, failures by kind/code, and a cumulative histogram."""
    store = office.store()
    state = MetricsState()
    try:
        snap = snapshot_of(office, running=True, live={"peers": {}, "uptime_seconds": 5.0})
        names = {p["node_id"]: p["name"] for p in snap["peers"]}
        state.refresh(store, names)
        state.refresh(store, names)  # folding twice must not count twice
    finally:
        store.close()
    text = render_metrics(snap, state)
    assert metric_lines(text, "lienthong_queue_depth") == {
        'lienthong_queue_depth{peer="hdnd"}': 0, 'lienthong_queue_depth{peer="ubnd"}': 1}
    assert metric_lines(text, "lienthong_documents_sent_total")[
        'lienthong_documents_sent_total{peer="hdnd"}'] == 1
    failures = metric_lines(text, "lienthong_failures_total")
    assert failures == {
        'lienthong_failures_total{kind="rejected-by-peer",code="other",peer="hdnd"}': 1,
        'lienthong_failures_total{kind="security-refused",code="tls-unknown-key",peer="none"}':
            1}
    buckets = metric_lines(text, "lienthong_receipt_latency_seconds_bucket")
    assert buckets['lienthong_receipt_latency_seconds_bucket{le="1.0"}'] == 0
    assert buckets['lienthong_receipt_latency_seconds_bucket{le="5.0"}'] == 1
    assert buckets['lienthong_receipt_latency_seconds_bucket{le="+Inf"}'] == 1
    assert metric_lines(text, "lienthong_uptime_seconds") == {"lienthong_uptime_seconds": 5.0}
    assert re.search(r'^lienthong_warnings\{code="peer-unreachable"\} 1$', text, re.M) is None


def test_metric_labels_cannot_be_injected_or_multiplied() -> None:
    """Label values are escaped; peer codes are used only if ours-looking and bounded."""
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    known: set[str] = set()
    assert label_code('x"} 1\nfake 2', known) == "other"
    assert label_code("digest-mismatch", known) == "digest-mismatch"
    for index in range(200):
        label_code(f"code-{index}", known)
    assert len(known) == 64 and label_code("code-999", known) == "other"
    assert histogram([0.5, 3, 3, 100000]).cumulative[:3] == (1, 3, 3)


def test_status_json_is_inert_in_a_browser() -> None:
    """The API's JSON has no raw <, > or & and no non-ASCII characters."""
    body = to_json({"name": "<script>alert(1)</script> & Tờ trình\u202e"})
    assert b"<" not in body and b">" not in body and b"&" not in body
    assert json.loads(body)["name"] == "<script>alert(1)</script> & Tờ trình\u202e"
    assert max(body) < 128


def test_host_header_parsing_for_the_loopback_check() -> None:
    """Host headers are reduced to their host: a rebinding name is not loopback."""
    assert host_name(b"127.0.0.1:8080") == "127.0.0.1"
    assert host_name(b"[::1]:80") == "[::1]"
    assert host_name(b"LOCALHOST") == "localhost"
    assert host_name(b"evil.example:80") == "evil.example"
    assert host_name(None) is None
