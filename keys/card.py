"""Peer cards: a node's public identity, self-signed, exported to a file and sent to a peer.

Theory of operation: a card is a JWS of type ``lienthong-card/1`` signed by the identity key it
carries. The self-signature proves only that the card is intact and that whoever made it holds
that identity key; it says nothing about *who* that is. That is why a clerk adds a peer only
after checking, out of band (by phone), that the card's node ID - or the shorter symmetric
:func:`verification_code` computed from both node IDs - is what the other office reads out.

Everything in a card is attacker-controlled until that check, so :func:`read_card` validates
every field and fails with :class:`~keys.errors.BadCard` carrying a sentence a clerk can act on.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.signing

from lienthong.keys import jws, tls
from lienthong.keys.errors import BadCard, BadNodeID, InvalidValue, KeysError
from lienthong.keys.identity import (
    NodeKeys,
    check_node_name,
    check_time,
    decode_key32,
    encryption_kid,
)
from lienthong.keys.nodeid import node_id_from_public_key, parse_node_id

CARD_TYP = "lienthong-card/1"
#: A card is a few kilobytes (the certificate is about 350 bytes); anything bigger is refused
#: before it is decoded.
MAX_CARD_CHARS = 32 * 1024
MAX_ADDRESSES = 16
_CARD_FIELDS = frozenset(["v", "name", "node_id", "identity", "encryption", "tls_spki_sha256",
                          "tls_cert", "addresses", "created"])
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


def parse_address(text: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into a host and a port, validating both.

    Hosts are DNS names (letters, digits, hyphens per label) or IP literals; ports 1-65535
    without leading zeros. Raises InvalidValue naming what is wrong.
    """
    if not isinstance(text, str) or not 3 <= len(text) <= 262:
        raise InvalidValue(f"address {text!r} is not host:port")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or "%" in host:
            raise InvalidValue(f"address {text!r} is not [IPv6]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InvalidValue(f"address {text!r} does not hold a valid IPv6 address") from exc
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise InvalidValue(f"address {text!r} is not host:port (for example "
                               "so-tu-phap.example.vn:7443)")
        if ":" in host:
            raise InvalidValue(f"address {text!r}: write an IPv6 address in brackets, "
                               "as [2001:db8::1]:7443")
        _check_host(text, host)
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise InvalidValue(f"address {text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def _check_host(text: str, host: str) -> None:
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if labels and all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise InvalidValue(f"address {text!r} does not hold a valid IPv4 address") from exc
        return
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidValue(f"address {text!r} does not hold a valid host name "
                           "(letters, digits and hyphens, separated by dots)")
    if labels[-1].isdigit():
        raise InvalidValue(f"address {text!r}: a host name cannot end in a number")


def _check_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    if isinstance(addresses, str) or not isinstance(addresses, Sequence):
        raise InvalidValue("addresses must be a list of host:port")
    if len(addresses) > MAX_ADDRESSES:
        raise InvalidValue(f"a card holds at most {MAX_ADDRESSES} addresses")
    for address in addresses:
        parse_address(address)
    if len(set(addresses)) != len(addresses):
        raise InvalidValue("the same address is listed twice")
    return tuple(addresses)


@dataclass(frozen=True, slots=True)
class PeerCard:
    """A card whose signature and consistency were checked (but not yet its owner: see above)."""

    name: str
    node_id: str
    identity_public: bytes
    encryption_kid: str
    encryption_public: bytes
    tls_spki_sha256: str
    tls_cert_der: bytes
    addresses: tuple[str, ...]
    created: str
    token: str


def make_card(keys: NodeKeys, *, addresses: Sequence[str], now: str) -> str:
    """Return the text of this node's card file: the signed token and a newline."""
    addresses = _check_addresses(addresses)
    check_time(now)
    current = keys.current_encryption
    payload = {
        "v": 1,
        "name": keys.name,
        "node_id": keys.node_id,
        "identity": jws.b64url_encode(keys.identity_public),
        "encryption": {"kid": current.kid, "public": jws.b64url_encode(current.public_bytes)},
        "tls_spki_sha256": keys.tls_spki_sha256,
        "tls_cert": jws.b64url_encode(keys.tls_cert_der),
        "addresses": list(addresses),
        "created": now,
    }
    return jws.sign(keys.identity, CARD_TYP, payload, kid=keys.node_id) + "\n"


def read_card(text: str | bytes) -> PeerCard:
    """Parse and check a card file's text; return its content or raise BadCard."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise BadCard("this file is not a lienthong peer card (it is not text); "
                          "ask the other office to send its card file again") \
                from None
    if not isinstance(text, str):
        raise BadCard("a peer card must be text")
    if len(text) > MAX_CARD_CHARS:
        raise BadCard("this file is too large to be a lienthong peer card (more than {limit} "
                      "characters)", limit=MAX_CARD_CHARS)
    text = text.strip().lstrip("\ufeff").strip()  # editors add a byte-order mark or newlines
    try:
        decoded = jws.decode(text, CARD_TYP)
    except KeysError as exc:
        raise BadCard("this file is not a lienthong peer card ({problem}); "
                      "ask the other office to send its card file again",
                      problem=exc) from exc
    payload = decoded.payload
    if set(payload) != _CARD_FIELDS or type(payload.get("v")) is not int or payload["v"] != 1:
        raise BadCard("this peer card has an unknown layout or version; it may come from a "
                      "newer lienthong. Ask the other office to send its card file again")
    identity = decode_key32(payload["identity"], "the card's identity key", BadCard)
    try:
        verify_key = nacl.signing.VerifyKey(identity)
        payload = jws.verify_decoded(decoded, verify_key)
    except KeysError as exc:
        raise BadCard("this peer card was changed after it was signed (its signature does not "
                      "verify); do not use it, "
                      "ask the other office to send its card file again") from exc
    computed = node_id_from_public_key(identity)
    claimed = payload["node_id"]
    try:
        claimed = parse_node_id(claimed)
    except BadNodeID as exc:
        raise BadCard("the card's node ID {node_id} is not well formed; "
                      "ask the other office to send its card file again",
                      node_id=repr(claimed)) from exc
    if claimed != computed:
        raise BadCard("card claims node ID {claimed} but its key gives {computed}; do not use "
                      "it, "
                      "ask the other office to send its card file again",
                      claimed=claimed, computed=computed)
    if decoded.kid != computed:
        raise BadCard("the card's signature names key {kid}, not its node ID; "
                      "ask the other office to send its card file again",
                      kid=repr(decoded.kid))
    encryption = payload["encryption"]
    if not isinstance(encryption, dict) or set(encryption) != {"kid", "public"}:
        raise BadCard("the card's encryption key is not well formed; "
                      "ask the other office to send its card file again")
    encryption_public = decode_key32(encryption["public"], "the card's encryption key", BadCard)
    if encryption["kid"] != encryption_kid(encryption_public):
        raise BadCard("the card's encryption key ID does not match its key; "
                      "ask the other office to send its card file again")
    tls_cert = payload["tls_cert"]
    try:
        cert_der = jws.b64url_decode(tls_cert)
        pin = tls.check_certificate_key(cert_der)
    except KeysError as exc:
        raise BadCard("the card's TLS certificate cannot be read ({problem}); "
                      "ask the other office to send its card file again",
                      problem=exc) from exc
    if payload["tls_spki_sha256"] != pin:
        raise BadCard("the card's TLS pin {pin} does not match its TLS certificate "
                      "({certificate_pin}); "
                      "ask the other office to send its card file again",
                      pin=repr(payload["tls_spki_sha256"]),
                      certificate_pin=pin)
    try:
        name = check_node_name(payload["name"])
    except InvalidValue as exc:
        raise BadCard("the card's office name is not usable: {problem}. The other office must "
                      "choose another name", problem=exc) from exc
    try:
        addresses = _check_addresses(payload["addresses"])
    except InvalidValue as exc:
        raise BadCard("the card's network address is not usable: {problem}", problem=exc) \
            from exc
    try:
        created = check_time(payload["created"])
    except InvalidValue as exc:
        raise BadCard("the card's creation time is not usable: {problem}", problem=exc) \
            from exc
    return PeerCard(name=name, node_id=computed, identity_public=identity,
                    encryption_kid=encryption["kid"], encryption_public=encryption_public,
                    tls_spki_sha256=pin, tls_cert_der=cert_der, addresses=addresses,
                    created=created, token=decoded.token)


_CODE_DOMAIN = b"lienthong-verification-code/1\x00"
_CODE_GROUPS = 6


def verification_code(node_id_a: str, node_id_b: str) -> str:
    """A code two clerks read to each other to confirm both imported the right cards.

    Symmetric (the order of the IDs does not matter), so each clerk computes it from "my ID and
    the ID in the card I received" and they compare one string instead of two node IDs.

    Why 18 digits ("123 456 789 012 345 678") and not 6: cards are static, so an attacker who
    substitutes a card can try keys offline until the code matches the real one. Six digits
    fall to a laptop in seconds, twelve to a GPU in hours; eighteen (about 60 bits) would take
    centuries.
    """
    ids = sorted([parse_node_id(node_id_a), parse_node_id(node_id_b)])
    digest = hashlib.sha256(_CODE_DOMAIN + "\x00".join(ids).encode("ascii")).digest()
    number = int.from_bytes(digest[:16], "big") % 10 ** (3 * _CODE_GROUPS)
    digits = f"{number:0{3 * _CODE_GROUPS}d}"
    return " ".join(digits[i:i + 3] for i in range(0, len(digits), 3))
