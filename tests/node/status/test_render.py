"""The status screen: it answers the operator's questions, filters by peer, and shows hostile
names as inert text."""
from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from lienthong.node.delivery.links import LinkState
from lienthong.node.delivery.outcomes import Progress
from lienthong.node.status.cells import clean
from lienthong.node.status.live import live_from_links
from lienthong.node.status.render import render_status
from tests.node.statushelp import HOSTILE, NOW, Office, rendered, snapshot_of


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


def test_the_screen_is_in_vietnamese_by_default(office: Office) -> None:
    """Without a language the screen, its warnings, names of urgencies and statuses and its
    durations read in Vietnamese; English words of the screen are gone."""
    snapshot = snapshot_of(office)
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_status(snapshot))
    text = console.export_text()
    for expected in ("Mã nút", "✗ KHÔNG CHẠY", "Nút KHÔNG chạy", "Cảnh báo", "Các cơ quan",
                     "Văn bản đến gần đây", "Đang truyền: không có (nút không chạy)",
                     "Hôm nay"):
        assert expected in text, expected
    for english in ("NOT RUNNING", "Warnings", "Latest documents", "Peers", "never"):
        assert english not in text, english
    assert rendered(snapshot, lang="vi") == text


def test_peer_filter_limits_the_screen_to_one_peer(office: Office) -> None:
    """With peer='ubnd' the hdnd rows and documents disappear."""
    text = rendered(snapshot_of(office), peer="ubnd")
    assert "ubnd" in text and "Báo cáo kỳ họp 9.txt" not in text and "Công văn 45" not in text


def test_hostile_names_are_shown_as_inert_text(office: Office) -> None:
    """Markup stays literal; escape sequences and bidi overrides never reach the terminal."""
    snapshot = snapshot_of(office)
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(render_status(snapshot, lang="en"))
    raw = console.file.getvalue()
    plain = console.export_text()
    assert "[bold red]GIẢ[/bold red]" in plain
    assert "\x1b[2J" not in raw and "\u202e" not in raw
    assert clean(HOSTILE) == "[bold red]GIẢ[/bold red]\ufffd[2J\ufffdtxt.exe"
