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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lienthong.keys.card import PeerCard
from lienthong.keys.directory import Peer


@dataclass(frozen=True, slots=True)
class Offer:
    """One card offered for enrolment, or the reason it could not be read (``problem`` in
    English; ``error``, when there is one, carries it as a template and fields)."""

    label: str
    card: PeerCard | None
    problem: str | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A card that is not enrolled: ``reason`` in English (the audit log, ``--json``), and
    the sentence as ``template`` and ``fields`` (or the ``error`` that says it), which the
    command line looks up in the catalog; this layer cannot import it (docs/design.md §8)."""

    label: str
    reason: str
    template: str | None = None
    fields: Mapping[str, object] = field(default_factory=dict)
    error: BaseException | None = None


def refused_because(label: str, template: str, /, **fields: object) -> Refusal:
    """A refusal said with an English format string and its fields (an extraction keyword)."""
    return Refusal(label, template.format(**fields), template, dict(fields))


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
            refused.append(Refusal(offer.label, offer.problem, error=offer.error)
                           if offer.problem else
                           refused_because(offer.label, "the card could not be read"))
            continue
        if card.token in seen:
            continue
        seen.add(card.token)
        if names[card.name] > 1:
            refused.append(refused_because(
                offer.label, "two different cards are offered for the name {name}; neither is "
                "enrolled", name=repr(card.name)))
        elif node_ids[card.node_id] > 1:
            refused.append(refused_because(
                offer.label, "two different cards are offered for node {node_id}; neither is "
                "enrolled", node_id=card.node_id))
        elif card.node_id == own_node_id:
            unchanged.append(offer)
        elif card.name == own_name:
            refused.append(refused_because(
                offer.label, "another node ({node_id}) claims this office's own name {name}",
                node_id=card.node_id, name=repr(own_name)))
        else:
            clash = _clash(offer.label, card, by_name.get(card.name),
                           by_node_id.get(card.node_id))
            if clash == "":
                unchanged.append(offer)
            elif clash is None:
                add.append(offer)
            elif isinstance(clash, Refusal):
                refused.append(clash)
    return EnrolmentPlan(add=tuple(add), unchanged=tuple(unchanged), refused=tuple(refused))


def _clash(label: str, card: PeerCard, same_name: Peer | None,
           same_node: Peer | None) -> Refusal | str | None:
    """None: new office; "": already enrolled as is; else why the card is refused."""
    if same_node is not None and same_node.state == "revoked":
        return refused_because(
            label, "node {node_id} was revoked here ({revoked_at}); only 'lienthong peers "
            "remove' and a new phone check can bring it back", node_id=card.node_id,
            revoked_at=same_node.revoked_at)
    if same_node is not None and same_node.name != card.name:
        return refused_because(label, "node {node_id} is already enrolled here as {name}",
                               node_id=card.node_id, name=repr(same_node.name))
    if same_name is not None and same_name.node_id != card.node_id:
        return refused_because(
            label, "another office (node {node_id}) is enrolled here under the name {name}; if "
            "that office really has a new node, remove it first", node_id=same_name.node_id,
            name=repr(card.name))
    return "" if same_node is not None else None
