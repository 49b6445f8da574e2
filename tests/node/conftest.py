"""Fixtures shared by the node's tests: a store, and a watched outbox (tests.node.watchhelp)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.node.store.database import Store, open_store
from tests.node.watchhelp import Harness


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in a real file (a test module may define its own ``store``)."""
    opened = open_store(f"sqlite:///{tmp_path / 'state' / 'store.db'}")
    yield opened
    opened.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    box = tmp_path / "outbox"
    (box / "peer").mkdir(parents=True)
    return box


@pytest.fixture
def harness(outbox: Path) -> Iterator[Harness]:
    h = Harness(outbox)
    h.start()
    yield h
    h.stop()


@pytest.fixture
def blind(outbox: Path) -> Iterator[Harness]:
    """A watcher whose folder events are all lost: only scans can find files."""
    h = Harness(outbox, drop_hints=True)
    h.start()
    yield h
    h.stop()
