"""Fixtures shared by the node's store tests."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in a real file (a test module may define its own ``store``)."""
    opened = open_store(f"sqlite:///{tmp_path / 'state' / 'store.db'}")
    yield opened
    opened.close()
