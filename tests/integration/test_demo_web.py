"""The demo's closing promise (issue 18): ``lienthong demo --serve`` (what ``python3 dev.py
demo`` runs) ends by printing each office's web page address, and that address, opened in an
English Chromium as an office PC would be, shows the office's documents in Vietnamese; Ctrl-C
stops the three nodes and the demo exits 0."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.browser import browser  # noqa: F401 - the session's Chromium
from tests.integration.harness import ROOT

PAGE = re.compile(r"^\s+(tinhuy|hdnd|ubnd)\s+(http://127\.0\.0\.1:\d+/)$")


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Lines of the demo's output up to the one containing ``marker`` (read on a thread: a
    blocking readline must not outlive the timeout)."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError("the demo did not get to " + repr(marker) + ":\n" + "\n".join(seen))


def _ctrl_c_as_at_a_terminal() -> None:
    """In the demo's process, before it starts: Ctrl-C as a clerk's terminal delivers it. A
    test run started in the background by a shell without job control inherits SIGINT
    ignored, and a process that starts with SIGINT ignored keeps ignoring it (Python and
    Twisted leave an inherited SIG_IGN alone, as a background job should)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_demo_prints_each_offices_page_and_it_shows_its_documents_in_vietnamese(
        tmp_path: Path, browser: Any) -> None:  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LIENTHONG_LANG", None)
    log = tmp_path / "demo.stderr"
    with open(log, "w", encoding="utf-8") as stderr:  # a file: a full pipe would block it
        process = subprocess.Popen(
            [sys.executable, "-m", "lienthong.node", "demo", "--serve", "--dir",
             str(tmp_path / "demo")], stdout=subprocess.PIPE, stderr=stderr, text=True,
            cwd=str(ROOT), env=env, preexec_fn=_ctrl_c_as_at_a_terminal)
    try:
        lines = _read_until(process, "Ctrl-C", timeout=240)
        text = "\n".join(lines)
        assert text.count("✓") == 4, text
        assert "đã chuyển tới" in text and "Hỏa tốc" in text, text
        pages = dict(m.groups() for m in map(PAGE.match, lines) if m)
        assert set(pages) == {"tinhuy", "hdnd", "ubnd"}, text
        # The printed address is the one in the office's configuration (lienthong run keeps it).
        config = (tmp_path / "demo" / "hdnd" / "lienthong.toml").read_text(encoding="utf-8")
        assert pages["hdnd"].removeprefix("http://").rstrip("/") in config.split("[status]")[1]
        context = browser.new_context(locale="en-US")
        page = context.new_page()
        page.goto(pages["hdnd"] + "documents")
        assert page.locator("html").get_attribute("lang") == "vi"
        content = page.content()
        for expected in ("Văn bản", "12-NQ/TU", "05/CT-UBND", "Nghị quyết", "Chỉ thị",
                         "Niên giám thống kê 2026.pdf", "tinhuy", "ubnd"):
            assert expected in content, expected
        page.goto(pages["tinhuy"])
        assert "Tổng quan" in page.content() and "Văn phòng Tỉnh ủy" in page.content()
        context.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    errors = log.read_text(encoding="utf-8")
    assert process.returncode == 0, errors
    assert "Traceback" not in errors, errors
