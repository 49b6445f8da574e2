"""Helpers shared by the key-lifecycle integration tests (test_keys, test_identity_rotation)."""
from __future__ import annotations

import os
import subprocess
import sys

from lienthong.keys.card import read_card
from tests.integration.harness import ROOT, TestNode


def cli(*args: str, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``lienthong`` command line in a separate process, as an IT officer would."""
    result = subprocess.run([sys.executable, "-m", "lienthong.node", *args], capture_output=True,
                            text=True, timeout=120, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
    if check:
        assert result.returncode == 0, f"lienthong {' '.join(args)}:\n{result.stderr}"
    return result


def peer_view(node: TestNode, other: TestNode):  # type: ignore[no-untyped-def]
    """``other`` as ``node``'s directory sees it (a Peer value)."""
    return node.query("peer_by_node_id", other.node_id).peer


def audit_verifies(node: TestNode) -> str:
    result = cli("audit", "verify", "--home", str(node.home), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def new_identity(node: TestNode) -> str:
    """The node ID in the node's card, which the daemon rewrites when it switches identity."""
    return read_card(node.card_path.read_text()).node_id
