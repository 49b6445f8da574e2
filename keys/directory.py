"""The peer directory as a pure value: who we trust, with which keys, since when.

Theory of operation: a node talks only to peers in its directory (docs/design.md §2). The
node keeps the directory in its database; this module is the in-memory model it rebuilds from
there, an immutable snapshot that answers the questions the rest of the node asks:

* TLS: which trusted node owns this key pin? (:meth:`Directory.node_for_tls_pin`, the lookup
  :func:`keys.tls.check_pin` takes);
* signatures: which Ed25519 key verifies what this node signed? (:meth:`Directory.verify_key_for`);
* encryption: which X25519 key do we seal a document to? (:meth:`Directory.encryption_key_for`);
* folders: which peers does ``outbox/<name>/`` mean? (:meth:`Directory.resolve_target`).

Each peer keeps the history of its keys: a key is *current* while ``valid_until`` is None; a
rotation closes the old key (sets ``valid_until``) and adds the new one. Only trusted peers'
current keys ever authorise a connection or receive a document, with one exception: a TLS key
whose validity period *overlaps* the current TLS key's (its ``valid_until`` is later than the
current key's ``valid_from``) is still accepted for a handshake. The node writes such an
overlap when a peer announces a new TLS key, so that connections the peer opens with its old
key before it learns that we have the new one still succeed, and ends it (closes the old key
at the new key's start) when the grace period is over (node.keyupdate). The rule is a fact of
the data, not of a clock, so this module stays pure. A revoked peer answers nothing
(fail closed: old signatures of a revoked peer are not vouched for here either, since we cannot
tell a retired key from a compromised one at this layer).
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import nacl.public
import nacl.signing

from lienthong.keys import jws
from lienthong.keys.card import PeerCard, parse_address
from lienthong.keys.errors import DirectoryError, InvalidValue, KeysError, UnknownPeer
from lienthong.keys.identity import (
    check_node_name,
    check_time,
    decode_key32,
    encryption_kid,
    parse_time,
)
from lienthong.keys.nodeid import node_id_from_public_key, parse_node_id

KeyKind = Literal["identity", "encryption", "tls"]
PeerState = Literal["trusted", "revoked"]
KINDS: tuple[KeyKind, ...] = ("identity", "encryption", "tls")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class PeerKey:
    """One public key of a peer and the period it was (or is) in use.

    ``value`` is base64url of the raw public key (identity, encryption) or the hex SPKI pin (tls).
    ``kid`` is the node ID for identity keys, the encryption key ID, or the first 16 hex
    characters of the pin for TLS keys; it is checked against ``value``.
    """

    kind: KeyKind
    value: str
    kid: str
    valid_from: str
    valid_until: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "identity":
            raw = decode_key32(self.value, "identity key", InvalidValue)
            expected = node_id_from_public_key(raw)
        elif self.kind == "encryption":
            expected = encryption_kid(decode_key32(self.value, "encryption key", InvalidValue))
        elif self.kind == "tls":
            if not isinstance(self.value, str) or not _HEX64.fullmatch(self.value):
                raise InvalidValue("a TLS pin is 64 lowercase hex characters")
            expected = self.value[:16]
        else:
            raise InvalidValue(f"unknown key kind {self.kind!r}; expected one of {KINDS}")
        if self.kid != expected:
            raise InvalidValue(f"{self.kind} key ID {self.kid!r} does not match the key")
        start = parse_time(self.valid_from)
        if self.valid_until is not None and parse_time(self.valid_until) < start:
            raise InvalidValue(f"{self.kind} key {self.kid} ends before it starts")

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key (identity and encryption keys only)."""
        if self.kind == "tls":
            raise InvalidValue("a TLS key is recorded by its pin, not its bytes")
        return jws.b64url_decode(self.value)

    @property
    def is_current(self) -> bool:
        return self.valid_until is None

    def valid_at(self, when: datetime.datetime) -> bool:
        """True when ``when`` falls in [valid_from, valid_until)."""
        if when < parse_time(self.valid_from):
            return False
        return self.valid_until is None or when < parse_time(self.valid_until)


@dataclass(frozen=True, slots=True)
class Peer:
    """One office in the directory, with every key it has used."""

    name: str
    node_id: str
    addresses: tuple[str, ...]
    state: PeerState
    keys: tuple[PeerKey, ...]
    revoked_at: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        check_node_name(self.name)
        if parse_node_id(self.node_id) != self.node_id:
            raise InvalidValue(f"node ID {self.node_id!r} is not in canonical form")
        if not isinstance(self.addresses, tuple):
            raise InvalidValue("peer addresses must be a tuple")
        for address in self.addresses:
            parse_address(address)
        if self.state not in ("trusted", "revoked"):
            raise InvalidValue(f"peer state {self.state!r} is neither 'trusted' nor 'revoked'")
        if (self.state == "revoked") != (self.revoked_at is not None):
            raise InvalidValue("a revoked peer has a revocation time, and only a revoked peer")
        if self.revoked_at is not None:
            check_time(self.revoked_at)
        if not isinstance(self.keys, tuple) or not all(isinstance(k, PeerKey) for k in self.keys):
            raise InvalidValue("peer keys must be a tuple of PeerKey")
        for kind in KINDS:
            current = [key for key in self.keys if key.kind == kind and key.is_current]
            if len(current) > 1:
                raise InvalidValue(f"peer {self.name} has {len(current)} current {kind} keys")
            if self.state == "trusted" and not current:
                raise InvalidValue(f"trusted peer {self.name} has no current {kind} key")
        identity = [key for key in self.keys if key.kind == "identity" and key.is_current]
        if identity and identity[0].kid != self.node_id:
            raise InvalidValue(f"peer {self.name}'s current identity key gives node ID "
                               f"{identity[0].kid}, not {self.node_id}")

    @classmethod
    def from_card(cls, card: PeerCard, *, now: str) -> Peer:
        """The initial, trusted record for a card whose node ID was checked out of band."""
        check_time(now)
        keys = (
            PeerKey("identity", jws.b64url_encode(card.identity_public), card.node_id, now),
            PeerKey("encryption", jws.b64url_encode(card.encryption_public),
                    card.encryption_kid, now),
            PeerKey("tls", card.tls_spki_sha256, card.tls_spki_sha256[:16], now),
        )
        return cls(name=card.name, node_id=card.node_id, addresses=card.addresses,
                   state="trusted", keys=keys)

    def current(self, kind: KeyKind) -> PeerKey:
        """The key of ``kind`` in use now; UnknownPeer if the peer has none (e.g. revoked)."""
        for key in self.keys:
            if key.kind == kind and key.is_current:
                return key
        raise UnknownPeer("peer {name} has no current {kind} key", name=self.name, kind=kind)

    def accepted_tls_keys(self) -> tuple[PeerKey, ...]:
        """TLS keys a handshake may present: the current one, and any older one still in its
        grace period (its validity overlaps the current key's; see the module docstring)."""
        current = self.current("tls")
        start = parse_time(current.valid_from)
        grace = tuple(key for key in self.keys
                      if key.kind == "tls" and not key.is_current
                      and parse_time(key.valid_until) > start)  # type: ignore[arg-type]
        return (current,) + grace

    def identity_keys_valid_at(self, time: str) -> tuple[PeerKey, ...]:
        """Identity keys whose validity period covers ``time`` (RFC 3339)."""
        when = parse_time(time)
        return tuple(key for key in self.all_identity_keys() if key.valid_at(when))

    def all_identity_keys(self) -> tuple[PeerKey, ...]:
        return tuple(key for key in self.keys if key.kind == "identity")

    def with_key(self, key: PeerKey) -> Peer:
        """Rotate: close the current key of ``key.kind`` at ``key.valid_from`` and add ``key``.

        A new identity key means a new node ID: only do that after a new out-of-band check.
        """
        if key.valid_until is not None:
            raise InvalidValue("a new key must be current (valid_until None)")
        if any(old.kind == key.kind and old.kid == key.kid for old in self.keys):
            raise InvalidValue(f"peer {self.name} already has {key.kind} key {key.kid}")
        closed = tuple(replace(old, valid_until=key.valid_from)
                       if old.kind == key.kind and old.is_current else old for old in self.keys)
        node_id = key.kid if key.kind == "identity" else self.node_id
        return replace(self, keys=closed + (key,), node_id=node_id)

    def revoke(self, *, at: str, reason: str) -> Peer:
        """The same peer, revoked: none of its keys authorises anything any more."""
        return replace(self, state="revoked", revoked_at=at, reason=reason)


def _lookup_name(name: str) -> str:
    # Names are lowercase ASCII slugs; a clerk's "Bo-Tai-Chinh" folder still finds them.
    return name.lower() if isinstance(name, str) and name.isascii() else name


class Directory:
    """An immutable snapshot of the peer directory, indexed for the node's lookups."""

    __slots__ = ("_peers", "_by_name", "_by_node_id", "_by_identity_kid", "_by_tls_pin")

    def __init__(self, peers: Iterable[Peer]) -> None:
        self._peers = tuple(sorted(peers, key=lambda peer: peer.name))
        self._by_name: dict[str, Peer] = {}
        self._by_node_id: dict[str, Peer] = {}
        self._by_identity_kid: dict[str, Peer] = {}
        self._by_tls_pin: dict[str, str] = {}
        for peer in self._peers:
            if not isinstance(peer, Peer):
                raise DirectoryError("a directory holds Peer values only")
            _insert(self._by_name, peer.name, peer, "name")
            _insert(self._by_node_id, peer.node_id, peer, "node ID")
            for key in peer.all_identity_keys():
                _insert(self._by_identity_kid, key.kid, peer, "identity key")
            if peer.state == "trusted":
                for key in peer.accepted_tls_keys():
                    _insert(self._by_tls_pin, key.value, peer.node_id, "TLS key")

    @property
    def peers(self) -> tuple[Peer, ...]:
        return self._peers

    def peer_named(self, name: str) -> Peer:
        peer = self._by_name.get(_lookup_name(name))
        if peer is None:
            raise UnknownPeer("there is no peer named {name!r} in the directory", name=name)
        return peer

    def peer_with_id(self, node_id: str) -> Peer:
        """The peer whose current node ID is ``node_id`` (any spelling a person might type)."""
        try:
            canonical = parse_node_id(node_id)
        except KeysError as exc:
            raise UnknownPeer("{node_id!r} is not a node ID: {error}", node_id=node_id,
                              error=exc) from exc
        peer = self._by_node_id.get(canonical)
        if peer is None:
            raise UnknownPeer("node {canonical} is not in the directory", canonical=canonical)
        return peer

    def node_for_tls_pin(self, pin: str) -> str | None:
        """Node ID of the trusted peer whose current TLS key (or previous one, still in its
        grace period: :meth:`Peer.accepted_tls_keys`) has this pin, else None."""
        return self._by_tls_pin.get(pin)

    def identities_of(self, node_id: str) -> tuple[PeerKey, ...]:
        """Every identity key (current and former) of the trusted peer that has, or had, node
        ID ``node_id``; empty if there is none. After a peer's identity rotation its former
        node ID still names it here: HELLOs, envelopes queued before the rotation and their
        receipts name the former ID (the caller bounds how long it accepts that)."""
        peer = self._by_identity_kid.get(node_id) if isinstance(node_id, str) else None
        if peer is None or peer.state != "trusted":
            return ()
        return peer.all_identity_keys()

    def peer_for_identity(self, node_id: str) -> Peer | None:
        """The peer that has, or had, identity ``node_id`` (any state), else None."""
        return self._by_identity_kid.get(node_id) if isinstance(node_id, str) else None

    def _trusted(self, peer: Peer) -> Peer:
        if peer.state != "trusted":
            raise UnknownPeer("peer {name} ({node_id}) was revoked at {revoked_at}: {value}",
                              name=peer.name, node_id=peer.node_id, revoked_at=peer.revoked_at,
                              value=peer.reason or "no reason given")
        return peer

    def verify_key_for(self, node_id: str, kid: str | None = None) -> nacl.signing.VerifyKey:
        """The Ed25519 key to verify a signature by ``node_id`` (a trusted peer).

        ``kid`` (the JWS header's kid, i.e. the node ID of the signing key) selects a past
        identity key; without it the current one is used.
        """
        peer = self._by_identity_kid.get(node_id) if isinstance(node_id, str) else None
        if peer is None:
            raise UnknownPeer("no peer in the directory has node ID {node_id!r}", node_id=node_id)
        self._trusted(peer)
        wanted = kid if kid is not None else peer.current("identity").kid
        for key in peer.all_identity_keys():
            if key.kid == wanted:
                return nacl.signing.VerifyKey(key.public_bytes)
        raise UnknownPeer("peer {name} has no identity key {wanted!r}", name=peer.name,
                          wanted=wanted)

    def encryption_key_for(self, node_id: str) -> tuple[str, nacl.public.PublicKey]:
        """The key ID and X25519 key to seal a document to trusted peer ``node_id``."""
        peer = self._trusted(self.peer_with_id(node_id))
        key = peer.current("encryption")
        return key.kid, nacl.public.PublicKey(key.public_bytes)

    def resolve_target(self, name: str,
                       groups: Mapping[str, Sequence[str]] | None = None) -> tuple[Peer, ...]:
        """The trusted peers an ``outbox/<name>/`` folder sends to: one peer, or a group's members.

        A name that is both a peer and a group, an unknown name, an unknown or revoked member:
        each refuses the whole target, so a document never goes to part of a group silently.
        """
        key = _lookup_name(name)
        groups = {_lookup_name(g): members for g, members in (groups or {}).items()}
        peer = self._by_name.get(key)
        if peer is not None and key in groups:
            raise DirectoryError("{name!r} is both a peer and a group; rename the group",
                                 name=name)
        if peer is not None:
            return (self._trusted(peer),)
        if key not in groups:
            raise UnknownPeer("there is no peer or group named {name!r}", name=name)
        members = groups[key]
        if isinstance(members, str) or not members:
            raise DirectoryError("group {name!r} must list one or more peer names", name=name)
        resolved: dict[str, Peer] = {}
        for member in members:
            found = self._by_name.get(_lookup_name(member))
            if found is None:
                raise UnknownPeer("group {name!r} lists {member!r}, which is not in the directory",
                                  name=name, member=member)
            resolved[found.node_id] = self._trusted(found)
        return tuple(resolved.values())


#: What an index maps its keys to (a Peer, or a node ID).
_Indexed = TypeVar("_Indexed")


def _insert(index: dict[str, _Indexed], key: str, value: _Indexed, what: str) -> None:
    if key in index:
        raise DirectoryError("two peers share the same {what} ({key})", what=what, key=key)
    index[key] = value
