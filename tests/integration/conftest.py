"""Integration tests run real node processes; make sure none outlives its test."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import TestNode, make_network


@pytest.fixture
def network(tmp_path: Path) -> Iterator:
    """A factory for networks of real nodes; every node started is stopped at the end."""
    created: list[TestNode] = []

    def factory(*names: str, **kwargs) -> dict[str, TestNode]:  # type: ignore[no-untyped-def]
        nodes = make_network(tmp_path, names, **kwargs)
        created.extend(nodes.values())
        return nodes

    yield factory
    for node in created:
        node.kill()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath) or "tests/faults" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
