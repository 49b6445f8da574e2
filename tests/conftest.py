"""Fixtures for the whole suite: a real PostgreSQL server (tests/pgserver.py), started on first
use and stopped at the end of the session, and a fresh database on it for each test; a real
browser (tests/browser.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import browser  # noqa: F401  (a fixture, offered to every test)
from tests.pgserver import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the test server (dropped after the test)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
