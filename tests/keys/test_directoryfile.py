"""Directory files and the enrolment plan: many offices at once, each card still checked by its
own signature, the bundle by the coordinating office's; hostile files refused by name."""
import hashlib

import nacl.signing
import pytest

from lienthong.keys import jws
from lienthong.keys.card import make_card, read_card
from lienthong.keys.directory import Peer
from lienthong.keys.directoryfile import (
    DIRECTORY_TYP,
    card_digest,
    directory_signer,
    make_directory_file,
    read_directory_file,
)
from lienthong.keys.enrolment import Offer, plan_enrolment
from lienthong.keys.errors import DirectoryFileError
from lienthong.keys.identity import generate_node_keys

NOW = "2026-11-25T08:00:00Z"


def _rng(seed: bytes):
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


def _keys(name: str):
    return generate_node_keys(name, now=NOW, random_bytes=_rng(name.encode()))


@pytest.fixture(scope="module")
def province():
    """A coordinator and four offices, each with its card."""
    offices = {name: _keys(name) for name in ("tinhuy", "so-tu-phap", "so-y-te", "huyen-a",
                                              "huyen-b")}
    cards = {name: read_card(make_card(keys, addresses=[f"{name}.example.vn:7443"], now=NOW))
             for name, keys in offices.items()}
    return offices, cards


def _other_node(name: str):
    """A valid card of a second node that took the same name."""
    keys = generate_node_keys(name, now=NOW, random_bytes=_rng(b"other " + name.encode()))
    return read_card(make_card(keys, addresses=[], now=NOW))


def _verify_key(keys):
    return nacl.signing.VerifyKey(keys.identity_public)


def _read(text, coordinator):
    return read_directory_file(text, coordinator.node_id, _verify_key(coordinator))


def _tamper(token: str) -> str:
    """The same token with its "created" time changed and the old signature kept."""
    head, payload, signature = token.split(".")
    changed = {**jws.strict_json_object(jws.b64url_decode(payload)),
               "created": "2027-01-01T00:00:00Z"}
    return ".".join([head, jws.b64url_encode(jws.canonical_json(changed)), signature])


def test_round_trip_lists_every_office_with_its_checked_card(province):
    offices, cards = province
    text = make_directory_file(offices["tinhuy"], list(cards.values()), now=NOW)
    assert directory_signer(text) == offices["tinhuy"].node_id
    directory = _read(text, offices["tinhuy"])
    assert directory.issuer_name == "tinhuy" and directory.created == NOW
    assert [entry.name for entry in directory.entries] == sorted(cards)
    for entry in directory.entries:
        assert entry.problem is None and entry.card == cards[entry.name]
    assert directory.unlisted == 0


def test_a_card_changed_after_signing_is_refused_by_name_and_the_rest_stand(province):
    offices, cards = province
    lines = make_directory_file(offices["tinhuy"], list(cards.values()), now=NOW).splitlines()
    victim = next(i for i, line in enumerate(lines) if line == cards["so-y-te"].token)
    lines[victim] = _tamper(lines[victim])
    directory = _read("\n".join(lines), offices["tinhuy"])
    problems = {entry.name: entry.problem for entry in directory.entries if entry.problem}
    assert list(problems) == ["so-y-te"]
    assert "changed after the directory was signed" in problems["so-y-te"]
    assert sum(entry.card is not None for entry in directory.entries) == 4
    assert directory.unlisted == 1  # the altered card itself, named by nothing


def test_a_card_whose_own_signature_fails_is_refused_even_when_the_coordinator_signed_it(
        province):
    """The coordinator's signature never stands in for a card's own."""
    offices, cards = province
    coordinator = offices["tinhuy"]
    bad = _tamper(cards["huyen-a"].token)
    index = {"v": 1, "name": "tinhuy", "node_id": coordinator.node_id, "created": NOW,
             "entries": [{"name": "huyen-a", "node_id": cards["huyen-a"].node_id,
                          "card_sha256": card_digest(bad)},
                         {"name": "huyen-b", "node_id": cards["huyen-b"].node_id,
                          "card_sha256": card_digest(cards["huyen-b"].token)}]}
    token = jws.sign(coordinator.identity, DIRECTORY_TYP, index, kid=coordinator.node_id)
    directory = _read("\n".join([token, bad, cards["huyen-b"].token]), coordinator)
    first, second = directory.entries
    assert first.name == "huyen-a" and first.card is None
    assert "signature does not verify" in (first.problem or "")
    assert second.card == cards["huyen-b"]


def test_a_card_for_another_node_than_the_index_names_is_refused(province):
    offices, cards = province
    coordinator = offices["tinhuy"]
    index = {"v": 1, "name": "tinhuy", "node_id": coordinator.node_id, "created": NOW,
             "entries": [{"name": "so-y-te", "node_id": cards["so-y-te"].node_id,
                          "card_sha256": card_digest(cards["huyen-a"].token)}]}
    token = jws.sign(coordinator.identity, DIRECTORY_TYP, index, kid=coordinator.node_id)
    (entry,) = _read("\n".join([token, cards["huyen-a"].token]), coordinator).entries
    assert entry.card is None and "not the office the directory names" in (entry.problem or "")


def test_a_bundle_signed_by_an_unknown_office_is_refused_whole(province):
    offices, cards = province
    stranger = _keys("ke-la")
    text = make_directory_file(stranger, list(cards.values()), now=NOW)
    with pytest.raises(DirectoryFileError, match="not by the coordinating office"):
        _read(text, offices["tinhuy"])
    # Claiming the coordinator's node ID in the header does not help: the key must match.
    index_token, *rest = text.splitlines()
    decoded = jws.decode(index_token, DIRECTORY_TYP)
    forged = jws.sign(stranger.identity, DIRECTORY_TYP,
                      {**decoded.payload, "node_id": offices["tinhuy"].node_id},
                      kid=offices["tinhuy"].node_id)
    with pytest.raises(DirectoryFileError, match="changed after the coordinating office"):
        _read("\n".join([forged, *rest]), offices["tinhuy"])


def test_an_altered_index_is_refused_whole(province):
    offices, cards = province
    text = make_directory_file(offices["tinhuy"], list(cards.values()), now=NOW)
    index_token, *rest = text.splitlines()
    with pytest.raises(DirectoryFileError, match="signature does not verify"):
        _read("\n".join([_tamper(index_token), *rest]), offices["tinhuy"])


@pytest.mark.parametrize("text", ["", "not a token\n", b"\xff\xfe", "a.b.c\n"])
def test_garbage_is_not_a_directory_file(province, text):
    offices, _ = province
    with pytest.raises(DirectoryFileError):
        _read(text, offices["tinhuy"])


def test_duplicates_are_refused_when_making_and_when_reading(province):
    offices, cards = province
    coordinator = offices["tinhuy"]
    with pytest.raises(DirectoryFileError, match="twice"):
        make_directory_file(coordinator, [cards["huyen-a"], cards["huyen-a"]], now=NOW)
    entry = {"name": "huyen-a", "node_id": cards["huyen-a"].node_id,
             "card_sha256": card_digest(cards["huyen-a"].token)}
    for second in ({**entry}, {**entry, "name": "huyen-z"}):
        index = {"v": 1, "name": "tinhuy", "node_id": coordinator.node_id, "created": NOW,
                 "entries": [entry, second]}
        token = jws.sign(coordinator.identity, DIRECTORY_TYP, index, kid=coordinator.node_id)
        with pytest.raises(DirectoryFileError, match="twice"):
            _read("\n".join([token, cards["huyen-a"].token]), coordinator)


# -- the enrolment plan ----------------------------------------------------------------------

def test_plan_adds_new_offices_and_leaves_known_ones_and_itself(province):
    offices, cards = province
    enrolled = [Peer.from_card(cards["tinhuy"], now=NOW)]
    offers = [Offer(name, card) for name, card in cards.items()]
    plan = plan_enrolment(offers, own_node_id=cards["so-y-te"].node_id, own_name="so-y-te",
                          enrolled=enrolled)
    assert sorted(o.card.name for o in plan.add) == ["huyen-a", "huyen-b", "so-tu-phap"]
    assert sorted(o.card.name for o in plan.unchanged) == ["so-y-te", "tinhuy"]
    assert plan.refused == ()


def test_plan_refuses_unreadable_cards_clashes_and_contradictions(province):
    offices, cards = province
    impostor = _other_node("huyen-b")
    renamed = Peer.from_card(cards["so-tu-phap"], now=NOW)
    enrolled = [Peer.from_card(cards["tinhuy"], now=NOW).revoke(at=NOW, reason="lost"),
                Peer(name="tu-phap", node_id=renamed.node_id, addresses=(), state="trusted",
                     keys=renamed.keys)]
    offers = [
        Offer("broken.card", None, "this peer card was changed after it was signed"),
        Offer("tinhuy.card", cards["tinhuy"]),           # revoked here
        Offer("so-tu-phap.card", cards["so-tu-phap"]),   # enrolled under another name
        Offer("so-y-te.card", cards["so-y-te"]),         # new
        Offer("so-y-te-again.card", cards["so-y-te"]),   # the same card twice: once
        Offer("huyen-a.card", cards["huyen-a"]),
        Offer("huyen-a-too.card", _other_node("huyen-a")),
    ]
    enrolled.append(Peer.from_card(impostor, now=NOW))  # another node holds the name huyen-b
    offers.append(Offer("huyen-b.card", cards["huyen-b"]))
    offers.append(Offer("me.card", _other_node("me")))  # another node taking our own name
    plan = plan_enrolment(offers, own_node_id=_keys("me").node_id, own_name="me",
                          enrolled=enrolled)
    assert [o.label for o in plan.add] == ["so-y-te.card"]
    reasons = {r.label: r.reason for r in plan.refused}
    assert set(reasons) == {"broken.card", "tinhuy.card", "so-tu-phap.card", "huyen-a.card",
                            "huyen-a-too.card", "huyen-b.card", "me.card"}
    assert "revoked" in reasons["tinhuy.card"]
    assert "already enrolled here as 'tu-phap'" in reasons["so-tu-phap.card"]
    assert "two different cards" in reasons["huyen-a.card"]
    assert "another office" in reasons["huyen-b.card"]
    assert "this office's own name 'me'" in reasons["me.card"]
