"""What became of a document exchanged before an identity rotation (issues 7 and 8).

The receipt of such a document was signed by the former identity and the delivery row names
the former node ID; what the office reports afterwards (a processing status) is signed by its
new identity, and a recall addressed to the former ID reaches the same office under its new
one. Both must be accepted as the same office, not refused as forgeries.
"""
from __future__ import annotations

import os
import subprocess
import sys

from lienthong.keys.card import read_card
from tests.integration.harness import ROOT, TestNode, sent_all, wait_for


def cli(node: TestNode, *args: str) -> subprocess.CompletedProcess:
    """Run ``lienthong ARGS --home NODE`` as an IT officer would."""
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args, "--home", str(node.home)],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)


def test_status_and_recall_about_a_document_from_before_the_rotation(network) -> None:  # type: ignore[no-untyped-def]
    """beta sends to alpha; alpha rotates its identity; alpha's "registered" (signed by its
    new identity) is kept by beta beside the receipt its old identity signed; beta's recall,
    addressed to alpha's former node ID, moves the document aside at alpha."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    beta.drop("alpha", "cong-van-7.txt", b"Cong van so 7/VP\n")
    wait_for(lambda: sent_all(beta, 1), timeout=30, what="a receipt from alpha's old identity")
    (sent,) = beta.query("recent_dispatches", 10)
    mid, old_id = sent.message_id, alpha.node_id
    assert [d.peer_node_id for d in sent.deliveries] == [old_id]

    rotated = cli(alpha, "keys", "rotate", "--identity", "--yes")
    assert rotated.returncode == 0, rotated.stderr
    wait_for(lambda: "key-update-complete" in alpha.audit_kinds(), timeout=30,
             what="beta to take alpha's continuation")
    new_id = read_card(alpha.card_path.read_text()).node_id
    assert new_id != old_id

    marked = cli(alpha, "mark", mid, "registered", "--number", "31/ĐẾN", "--wait", "30")
    assert marked.returncode == 0, marked.stderr
    wait_for(lambda: beta.query("statuses_for", mid), timeout=30, what="the status at beta")
    (status,) = beta.query("statuses_for", mid)
    assert (status.peer_node_id, status.status, status.register_number) == (
        new_id, "registered", "31/ĐẾN")
    assert "security-refused" not in beta.audit_kinds()
    tracked = cli(beta, "track", mid, "--json")
    assert tracked.returncode == 0, tracked.stderr
    assert '"office": "alpha"' in tracked.stdout and '"registered"' in tracked.stdout

    recalled = cli(beta, "recall", mid, "--reason", "Ban hành nhầm", "--wait", "30")
    assert recalled.returncode == 0, recalled.stderr
    aside = alpha.home / "recalled" / "beta" / "cong-van-7.txt"
    wait_for(aside.exists, timeout=30, what="alpha to move the recalled document aside")
    assert not (alpha.inbox / "beta" / "cong-van-7.txt").exists()
    wait_for(lambda: [r.state for r in alpha.query("recalls_for", mid)] == ["accepted"],
             timeout=30, what="alpha to keep the recall")
    assert "security-refused" not in alpha.audit_kinds()
