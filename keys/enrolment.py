"""Which of many offered cards to enrol: the plan ``lienthong peers add`` shows, then applies.

Theory of operation: enrolling many offices at once (several card files, or a directory file)
must never enrol a card the operator did not see, and never let a card take over a name or a
node ID already in the directory. :func:`plan_enrolment` sorts every offered card into one of
four lists, without touching the store:

* ``add``: new offices, to be enrolled together in one transaction;
* ``unchanged``: offices already enrolled with that very name and node ID (re-running the
  same directory file is harmless), and this node's own card;
* ``refused``: a card that failed its checks (named by the label the operator knows it by: the
  file name, or the name the coordinator's index gives it), a name already used by another
  node ID (this office's own name included), a node ID already enrolled under another name
  or revoked here, and cards that contradict each other in one command (two different cards
  for one name or one node ID: there is no telling which is right, so neither is enrolled).

Key changes of an enrolled office never come from here: they travel as key updates signed by
the office itself (docs/keys.md), so a card that disagrees with the keys we hold is left alone.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lienthong.keys.card import PeerCard
from lienthong.keys.directory import Peer


@dataclass(frozen=True, slots=True)
class Offer:
    """One card offered for enrolment, or the reason it could not be read."""

    label: str
    card: PeerCard | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class EnrolmentPlan:
    add: tuple[Offer, ...]
    unchanged: tuple[Offer, ...]
    refused: tuple[Refusal, ...]


def plan_enrolment(offers: Sequence[Offer], *, own_node_id: str, own_name: str,
                   enrolled: Iterable[Peer]) -> EnrolmentPlan:
    """Sort ``offers`` into add, unchanged and refused (see the module docstring)."""
    by_name = {peer.name: peer for peer in enrolled}
    by_node_id = {peer.node_id: peer for peer in by_name.values()}
    # The same card offered twice (the same token) is one offer; different cards that share a
    # name or a node ID contradict each other.
    distinct = {offer.card.token: offer.card for offer in offers if offer.card is not None}
    names = Counter(card.name for card in distinct.values())
    node_ids = Counter(card.node_id for card in distinct.values())
    add: list[Offer] = []
    unchanged: list[Offer] = []
    refused: list[Refusal] = []
    seen: set[str] = set()
    for offer in offers:
        card = offer.card
        if card is None:
            refused.append(Refusal(offer.label, offer.problem or "the card could not be read"))
            continue
        if card.token in seen:
            continue
        seen.add(card.token)
        if names[card.name] > 1:
            refused.append(Refusal(offer.label, f"two different cards are offered for the name "
                                                f"{card.name!r}; neither is enrolled"))
        elif node_ids[card.node_id] > 1:
            refused.append(Refusal(offer.label, f"two different cards are offered for node "
                                                f"{card.node_id}; neither is enrolled"))
        elif card.node_id == own_node_id:
            unchanged.append(offer)
        elif card.name == own_name:
            refused.append(Refusal(offer.label, f"another node ({card.node_id}) claims this "
                                                f"office's own name {own_name!r}"))
        else:
            reason = _clash(card, by_name.get(card.name), by_node_id.get(card.node_id))
            if reason == "":
                unchanged.append(offer)
            elif reason is None:
                add.append(offer)
            else:
                refused.append(Refusal(offer.label, reason))
    return EnrolmentPlan(add=tuple(add), unchanged=tuple(unchanged), refused=tuple(refused))


def _clash(card: PeerCard, same_name: Peer | None, same_node: Peer | None) -> str | None:
    """None: new office; "": already enrolled as is; else why the card is refused."""
    if same_node is not None and same_node.state == "revoked":
        return (f"node {card.node_id} was revoked here ({same_node.revoked_at}); only "
                "'lienthong peers remove' and a new phone check can bring it back")
    if same_node is not None and same_node.name != card.name:
        return f"node {card.node_id} is already enrolled here as {same_node.name!r}"
    if same_name is not None and same_name.node_id != card.node_id:
        return (f"another office (node {same_name.node_id}) is enrolled here under the name "
                f"{card.name!r}; if that office really has a new node, remove it first")
    return "" if same_node is not None else None
