"""``lienthong console``: one snapshot without a terminal, and the keys' state machine."""
from __future__ import annotations

from click.testing import CliRunner

from lienthong.node.cli.console import ESC, Mode, View, press, split_keys
from lienthong.node.cli.main import main
from tests.node.statushelp import Office


def test_console_without_a_terminal_prints_one_snapshot_and_exits(office: Office) -> None:
    """With stdin not a TTY the console shows one screen, says why, and exits 0."""
    result = CliRunner().invoke(main, ["--lang", "en", "console", str(office.honest.home)])
    assert result.exit_code == 0
    assert "tinhuy" in result.output and "needs an interactive terminal" in result.output
    result = CliRunner().invoke(main, ["console", str(office.honest.home)])
    assert result.exit_code == 0 and "cần một cửa sổ dòng lệnh tương tác" in result.output


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
