"""A document offered again after a crash is answered with the stored receipt, never stored twice.

The crashes are real: the node process SIGKILLs itself at a named failpoint (node.failpoints),
exactly where a power cut would leave a receipt unsent or unrecorded.
"""
from __future__ import annotations

import pytest

from tests.integration.harness import check_delivered, is_document, sent_all, wait_for


@pytest.mark.parametrize(("crashing", "stage"), [
    ("beta", "receiver-after-commit-before-receipt"),
    ("alpha", "sender-before-receipt-stored"),
])
def test_offer_of_a_stored_document_gets_the_same_receipt_and_writes_nothing(
        network, crashing: str, stage: str) -> None:  # type: ignore[no-untyped-def]
    """After a crash between storing and recording, the re-offer gets HAVE with the same receipt."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    victim = nodes[crashing]
    other = beta if victim is alpha else alpha
    other.start()
    victim.start(extra_env={"LIENTHONG_FAILPOINT": stage})
    data = "Quyết định bổ nhiệm\n".encode() * 2000
    alpha.drop("beta", "quyet-dinh.txt", data)
    assert victim.wait_exit(timeout=30) != 0
    # The receiver has the document stored; the sender has no receipt recorded.
    (dispatch,) = alpha.query("recent_dispatches", 5)
    mid = dispatch.message_id
    received = beta.query("get_received", alpha.node_id, mid)
    assert received is not None and received.state == "stored"
    assert dispatch.deliveries[0].state == "queued" and dispatch.deliveries[0].receipt is None
    # Documents only: a crash at the receiver's stage comes before the sidecars are written
    # (they follow the receipt); its next start writes them (docs/design.md §6).
    inbox_before = sorted(p.name for p in (beta.inbox / "alpha").iterdir() if is_document(p))

    victim.start()
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="alpha to record beta's receipt")
    check_delivered(alpha, [beta], {"quyet-dinh.txt": data})
    assert sorted(p.name for p in (beta.inbox / "alpha").iterdir() if is_document(p)) \
        == inbox_before == ["quyet-dinh.txt"]
    duplicates = beta.query("audit_entries", kind="duplicate", message_id=mid)
    assert len(duplicates) >= 1
    assert len(beta.query("audit_entries", kind="received", message_id=mid)) == 1
    verified = alpha.query("audit_entries", kind="receipt-verified", message_id=mid)
    assert [entry.detail["duplicate"] for entry in verified] == [True]
    recorded = alpha.query("get_dispatch", mid).deliveries[0].receipt
    on_disk = (beta.inbox / "alpha" / "quyet-dinh.txt.receipt.jws").read_text().strip()
    assert recorded == received.receipt == on_disk
    kept = (alpha.home / "sent" / "beta" / "quyet-dinh.txt.beta.receipt.jws").read_text().strip()
    assert kept == received.receipt
