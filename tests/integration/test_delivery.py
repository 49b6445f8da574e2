"""Two and three real nodes on loopback: the whole path from outbox to receipt."""
from __future__ import annotations

from tests.integration.harness import check_delivered, sent_all, wait_for


def test_drop_arrives_with_receipt_and_moves_to_sent(network) -> None:  # type: ignore[no-untyped-def]
    """A file dropped at A arrives at B byte-identical; A gets a verified receipt; sent/ holds it."""
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
