"""``lienthong demo`` on a busy machine (issue 20): it never listens on a port chosen
beforehand, and any failure ends the process with one plain sentence and a non-zero exit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

#: Runs the demo in a child process with one thing of the world changed, given as code.
RUNNER = """
import socket, sys
from lienthong.node.app import demo as app_demo
{change}
from lienthong.node.cli.main import main
sys.argv = ["lienthong", *sys.argv[2:], "demo", "--dir", sys.argv[1]]
main()
"""

#: Another program holds the port the demo would have picked for every office.
PORT_TAKEN = """
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen()
app_demo.free_port = lambda: busy.getsockname()[1]
"""

#: The disk refuses the first sample document, once the three nodes are running.
WRITE_FAILS = """
def refuse(outbox, sample):
    raise OSError(28, "No space left on device")
app_demo.write_sample = refuse
"""


def _demo(tmp_path: Path, change: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUNNER.format(change=change),
                           str(tmp_path / "demo"), *options], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=240, env={"PYTHONPATH": str(ROOT),
                                                           "PATH": "/usr/bin:/bin"})


def test_a_port_taken_by_another_program_does_not_stop_the_demo(tmp_path: Path) -> None:
    """Every port the demo would have chosen ahead is taken; it listens where the system says
    and delivers everything, and the folders its closing hint names exist."""
    done = _demo(tmp_path, PORT_TAKEN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.count("✓") == 4
    assert (tmp_path / "demo" / "tinhuy" / "outbox" / "hdnd").is_dir()
    assert (tmp_path / "demo" / "hdnd" / "inbox" / "tinhuy").is_dir()
    # The port each office really listens on was written back for 'lienthong run'.
    config = (tmp_path / "demo" / "tinhuy" / "lienthong.toml").read_text()
    card = (tmp_path / "demo" / "hdnd" / "hdnd.card").read_text()
    assert "127.0.0.1:0\"" not in config.split("[status]")[0] and card
    # In Vietnamese by default; it ends with each office's page, at the address its
    # configuration keeps for 'lienthong run'.
    assert done.stdout.count("đã chuyển tới") == 4 and "Xong sau" in done.stdout
    last = done.stdout.strip().splitlines()[-3:]
    assert [line.split()[0] for line in last] == ["tinhuy", "hdnd", "ubnd"], last
    address = last[0].split()[1].removeprefix("http://").rstrip("/")
    assert f'listen = "{address}"' in config.split("[status]")[1]


def test_a_failure_ends_the_demo_with_a_plain_sentence_and_an_exit_status(
        tmp_path: Path) -> None:
    done = _demo(tmp_path, WRITE_FAILS, "--lang", "en")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "the demo stopped: " in done.stderr and "No space left on device" in done.stderr
    assert "Finished in" not in done.stdout
