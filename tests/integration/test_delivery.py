"""Two and three real nodes on loopback: the whole path from outbox to receipt, with each
node's store in SQLite and again in PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import check_delivered, sent_all, wait_for

pytestmark = pytest.mark.usefixtures("store_backend")


def test_drop_arrives_with_receipt_and_moves_to_sent(network) -> None:  # type: ignore[no-untyped-def]
    """A file dropped at A arrives at B byte-identical; A gets a verified receipt; sent/ holds
    it."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    data = b"Quyet dinh so 45/QD-UBND\n" * 1000
    alpha.drop("beta", "quyet-dinh.txt", data)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="alpha to hold beta's receipt")
    check_delivered(alpha, [beta], {"quyet-dinh.txt": data})
    sent = alpha.home / "sent" / "beta" / "quyet-dinh.txt"
    assert sent.read_bytes() == data
    assert (alpha.home / "sent" / "beta" / "quyet-dinh.txt.beta.receipt.jws").exists()
    assert not (alpha.outbox / "beta" / "quyet-dinh.txt").exists()
    assert alpha.stop() == 0
    assert beta.stop() == 0


def delivery_states(node, message_id: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    row = node.query("get_dispatch", message_id)
    return {d.peer_node_id: d.state for d in row.deliveries}


def test_group_dispatch_reaches_both_and_is_sent_only_after_both_receipts(network) -> None:  # type: ignore[no-untyped-def]
    """One drop into outbox/all/ is one dispatch; sent/ waits until the second member receipts."""
    nodes = network("alpha", "beta", "gamma", groups={"alpha": {"all": ["beta", "gamma"]}})
    alpha, beta, gamma = nodes["alpha"], nodes["beta"], nodes["gamma"]
    alpha.start()
    beta.start()
    data = "Thông báo chung cho mọi sở\n".encode() * 500
    alpha.drop("all", "thong-bao.txt", data)
    wait_for(lambda: len(alpha.query("recent_dispatches", 10)) == 1, timeout=30,
             what="alpha to record the dispatch")
    (dispatch,) = alpha.query("recent_dispatches", 10)
    assert {d.peer_node_id for d in dispatch.deliveries} == {beta.node_id, gamma.node_id}
    wait_for(lambda: delivery_states(alpha, dispatch.message_id)[beta.node_id] == "delivered",
             timeout=30, what="beta's receipt")
    assert delivery_states(alpha, dispatch.message_id)[gamma.node_id] == "queued"
    assert alpha.query("dispatches_by_state")["sent"] == 0
    assert not (alpha.home / "sent" / "all").exists() or \
        list((alpha.home / "sent" / "all").iterdir()) == []
    assert (Path(dispatch.spool_dir) / "payload").read_bytes() == data
    gamma.start()
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="alpha to hold both receipts")
    check_delivered(alpha, [beta, gamma], {"thong-bao.txt": data})
    sent = alpha.home / "sent" / "all"
    assert (sent / "thong-bao.txt").read_bytes() == data
    assert (sent / "thong-bao.txt.beta.receipt.jws").exists()
    assert (sent / "thong-bao.txt.gamma.receipt.jws").exists()
    assert not Path(dispatch.spool_dir).exists()
    assert len(alpha.query("recent_dispatches", 10)) == 1


def test_ad_hoc_folder_sends_one_dispatch_to_each_named_peer(network) -> None:  # type: ignore[no-untyped-def]
    """A drop into outbox/beta+gamma/ is sealed once and delivered to both peers it names."""
    nodes = network("alpha", "beta", "gamma")
    alpha, beta, gamma = nodes["alpha"], nodes["beta"], nodes["gamma"]
    for node in (alpha, beta, gamma):
        node.start()
    data = b"%PDF-1.7 cong van lien tich\n" * 300
    alpha.drop("beta+gamma", "cong-van.pdf", data)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="alpha to hold both receipts")
    check_delivered(alpha, [beta, gamma], {"cong-van.pdf": data})
    (dispatch,) = alpha.query("recent_dispatches", 10)
    assert sorted(d.peer_node_id for d in dispatch.deliveries) == sorted(
        [beta.node_id, gamma.node_id])
    assert (alpha.home / "sent" / "beta+gamma" / "cong-van.pdf").read_bytes() == data
