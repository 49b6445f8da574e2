"""The store suite runs on both back ends: every test that takes ``store`` or ``store_url``
runs once on a SQLite file and once on a fresh database of a real PostgreSQL server
(tests/conftest.py starts it)."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lienthong.node.store.database import Store, open_store

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store_url(backend: str, tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Makes URLs of new, empty databases of this test's back end."""
    made: list[str] = []
    numbers = itertools.count()
    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else None

    def make() -> str:
        if server is None:
            return f"sqlite:///{tmp_path / f'store{next(numbers)}.db'}"
        made.append(server.create_database())
        return made[-1]

    yield make
    for url in made:
        server.drop_database(url)  # type: ignore[union-attr]


@pytest.fixture
def store_url(new_store_url: Callable[[], str]) -> str:
    return new_store_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()
