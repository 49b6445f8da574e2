"""Peer cards: every refusal a clerk reads, word for word, and each limit at its boundary.

These sentences are what `lienthong peers add` and the enrolment page show a clerk who was
sent a bad card (docs/keys.md), so they are pinned as written.
"""
from __future__ import annotations

import hashlib
from typing import Any

import pytest

from lienthong.keys import jws, tls
from lienthong.keys.card import (
    CARD_TYP,
    MAX_ADDRESSES,
    MAX_CARD_CHARS,
    make_card,
    parse_address,
    read_card,
)
from lienthong.keys.errors import BadCard, InvalidValue, KeysError
from lienthong.keys.identity import NodeKeys, generate_node_keys

NOW = "2025-03-01T08:00:00Z"
ADDRESSES = ["so-tu-phap.example.vn:7443", "10.20.30.40:7443", "[2001:db8::1]:7443"]
ADVICE = "ask the other office to send its card file again"


def _rng(seed: bytes) -> Any:
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture(scope="module")
def keys() -> NodeKeys:
    return generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"card-rules"))


@pytest.fixture(scope="module")
def other() -> NodeKeys:
    return generate_node_keys("ubnd-tinh", now=NOW, random_bytes=_rng(b"card-other"))


def _payload(keys: NodeKeys) -> dict[str, Any]:
    return dict(jws.decode(make_card(keys, addresses=ADDRESSES, now=NOW), CARD_TYP).payload)


def _resigned(keys: NodeKeys, kid: str | None = None, **changes: Any) -> str:
    payload = _payload(keys)
    payload.update(changes)
    for name in [name for name, value in changes.items() if value is DROP]:
        del payload[name]
    return jws.sign(keys.identity, CARD_TYP, payload, kid=kid or keys.node_id) + "\n"


DROP = object()


def refusal(text: Any) -> str:
    with pytest.raises(BadCard) as caught:
        read_card(text)
    return str(caught.value)


def address_refusal(text: Any) -> str:
    with pytest.raises(InvalidValue) as caught:
        parse_address(text)
    return str(caught.value)


# -- addresses ---------------------------------------------------------------------------------

def test_address_length_bounds() -> None:
    assert parse_address("a:1") == ("a", 1)
    assert address_refusal("a:") == "address 'a:' is not host:port"
    assert address_refusal(None) == "address None is not host:port"
    longest = ".".join(["a" * 63] * 4)[:253]          # the longest host name, 253 characters
    assert parse_address(longest + ":65535") == (longest, 65535)
    too_long = "b" * 257 + ":7443"                    # 262 characters: reaches the host check
    assert address_refusal(too_long).endswith("does not hold a valid host name (letters, "
                                              "digits and hyphens, separated by dots)")
    over = "b" * 258 + ":7443"                        # 263: refused before anything else
    assert address_refusal(over) == f"address {over!r} is not host:port"


def test_address_refusals_are_worded() -> None:
    assert address_refusal("host7443") == ("address 'host7443' is not host:port (for example "
                                           "so-tu-phap.example.vn:7443)")
    assert address_refusal(":7443") == ("address ':7443' is not host:port (for example "
                                        "so-tu-phap.example.vn:7443)")
    assert address_refusal("2001:db8::1:7443") == (
        "address '2001:db8::1:7443': write an IPv6 address in brackets, as [2001:db8::1]:7443")
    assert address_refusal("[::1]7443") == "address '[::1]7443' is not [IPv6]:port"
    assert address_refusal("[fe80::1%eth0]:7443") == \
        "address '[fe80::1%eth0]:7443' is not [IPv6]:port"
    assert address_refusal("[zz::q]:7443") == \
        "address '[zz::q]:7443' does not hold a valid IPv6 address"
    assert address_refusal("10.0.0.256:7443") == \
        "address '10.0.0.256:7443' does not hold a valid IPv4 address"
    assert address_refusal("10.0.0:7443") == \
        "address '10.0.0:7443' does not hold a valid IPv4 address"
    assert address_refusal("host.123:7443") == \
        "address 'host.123:7443': a host name cannot end in a number"
    assert address_refusal("-x.vn:1").startswith("address '-x.vn:1' does not hold a valid host")


@pytest.mark.parametrize("port", ["0", "65536", "99999", "07443", "123456", "+1", "x"])
def test_ports_outside_1_to_65535_are_refused(port: str) -> None:
    for host in ("example.vn", "[::1]"):
        assert address_refusal(f"{host}:{port}") == \
            f"address {host + ':' + port!r}: the port must be a number from 1 to 65535"


def test_ports_and_hosts_that_parse() -> None:
    assert parse_address("example.vn:1") == ("example.vn", 1)
    assert parse_address("example.vn:65535") == ("example.vn", 65535)
    assert parse_address("[2001:db8::1]:7443") == ("2001:db8::1", 7443)
    assert parse_address("example.vn.:80") == ("example.vn.", 80)   # a trailing dot: the root
    assert address_refusal("example.123.:80") == \
        "address 'example.123.:80': a host name cannot end in a number"
    assert address_refusal("10.0.0.1.:80") == \
        "address '10.0.0.1.:80' does not hold a valid IPv4 address"
    assert parse_address("vn1.example-2.vn:80") == ("vn1.example-2.vn", 80)


def test_address_lists(keys: NodeKeys) -> None:
    def list_refusal(addresses: Any) -> str:
        with pytest.raises(InvalidValue) as caught:
            make_card(keys, addresses=addresses, now=NOW)
        return str(caught.value)

    assert list_refusal("a.vn:1") == "addresses must be a list of host:port"
    assert list_refusal({"a.vn:1": 1}) == "addresses must be a list of host:port"
    most = [f"h{i}.vn:1" for i in range(MAX_ADDRESSES)]
    assert read_card(make_card(keys, addresses=tuple(most), now=NOW)).addresses == tuple(most)
    assert list_refusal(most + ["h99.vn:1"]) == "a card holds at most 16 addresses"
    assert list_refusal(["a.vn:1", "a.vn:1"]) == "the same address is listed twice"


# -- reading a card ----------------------------------------------------------------------------

def test_a_card_is_text_of_bounded_size(keys: NodeKeys) -> None:
    assert refusal(b"\xff\xfe") == ("this file is not a lienthong peer card (it is not text); "
                                    f"{ADVICE}")
    assert refusal(42) == "a peer card must be text"
    text = make_card(keys, addresses=ADDRESSES, now=NOW)
    padded = text + " " * (MAX_CARD_CHARS - len(text))
    assert len(padded) == MAX_CARD_CHARS
    assert read_card(padded).node_id == keys.node_id
    assert refusal(padded + " ") == ("this file is too large to be a lienthong peer card "
                                     "(more than 32768 characters)")
    assert read_card(" \ufeff " + text).node_id == keys.node_id


def test_not_a_card_names_why(keys: NodeKeys) -> None:
    with pytest.raises(KeysError) as inner:
        jws.decode("hello", CARD_TYP)
    assert refusal("hello") == f"this file is not a lienthong peer card ({inner.value}); {ADVICE}"


def test_layout_and_version(keys: NodeKeys) -> None:
    layout = ("this peer card has an unknown layout or version; it may come from a newer "
              "lienthong. Ask the other office to send its card file again")
    for changes in ({"v": 2}, {"v": True}, {"v": "1"}, {"extra": 1}, {"created": DROP}):
        assert refusal(_resigned(keys, **changes)) == layout


def test_each_field_refusal_is_worded(keys: NodeKeys, other: NodeKeys) -> None:
    assert refusal(_resigned(keys, identity="AAAA")) == \
        "the card's identity key must be 32 bytes, not 3"
    token = make_card(keys, addresses=ADDRESSES, now=NOW).strip()
    header, _, signature = token.split(".")
    changed = _payload(keys) | {"name": "ubnd-tinh"}
    forged = f"{header}.{jws.b64url_encode(jws.canonical_json(changed))}.{signature}"
    assert refusal(forged) == ("this peer card was changed after it was signed (its signature "
                               f"does not verify); do not use it, {ADVICE}")
    assert refusal(_resigned(keys, node_id="ABC")) == \
        f"the card's node ID 'ABC' is not well formed; {ADVICE}"
    assert refusal(_resigned(other, node_id=keys.node_id)) == \
        f"card claims node ID {keys.node_id} but its key gives {other.node_id}; do not use " \
        f"it, {ADVICE}"
    assert refusal(_resigned(keys, kid="someone")) == \
        f"the card's signature names key 'someone', not its node ID; {ADVICE}"


def test_encryption_key_refusals(keys: NodeKeys) -> None:
    public = _payload(keys)["encryption"]["public"]
    kid = _payload(keys)["encryption"]["kid"]
    malformed = f"the card's encryption key is not well formed; {ADVICE}"
    assert refusal(_resigned(keys, encryption=[kid, public])) == malformed
    assert refusal(_resigned(keys, encryption={"kid": kid})) == malformed
    assert refusal(_resigned(keys, encryption={"kid": kid, "public": public, "x": 1})) == \
        malformed
    assert refusal(_resigned(keys, encryption={"kid": "0" * 16, "public": public})) == \
        f"the card's encryption key ID does not match its key; {ADVICE}"
    assert refusal(_resigned(keys, encryption={"kid": kid, "public": 5})) == \
        "the card's encryption key must be base64url text"


def test_tls_refusals(keys: NodeKeys) -> None:
    with pytest.raises(KeysError) as inner:
        tls.check_certificate_key(b"junk")
    assert refusal(_resigned(keys, tls_cert=jws.b64url_encode(b"junk"))) == \
        f"the card's TLS certificate cannot be read ({inner.value}); {ADVICE}"
    with pytest.raises(KeysError) as inner:
        jws.b64url_decode("a=")
    assert refusal(_resigned(keys, tls_cert="a=")) == \
        f"the card's TLS certificate cannot be read ({inner.value}); {ADVICE}"
    assert refusal(_resigned(keys, tls_spki_sha256="0" * 64)) == \
        f"the card's TLS pin {'0' * 64!r} does not match its TLS certificate " \
        f"({keys.tls_spki_sha256}); {ADVICE}"


def test_name_address_and_time_refusals(keys: NodeKeys) -> None:
    with pytest.raises(InvalidValue) as inner:
        from lienthong.keys.identity import check_node_name
        check_node_name("../etc")
    assert refusal(_resigned(keys, name="../etc")) == \
        f"the card's office name is not usable: {inner.value}. The other office must choose " \
        "another name"
    assert refusal(_resigned(keys, addresses=["a.vn:1", "a.vn:1"])) == \
        "the card's network address is not usable: the same address is listed twice"
    message = refusal(_resigned(keys, created="yesterday"))
    assert message.startswith("the card's creation time is not usable: ")
    assert len(message) > len("the card's creation time is not usable: ")


def test_a_read_card_holds_exactly_what_was_signed(keys: NodeKeys) -> None:
    text = make_card(keys, addresses=ADDRESSES, now=NOW)
    assert text == jws.sign(keys.identity, CARD_TYP, _payload(keys), kid=keys.node_id) + "\n"
    payload = _payload(keys)
    assert payload == {
        "v": 1, "name": "so-tu-phap", "node_id": keys.node_id,
        "identity": jws.b64url_encode(keys.identity_public),
        "encryption": {"kid": keys.current_encryption.kid,
                       "public": jws.b64url_encode(keys.current_encryption.public_bytes)},
        "tls_spki_sha256": keys.tls_spki_sha256,
        "tls_cert": jws.b64url_encode(keys.tls_cert_der), "addresses": ADDRESSES,
        "created": NOW}
    card = read_card(text)
    assert (card.encryption_kid, card.tls_spki_sha256, card.created, card.token) == \
        (keys.current_encryption.kid, keys.tls_spki_sha256, NOW, text.strip())


def test_a_host_name_of_254_characters_is_too_long() -> None:
    host = ".".join(["a" * 63] * 3 + ["a" * 62])
    assert len(host) == 254
    assert address_refusal(f"{host}:1") == (
        f"address {host + ':1'!r} does not hold a valid host name (letters, digits and "
        "hyphens, separated by dots)")
    assert parse_address(f"{host[1:]}:1") == (host[1:], 1)


def test_the_first_bracket_closes_an_ipv6_address() -> None:
    assert address_refusal("[::1]:80]:90") == \
        "address '[::1]:80]:90': the port must be a number from 1 to 65535"


def test_only_a_byte_order_mark_and_white_space_are_forgiven(keys: NodeKeys) -> None:
    text = make_card(keys, addresses=ADDRESSES, now=NOW)
    assert read_card("\ufeff" + text).node_id == keys.node_id
    for noise in ("X", "x", ".", "\u200b"):
        with pytest.raises(BadCard):
            read_card(noise + text)
