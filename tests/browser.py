"""A real browser for the tests that look at a page: Debian's Chromium driven by Playwright.

Playwright is told the executable (``/usr/bin/chromium``, installed by ``dev.py``), so it never
downloads a browser and the tests run offline. A missing Chromium is a failure with the install
command, never a skip.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Chromium is missing: python3 dev.py test installs it as root, or run "
                    "sudo apt-get install chromium", pytrace=False)
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session; each test opens its own context (cookies,
    storage) with ``browser.new_context()``."""
    import asyncio

    from playwright.sync_api import sync_playwright

    # An earlier test in the session can leave this thread marked as running an asyncio loop
    # that no longer runs; Playwright's sync API refuses to start under that mark.
    if asyncio.events._get_running_loop() is not None:
        asyncio.events._set_running_loop(None)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                              args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
