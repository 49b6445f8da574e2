"""SIGKILL the receiving node at each named stage, restart it, and prove exactly-once delivery.

The receiver promises that a receipt means "durably stored" and that a retry never makes a
second copy (docs/reliability.md §1.1, §1.2). Each test kills it at one stage of reception
with a failpoint, restarts it, lets the sender retry, and runs the shared checker.
"""
from __future__ import annotations

import pytest

from lienthong.node.delivery.connection import DATA_FRAME
from lienthong.node.runtime.peer_protocols import save_peer_protocols
from tests.integration.harness import check_delivered, sent_all, wait_for, write_large_file

#: Six DATA frames or more, so a kill after the second frame is really mid-transfer.
SIZE = 6 * DATA_FRAME + 777


#: Each stage with the document sealed as envelope v2 and as v3 (alpha already knows that beta
#: speaks protocol 2, as after any earlier connection): v3 resumes, recovers and is receipted
#: alike.
ENVELOPES = pytest.mark.parametrize("envelope", [2, 3])


def _kill_and_recover(network, tmp_path, stage: str, *,  # type: ignore[no-untyped-def]
                      while_down=lambda beta: None, envelope: int = 2):
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    if envelope == 3:
        save_peer_protocols(alpha.home / "state", {beta.node_id: 2})
    beta.start(extra_env={"LIENTHONG_FAILPOINT": stage})
    alpha.start()
    original = tmp_path / "original.bin"
    write_large_file(original, SIZE)
    alpha.drop("beta", "ho-so.bin", original.read_bytes())
    code = beta.wait_exit(timeout=60)
    assert code == -9, f"beta exited with {code}, not SIGKILL, at {stage}:\n{beta.log_text()}"
    while_down(beta)
    beta.start()
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what=f"delivery after a kill at {stage}")
    check_delivered(alpha, [beta], {"ho-so.bin": original})
    sent = (alpha.home / "sent" / "beta" / "ho-so.bin.beta.receipt.jws").read_text()
    assert sent == (beta.inbox / "alpha" / "ho-so.bin.receipt.jws").read_text()
    (sealed,) = alpha.query("audit_entries", kind="sealed")
    assert sealed.detail["envelope"] == envelope
    return alpha, beta


@ENVELOPES
def test_kill_mid_transfer(network, tmp_path, envelope: int) -> None:  # type: ignore[no-untyped-def]
    """Killed with part of the ciphertext on disk: the sender resumes and one copy arrives."""
    def nothing_in_inbox(beta) -> None:  # type: ignore[no-untyped-def]
        folder = beta.inbox / "alpha"
        assert not folder.exists() or list(folder.iterdir()) == []

    alpha, _ = _kill_and_recover(network, tmp_path, "receiver-mid-transfer:2",
                                 while_down=nothing_in_inbox, envelope=envelope)
    assert "resuming 'ho-so.bin' to beta at byte" in alpha.log_text()


@ENVELOPES
def test_kill_after_fsync_before_commit(network, tmp_path, envelope: int) -> None:  # type: ignore[no-untyped-def]
    """Killed with the document fsynced in the inbox but uncommitted: recovery adopts it once."""
    _, beta = _kill_and_recover(network, tmp_path, "receiver-after-fsync-before-commit",
                                envelope=envelope)
    assert beta.query("received_count") == 1


@ENVELOPES
def test_kill_after_commit_before_receipt_sent(network, tmp_path, envelope: int) -> None:  # type: ignore[no-untyped-def]
    """Killed after the commit, receipt unsent: the retry gets the stored receipt (HAVE)."""
    _, beta = _kill_and_recover(network, tmp_path, "receiver-after-commit-before-receipt",
                                envelope=envelope)
    assert "duplicate" in beta.audit_kinds()
    assert beta.query("received_count") == 1
