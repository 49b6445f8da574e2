"""UnrecordedOffers: a transfer started by an ACCEPT waits for its dispatch's commit."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from lienthong.node.delivery.unrecorded import NotRecordedForPeer, UnrecordedOffers

MID = "0123456789abcdef0123456789abcdef"


def _row(*peers: str) -> Any:
    """What ``UnrecordedOffers`` reads of a committed dispatch: its deliveries' peers."""
    return SimpleNamespace(deliveries=[SimpleNamespace(peer_node_id=peer) for peer in peers])


def _held() -> tuple[UnrecordedOffers, Deferred, list[str], list[tuple[str, Failure]]]:
    offers = UnrecordedOffers()
    recorded: Deferred = Deferred()
    log: list[str] = []
    refused: list[tuple[str, Failure]] = []
    offers.hold(MID, recorded, "beta", lambda mid, failure: refused.append((mid, failure)))
    assert offers.after_commit(MID, lambda: log.append("start"), lambda: log.append("give up"))
    return offers, recorded, log, refused


def test_a_transfer_starts_only_once_its_dispatch_is_committed() -> None:
    offers, recorded, log, refused = _held()
    assert log == [] and MID in offers
    recorded.callback(_row("gamma", "beta"))
    assert log == ["start"] and refused == [] and len(offers) == 0
    # Committed: a later ACCEPT (a redial) starts at once.
    assert not offers.after_commit(MID, lambda: None, lambda: None)


def test_a_failed_commit_gives_the_waiting_transfer_up_and_says_why() -> None:
    offers, recorded, log, refused = _held()
    recorded.errback(OSError("disk I/O error"))
    assert log == ["give up"] and len(offers) == 0
    assert [(mid, failure.check(OSError)) for mid, failure in refused] == [(MID, OSError)]


def test_a_commit_without_a_delivery_to_this_peer_is_a_refusal() -> None:
    """The peer's identity moved on between the offer and the commit: the dispatch went to
    its new node ID, not to the one this link offered it to."""
    offers, recorded, log, refused = _held()
    recorded.callback(_row("beta-new"))
    assert log == ["give up"] and len(offers) == 0
    assert [failure.check(NotRecordedForPeer) for _, failure in refused] == [NotRecordedForPeer]
