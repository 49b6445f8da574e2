"""Revocation without a race (issue 20): once ``peers revoke`` has committed, nothing more from
that peer is accepted, not even the receipt of a transfer that was already in flight, however
long the running daemon takes to notice the revocation."""
from __future__ import annotations

import threading

from tests.faults.proxy import HoldReplies
from tests.integration.harness import NOW, wait_for, write_large_file

SIZE = 48 * 1024 * 1024


def _receipt_issued(node, sender_id: str) -> bool:  # type: ignore[no-untyped-def]
    return any(entry.kind == "receipt-issued" and entry.peer == sender_id
               for entry in node.query("audit_entries"))


def test_a_receipt_that_arrives_after_the_revocation_is_refused(network, proxies) -> None:  # type: ignore[no-untyped-def]
    """alpha sends a large document to beta through a proxy that holds beta's replies back
    once the transfer is under way. Beta stores the document and signs its receipt; the
    receipt waits on the wire while alpha's operator revokes beta (the same transaction as
    ``lienthong peers revoke``), then reaches alpha at once, before alpha's daemon reloads
    its directory. It is not accepted: the document goes to failed/ with a reason naming the
    revocation and what to do, never to sent/, and alpha's audit shows the revocation, then
    the refused receipt, and no verified receipt from beta after the revocation."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    hold = threading.Event()
    proxy = proxies(beta, default=HoldReplies(hold))
    alpha.query("update_peer_addresses", "beta", [proxy.address], NOW)
    alpha.start()
    (alpha.outbox / "beta").mkdir(exist_ok=True)
    write_large_file(alpha.outbox / "beta" / "ban-do.bin", SIZE)
    wait_for(lambda: proxy.bytes_up > SIZE // 4, timeout=120, what="the transfer to start")
    hold.set()
    try:
        wait_for(lambda: _receipt_issued(beta, alpha.node_id), timeout=120,
                 what="beta to store the document and sign its receipt", interval=0.2)
        store = alpha.store()
        try:
            with store.transaction():
                store.revoke_peer("beta", "test", NOW.replace("08:00", "09:00"))
                store.append_audit("peer-revoked", NOW.replace("08:00", "09:00"),
                                   peer=beta.node_id, detail={"name": "beta", "reason": "test"})
        finally:
            store.close()
    finally:
        hold.clear()
    failed = alpha.home / "failed"
    wait_for(lambda: (failed / "ban-do.bin").exists(), timeout=60,
             what="the document to be filed in failed/")
    # The file is moved before its dispatch-failed entry is written: wait for that too.
    wait_for(lambda: "dispatch-failed" in alpha.audit_kinds(), timeout=30,
             what="the dispatch-failed audit entry")
    reason = (failed / "ban-do.bin.reason.txt").read_text(encoding="utf-8")
    assert "revoked" in reason and "send it again" in reason, reason
    assert not (alpha.home / "sent" / "beta").exists() or not any(
        (alpha.home / "sent" / "beta").iterdir())
    kinds = [(entry.kind, entry.message_id) for entry in alpha.query("audit_entries")]
    revoked_at = next(i for i, (kind, _mid) in enumerate(kinds) if kind == "peer-revoked")
    mid = next(m for kind, m in kinds if kind == "dispatch-failed")
    after = [kind for kind, m in kinds[revoked_at:] if m == mid]
    assert "receipt-verified" not in after, kinds[revoked_at:]
    # Usually the receipt comes first and is refused; on a loaded machine the daemon may notice
    # the revocation first and park the delivery. Either way the failure follows the revocation.
    failed_at = after.index("dispatch-failed")
    assert {"receipt-refused", "delivery-parked"} & set(after[:failed_at]), after
    deliveries = alpha.query("dispatches_by_ids", [mid])[mid].deliveries
    assert [(d.state, d.receipt) for d in deliveries] == [("failed", None)]
