"""Enrolling many offices in one command, and writing the directory file that makes it safe.

``lienthong peers add A.card B.card ...`` and ``lienthong peers add --directory FILE
--coordinator NAME`` share one path: read every offered card (each checked by its own
self-signature; a directory file's index also by the coordinator's), sort them with
:func:`keys.enrolment.plan_enrolment`, show the plan with each new office's node ID and
verification code, ask once, then enrol every new office in one store transaction with an
audit entry each. A refused card is named and audited; the others are enrolled only if the
operator agrees (``--yes`` for scripts). Any error while writing rolls the whole
transaction back, so the directory is never half-updated.

``lienthong peers make-directory OUT`` is the coordinating office's side: it bundles this
node's own card and the cards of the trusted peers it enrolled (each checked by phone when it
was enrolled) into a directory file signed with its identity key.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import nacl.signing
from sqlalchemy.exc import SQLAlchemyError

from lienthong.config.schema import NodeConfig
from lienthong.keys.card import PeerCard, read_card, verification_code
from lienthong.keys.directory import Peer
from lienthong.keys.directoryfile import make_directory_file, read_directory_file
from lienthong.keys.enrolment import EnrolmentPlan, Offer, Refusal, plan_enrolment
from lienthong.keys.errors import KeysError
from lienthong.keys.keystore import load_keystore
from lienthong.node.cli.common import CliError, clerk_language, wall_clock_now
from lienthong.node.cli.keys import passphrase_for
from lienthong.node.language.names import show_time
from lienthong.node.language.text import Phrase, from_error
from lienthong.node.status.gather import own_card
from lienthong.node.store.database import Store, open_store


def enrol_many(config: NodeConfig, card_files: Sequence[Path], directory_file: Path | None,
               coordinator: str | None, *, yes: bool, as_json: bool) -> None:
    """Read, plan, confirm and apply (see the module docstring)."""
    own_node = own_card(config)
    own = own_node.node_id
    store = open_store(config.store.url)
    try:
        offers = [_offer_from_file(path) for path in card_files]
        if directory_file is not None and coordinator is not None:
            offers += _offers_from_directory(store, directory_file, coordinator, as_json)
        plan = plan_enrolment(offers, own_node_id=own, own_name=own_node.name,
                              enrolled=[record.peer for record in store.list_peers()])
        if not as_json:
            _show(plan, own)
        source = {"directory": directory_file.name, "coordinator": coordinator} \
            if directory_file is not None else {}
        # Refusals are recorded whatever the operator answers next: they are bad input.
        with store.transaction():
            for refusal in plan.refused:
                store.append_audit("enrolment-refused", wall_clock_now(),
                                   detail={"card": refusal.label, "reason": refusal.reason,
                                           **source})
        _confirm(plan, yes=yes)
        now = wall_clock_now()
        with store.transaction():
            for offer in plan.add:
                card = _card(offer)
                peer = Peer.from_card(card, now=now)
                store.add_peer(peer, card.token, now)
                store.append_audit("peer-added", now, peer=card.node_id,
                                   detail={"name": card.name, "addresses": list(card.addresses),
                                           **source})
    except ValueError as exc:
        raise CliError(Phrase("nothing was enrolled: {error}", error=str(exc))) from None
    except SQLAlchemyError as exc:
        # The transaction rolled back as a whole; say so in one sentence, not a traceback.
        raise CliError(Phrase("nothing was enrolled: the database refused the change "
                              "({error})",
                              error=str(getattr(exc, "orig", None) or type(exc).__name__))
                       ) from None
    finally:
        store.close()
    for offer in plan.add:
        (config.outbox / _card(offer).name).mkdir(parents=True, exist_ok=True)
    if as_json:
        click.echo(json.dumps(_as_json(plan, own), indent=2, ensure_ascii=False))
        return
    click.echo(Phrase("Enrolled {count} offices; documents for each go in {outbox}/<name>/.",
                      count=len(plan.add), outbox=config.outbox).in_language(
        clerk_language(config)))


def _card(offer: Offer) -> PeerCard:
    if offer.card is None:  # the plan only adds readable cards
        raise RuntimeError("the enrolment plan offered an entry without a card")
    return offer.card


def refusal_sentence(refusal: Refusal) -> Phrase | str:
    """Why a card is refused, as the clerk reads it: the refusal's template looked up in the
    catalog, else its error's sentence (keys/ cannot import the catalog, docs/design.md §8)."""
    if refusal.template is not None:
        return Phrase(refusal.template, **refusal.fields)
    if refusal.error is not None:
        return from_error(refusal.error)
    return refusal.reason


def _offer_from_file(path: Path) -> Offer:
    try:
        return Offer(path.name, read_card(path.read_bytes()))
    except (OSError, KeysError) as exc:
        return Offer(path.name, None, str(exc), exc)


def _offers_from_directory(store: Store, path: Path, coordinator: str,
                           as_json: bool) -> list[Offer]:
    """The directory file's entries, after its index verified under the coordinator's key."""
    now = wall_clock_now()
    record = store.get_peer(coordinator)
    try:
        if record is None:
            raise CliError(Phrase("{coordinator!r} is not an office enrolled here; enrol the "
                                  "coordinating office from its card first (with a phone "
                                  "check)", coordinator=coordinator))
        if record.peer.state != "trusted":
            raise CliError(Phrase("{coordinator} was revoked here; its directory file is not "
                                  "used", coordinator=coordinator))
        key = nacl.signing.VerifyKey(record.peer.current("identity").public_bytes)
        try:
            directory = read_directory_file(path.read_bytes(), record.peer.node_id, key)
        except (OSError, KeysError) as exc:
            raise CliError(Phrase("{name}: {error}", name=path.name,
                                  error=from_error(exc))) from None
    except CliError as exc:
        store.append_audit("enrolment-refused", now,
                           detail={"directory": path.name, "coordinator": coordinator,
                                   "reason": exc.message})
        raise
    if not as_json:
        language = clerk_language()
        click.echo(Phrase("Directory file {name}: {count} offices, signed by {coordinator} "
                          "({node_id}) at {time}.", name=path.name,
                          count=len(directory.entries), coordinator=coordinator,
                          node_id=directory.issuer_node_id,
                          time=show_time(directory.created, language)).in_language(language))
        if directory.unlisted:
            click.echo("  " + Phrase("{count} cards in the file are not in its signed list and "
                                     "are ignored.", count=directory.unlisted
                                     ).in_language(language))
    return [Offer(entry.name, entry.card, entry.problem, entry.error)
            for entry in directory.entries]


def _show(plan: EnrolmentPlan, own: str) -> None:
    """One line per office: the node ID and verification code of each new one."""
    language = clerk_language()
    if plan.add:
        click.echo(Phrase("New offices ({count}), with the verification code to read by phone "
                          "if in doubt:", count=len(plan.add)).in_language(language))
        width = max(len(_card(offer).name) for offer in plan.add)
        for offer in plan.add:
            card = _card(offer)
            click.echo(f"  {card.name:<{width}}  {card.node_id}  " + Phrase(
                "code {code}", code=verification_code(own, card.node_id)).in_language(language))
    if plan.unchanged:
        click.echo(Phrase("Already enrolled, or this node itself ({count}): {names}",
                          count=len(plan.unchanged),
                          names=", ".join(_card(offer).name for offer in plan.unchanged)
                          ).in_language(language))
    for refusal in plan.refused:
        click.echo(Phrase("REFUSED {card}: {reason}", card=refusal.label,
                          reason=refusal_sentence(refusal)).in_language(language))


def _confirm(plan: EnrolmentPlan, *, yes: bool) -> None:
    if not plan.add:
        if plan.refused:
            raise CliError(Phrase("nothing was enrolled: all {count} offered cards that were "
                                  "not already enrolled were refused (see above)",
                                  count=len(plan.refused)))
        return
    if yes:
        return
    question = (Phrase("Refused (see above): {refused}. Enrol the other {count} offices?",
                       refused=len(plan.refused), count=len(plan.add)) if plan.refused else
                Phrase("Enrol these {count} offices?", count=len(plan.add)))
    if not click.confirm(question.in_language(clerk_language()), default=False, err=True):
        raise CliError(Phrase("nothing was enrolled"))


def _as_json(plan: EnrolmentPlan, own: str) -> dict[str, Any]:
    return {
        "added": [{"name": _card(o).name, "node_id": _card(o).node_id,
                   "verification_code": verification_code(own, _card(o).node_id)}
                  for o in plan.add],
        "unchanged": [{"name": _card(o).name, "node_id": _card(o).node_id}
                      for o in plan.unchanged],
        "refused": [{"card": r.label, "reason": r.reason} for r in plan.refused],
    }


def make_directory(config: NodeConfig, out: Path, only: Sequence[str]) -> int:
    """Write the directory file of this node and its trusted peers; return how many offices."""
    store = open_store(config.store.url)
    try:
        records = [record for record in store.list_peers() if record.peer.state == "trusted"]
    finally:
        store.close()
    if only:
        wanted = set(only)
        unknown = wanted - {record.peer.name for record in records}
        if unknown:
            raise CliError(Phrase("not trusted peers of this node: {names}",
                                  names=", ".join(sorted(unknown))))
        records = [record for record in records if record.peer.name in wanted]
    cards = [own_card(config)]
    for record in records:
        card = read_card(record.card)
        peer = record.peer
        if (card.node_id != peer.node_id
                or card.encryption_kid != peer.current("encryption").kid
                or card.tls_spki_sha256 != peer.current("tls").value):
            raise CliError(Phrase("the card held for {name} does not match its current keys; "
                                  "ask it for its current card and enrol it again",
                                  name=peer.name))
        cards.append(card)
    keys = load_keystore(config.keystore.path, passphrase_for(config))
    now = wall_clock_now()
    text = make_directory_file(keys, cards, now=now)
    tmp = out.with_name(f".{out.name}.part")
    tmp.write_text(text, encoding="ascii")
    tmp.replace(out)
    store = open_store(config.store.url)
    try:
        store.append_audit("directory-signed", now,
                           detail={"file": out.name, "offices": [card.name for card in cards]})
    finally:
        store.close()
    return len(cards)
