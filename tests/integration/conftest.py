"""Integration tests run real node processes; make sure none outlives its test."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import TestNode, make_network


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """For a module that runs its networks on both store back ends: name it in ``pytestmark =
    pytest.mark.usefixtures("store_backend")`` and every node gets a store of that kind."""
    return str(request.param)


@pytest.fixture
def network(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """A factory for networks of real nodes; every node started is stopped at the end.

    On SQLite unless the test uses ``store_backend`` and it is ``postgresql``: then each node
    gets a database of its own on the test PostgreSQL server (tests/conftest.py).
    """
    created: list[TestNode] = []
    databases: list[str] = []
    server = None
    if ("store_backend" in request.fixturenames
            and request.getfixturevalue("store_backend") == "postgresql"):
        server = request.getfixturevalue("postgres_server")

    def new_database() -> str:
        databases.append(server.create_database())  # type: ignore[union-attr]
        return databases[-1]

    def factory(*names: str, **kwargs) -> dict[str, TestNode]:  # type: ignore[no-untyped-def]
        if server is not None:
            kwargs.setdefault("store_url", new_database)
        nodes = make_network(tmp_path, names, **kwargs)
        created.extend(nodes.values())
        return nodes

    yield factory
    for node in created:
        node.kill()
    for url in databases:
        server.drop_database(url)  # type: ignore[union-attr]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath) or "tests/faults" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
