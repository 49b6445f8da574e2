"""Fixtures for the fault-injection suite: real node processes that are always reaped, fault
proxies that are always stopped, and small filesystems that are always unmounted.

``LIENTHONG_FULL_FAULTS=1`` runs the large variants (10,000-document backlog, 100,000 files
dropped at once); without it the same scenarios run at a size that fits the CI budget. The
tests say which size they ran; nothing is skipped.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.arena import Arena
from tests.faults.hostile import enrol, make_identity
from tests.faults.proxy import FaultProxy, Mode
from tests.integration.harness import TestNode, free_port, make_network

FULL = os.environ.get("LIENTHONG_FULL_FAULTS") == "1"


@pytest.fixture
def network(tmp_path: Path) -> Iterator:
    """A factory for networks of real nodes; every node started is killed at the end."""
    created: list[TestNode] = []

    def factory(*names: str, **kwargs) -> dict[str, TestNode]:  # type: ignore[no-untyped-def]
        nodes = make_network(kwargs.pop("base", tmp_path), names, **kwargs)
        created.extend(nodes.values())
        return nodes

    yield factory
    for node in created:
        node.kill()


@pytest.fixture
def proxies() -> Iterator:
    """A factory for fault proxies in front of a node's listening port; all stopped at the end."""
    made: list[FaultProxy] = []

    def factory(target: TestNode, *, plan: list[Mode] | None = None,
                default: Mode | None = None) -> FaultProxy:
        proxy = FaultProxy(("127.0.0.1", target.port), plan=plan, default=default)
        made.append(proxy)
        return proxy

    yield factory
    for proxy in made:
        proxy.stop()


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator:
    """Mount a size-limited tmpfs at a fresh folder, owned by the user running the tests;
    unmounted (lazily) at the end.

    Mounting needs root (or ``sudo -n``, as on CI runners); if it is refused the test fails
    with the reason rather than silently testing nothing.
    """
    mounted: list[Path] = []
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]

    def factory(name: str, size_mib: int) -> Path:
        where = tmp_path / name
        where.mkdir()
        options = f"size={size_mib}m,mode=0755,uid={os.getuid()},gid={os.getgid()}"
        result = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", options, "tmpfs",
                                 str(where)], capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"cannot mount a small tmpfs at {where} (the disk-full "
                                 f"scenario needs root or passwordless sudo): {result.stderr}")
        mounted.append(where)
        return where

    yield factory
    for where in mounted:
        subprocess.run([*sudo, "umount", "-l", str(where)], capture_output=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    """alpha and beta running, mallory enrolled at both (tests/faults/arena.py); one arena per
    module that asks for it, killed when the module is done."""
    base = tmp_path_factory.mktemp("hostile")
    nodes = make_network(base, ["alpha", "beta"])
    alpha, beta = nodes["alpha"], nodes["beta"]
    port = free_port()
    mallory = make_identity(base / "mallory", "mallory", addresses=[f"127.0.0.1:{port}"])
    enrol(beta, mallory)
    enrol(alpha, mallory)
    beta.start()
    alpha.start()
    try:
        yield Arena(alpha, beta, mallory, port, base)
    finally:
        alpha.kill()
        beta.kill()
