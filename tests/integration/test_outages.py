"""Peers that are down, and nodes restarted (SIGTERM or SIGKILL) in the middle of a queue."""
from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.integration.harness import (
    TestNode,
    check_delivered,
    is_document,
    sent_all,
    spool_entries,
    wait_for,
)

QUEUE = 20


def arrived(node: TestNode, sender: str) -> int:
    """How many documents are already in node's inbox/<sender>/ (cheap enough to poll fast)."""
    folder = node.inbox / sender
    return len([p for p in folder.iterdir() if is_document(p)]) if folder.exists() else 0


def drop_queue(sender: TestNode, target: str, count: int) -> dict[str, bytes]:
    documents = {f"cong-van-{i:02d}.txt": f"Công văn số {i}\n".encode() * 40 + os.urandom(64)
                 for i in range(count)}
    for name, data in documents.items():
        sender.drop(target, name, data)
    return documents


def test_documents_wait_for_a_peer_that_is_down_then_arrive_once(network) -> None:  # type: ignore[no-untyped-def]
    """Files dropped while the peer is down stay spooled and queued, then arrive exactly once."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    documents = drop_queue(alpha, "beta", 3)
    wait_for(lambda: alpha.query("dispatches_by_state")["sending"] == 3, timeout=30,
             what="alpha to seal all three")
    wait_for(lambda: alpha.query("schedule_for", beta.node_id).failures >= 2, timeout=30,
             what="alpha to fail to reach beta twice")
    assert alpha.query("queue_depths") == {beta.node_id: 3}
    assert alpha.query("dispatches_by_state")["sent"] == 0
    spool = [p for p in (alpha.home / "spool").iterdir() if (p / "payload").exists()]
    assert sorted((p / "payload").read_bytes() for p in spool) == sorted(documents.values())
    assert not (alpha.home / "sent" / "beta").exists() or \
        list((alpha.home / "sent" / "beta").iterdir()) == []
    assert list((alpha.outbox / "beta").iterdir()) == []
    beta.start()
    wait_for(lambda: sent_all(alpha, 3), timeout=30, what="alpha to hold three receipts")
    check_delivered(alpha, [beta], documents)
    assert alpha.query("schedule_for", beta.node_id).failures == 0


def _stop(node: TestNode) -> None:
    assert node.stop() == 0, node.log_text()


def _kill(node: TestNode) -> None:
    node.kill()


@pytest.mark.parametrize(("who", "how"), [("sender", _stop), ("sender", _kill),
                                          ("receiver", _stop), ("receiver", _kill)],
                         ids=["sender-sigterm", "sender-sigkill", "receiver-sigterm",
                              "receiver-sigkill"])
def test_restart_in_the_middle_of_a_queue_delivers_everything_once(
        network, who: str, how: Callable[[TestNode], None]) -> None:  # type: ignore[no-untyped-def]
    """A node stopped or killed while a queue of 20 flows: after restart all arrive exactly once."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    documents = drop_queue(alpha, "beta", QUEUE)
    # Hold the queue back until all are sealed, so the interruption lands mid-queue.
    wait_for(lambda: alpha.query("dispatches_by_state")["sending"] == QUEUE, timeout=30,
             what="alpha to seal the queue")
    beta.start()
    wait_for(lambda: arrived(beta, "alpha") >= 2, timeout=30, what="the first documents",
             interval=0.005)
    victim = alpha if who == "sender" else beta
    how(victim)
    at_interruption = alpha.query("dispatches_by_state")["sent"]
    assert at_interruption < QUEUE, "the queue was already delivered: nothing was interrupted"
    victim.start()
    wait_for(lambda: sent_all(alpha, QUEUE), timeout=60, what="alpha to hold every receipt")
    check_delivered(alpha, [beta], documents)
    assert len(list((alpha.home / "sent" / "beta").glob("*.beta.receipt.jws"))) == QUEUE
    assert spool_entries(alpha) == []
