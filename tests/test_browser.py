"""The browser the page tests use starts and renders Vietnamese text (tests/browser.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def test_chromium_renders_a_page(browser: Any, tmp_path: Path) -> None:
    page_file = tmp_path / "p.html"
    page_file.write_text("<title>Xin chào</title><p id=x>Văn thư</p>", encoding="utf-8")
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_file.as_uri())
    assert page.title() == "Xin chào"
    assert page.text_content("#x") == "Văn thư"
    context.close()
