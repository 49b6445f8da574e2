"""A node's own key material, and the binding by which its identity key vouches for the others.

Theory of operation (docs/keys-format.md §1): a node holds three independent keys, one per purpose.

* the **identity** key (Ed25519) only signs: envelopes, receipts, cards, bindings. Its public
  key determines the node ID, so it never changes for the life of the node;
* the **encryption** key (X25519, generated independently, never converted from Ed25519) opens
  the document keys sealed to this node. It may rotate: the node keeps every old private key
  (newest last) so archived envelopes stay readable, and senders use the newest;
* the **TLS** key (Ed25519) authenticates connections. It may rotate freely.

A *binding* is a JWS of type ``lienthong-binding/1`` in which the identity key names the
current encryption key and TLS key pin, with a sequence number, so peers can accept a rotated
key without a new identity or a new out-of-band check.

This module also holds the two value rules the whole ``keys`` package shares: node names and
RFC 3339 time stamps.
"""
from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lienthong.keys import jws, tls
from lienthong.keys.errors import BadBinding, InvalidValue, KeysError
from lienthong.keys.nodeid import node_id_from_public_key

BINDING_TYP = "lienthong-binding/1"

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Windows refuses these as folder names whatever the extension; names become folder names.
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)]
)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_node_name(name: str) -> str:
    """Return ``name`` if it is a valid node name, else raise InvalidValue.

    A node name becomes a folder name on every peer (``inbox/<name>/``, ``outbox/<name>/``), so
    it is a lowercase slug: 1-64 characters, ``a-z 0-9 . _ -``, starting with a letter or digit,
    not ending with a dot and not a Windows device name. Lowercase only, so two peers can never
    collide on a case-insensitive file system.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidValue(
            f"node name {name!r} is not allowed: use 1 to 64 lowercase letters a-z, digits, "
            "'.', '_' or '-', starting with a letter or digit (it becomes a folder name)")
    if name.endswith("."):
        raise InvalidValue(f"node name {name!r} must not end with a dot (Windows drops it)")
    if name.split(".", 1)[0] in _WINDOWS_DEVICES:
        raise InvalidValue(f"node name {name!r} is a reserved device name on Windows")
    return name


def parse_time(text: str) -> datetime.datetime:
    """Parse an RFC 3339 time stamp with seconds and an explicit offset; return it aware."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise InvalidValue(f"{text!r} is not an RFC 3339 time such as 2025-01-31T09:00:00Z")
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidValue(f"{text!r} is not a real date and time: {exc}") from exc


def check_time(text: str) -> str:
    """Return ``text`` if it is an RFC 3339 time stamp, else raise InvalidValue."""
    parse_time(text)
    return text


def encryption_kid(public_key: bytes) -> str:
    """Key ID of an X25519 public key: the first 16 hex characters of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True, slots=True, repr=False)
class EncryptionKey:
    """One X25519 key pair of this node, with its key ID and creation time."""

    kid: str
    private: nacl.public.PrivateKey
    created: str

    def __post_init__(self) -> None:
        if not isinstance(self.private, nacl.public.PrivateKey):
            raise KeysError("an encryption key must be a nacl.public.PrivateKey")
        if self.kid != encryption_kid(self.public_bytes):
            raise KeysError(f"encryption key ID {self.kid!r} does not match its public key")
        check_time(self.created)

    @property
    def public_bytes(self) -> bytes:
        return bytes(self.private.public_key)

    def __repr__(self) -> str:  # never print private material
        return f"EncryptionKey(kid={self.kid!r}, created={self.created!r})"


def make_encryption_key(*, now: str,
                        random_bytes: Callable[[int], bytes] = nacl.utils.random) -> EncryptionKey:
    """A fresh, independent X25519 key (never derived from the identity key)."""
    private = nacl.public.PrivateKey(random_bytes(nacl.public.PrivateKey.SIZE))
    return EncryptionKey(kid=encryption_kid(bytes(private.public_key)), private=private,
                         created=now)


@dataclass(frozen=True, slots=True, repr=False)
class NodeKeys:
    """All private key material of one node. Validated at construction; never printed."""

    name: str
    identity: nacl.signing.SigningKey
    encryption: tuple[EncryptionKey, ...]
    tls_key: Ed25519PrivateKey
    tls_cert_der: bytes
    created: str

    def __post_init__(self) -> None:
        check_node_name(self.name)
        check_time(self.created)
        if not isinstance(self.identity, nacl.signing.SigningKey):
            raise KeysError("the identity key must be a nacl.signing.SigningKey")
        if not isinstance(self.encryption, tuple) or not self.encryption:
            raise KeysError("a node needs at least one encryption key (a non-empty tuple)")
        if not all(isinstance(key, EncryptionKey) for key in self.encryption):
            raise KeysError("encryption keys must be EncryptionKey values")
        kids = [key.kid for key in self.encryption]
        if len(set(kids)) != len(kids):
            raise KeysError("two encryption keys share a key ID")
        if not isinstance(self.tls_key, Ed25519PrivateKey):
            raise KeysError("the TLS key must be an Ed25519 private key")
        if tls.check_certificate_key(self.tls_cert_der) != self.tls_spki_sha256:
            raise KeysError("the TLS certificate is not for the TLS key")

    @property
    def identity_public(self) -> bytes:
        return bytes(self.identity.verify_key)

    @property
    def node_id(self) -> str:
        return node_id_from_public_key(self.identity_public)

    @property
    def current_encryption(self) -> EncryptionKey:
        """The newest encryption key: the one peers should seal to."""
        return self.encryption[-1]

    def encryption_private_by_kid(self) -> dict[str, nacl.public.PrivateKey]:
        """Every encryption key this node ever had, by key ID, to open old envelopes too."""
        return {key.kid: key.private for key in self.encryption}

    @property
    def tls_spki_sha256(self) -> str:
        return tls.spki_sha256_of_public_key(self.tls_key.public_key())

    def __repr__(self) -> str:  # never print private material
        return f"NodeKeys(name={self.name!r}, node_id={self.node_id!r})"


def generate_node_keys(name: str, *, now: str,
                       random_bytes: Callable[[int], bytes] = nacl.utils.random) -> NodeKeys:
    """Generate a new node's three independent keys and its self-signed TLS certificate."""
    check_node_name(name)
    check_time(now)
    identity = nacl.signing.SigningKey(random_bytes(32))
    encryption = make_encryption_key(now=now, random_bytes=random_bytes)
    tls_key = tls.generate_tls_key(random_bytes=random_bytes)
    node_id = node_id_from_public_key(bytes(identity.verify_key))
    cert = tls.make_self_signed_certificate(tls_key, node_id, random_bytes=random_bytes)
    return NodeKeys(name=name, identity=identity, encryption=(encryption,), tls_key=tls_key,
                    tls_cert_der=cert, created=now)


def rotate_encryption_key(keys: NodeKeys, *, now: str,
                          random_bytes: Callable[[int], bytes] = nacl.utils.random) -> NodeKeys:
    """Add a new current encryption key, keeping the old ones to open archived envelopes."""
    new = make_encryption_key(now=now, random_bytes=random_bytes)
    return replace(keys, encryption=keys.encryption + (new,))


def rotate_tls_key(keys: NodeKeys, *,
                   random_bytes: Callable[[int], bytes] = nacl.utils.random) -> NodeKeys:
    """Replace the TLS key and certificate (the old TLS key is of no further use)."""
    tls_key = tls.generate_tls_key(random_bytes=random_bytes)
    cert = tls.make_self_signed_certificate(tls_key, keys.node_id, random_bytes=random_bytes)
    return replace(keys, tls_key=tls_key, tls_cert_der=cert)


@dataclass(frozen=True, slots=True)
class Binding:
    """A verified binding: the identity key of ``node_id`` vouches for these keys from
    ``valid_from``."""

    node_id: str
    name: str
    encryption_kid: str
    encryption_public: bytes
    tls_spki_sha256: str
    valid_from: str
    seq: int
    token: str


def make_binding(keys: NodeKeys, *, now: str, seq: int = 1) -> str:
    """Sign, with the identity key, the current encryption key and TLS pin of ``keys``."""
    check_time(now)
    if type(seq) is not int or seq < 1:
        raise BadBinding("a binding sequence number is an integer from 1 up")
    current = keys.current_encryption
    payload = {
        "v": 1,
        "node_id": keys.node_id,
        "name": keys.name,
        "encryption": {"kid": current.kid, "public": jws.b64url_encode(current.public_bytes)},
        "tls_spki_sha256": keys.tls_spki_sha256,
        "valid_from": now,
        "seq": seq,
    }
    return jws.sign(keys.identity, BINDING_TYP, payload, kid=keys.node_id)


_BINDING_FIELDS = frozenset(
    ["v", "node_id", "name", "encryption", "tls_spki_sha256", "valid_from", "seq"])


def verify_binding(token: str | bytes, identity_public: bytes) -> Binding:
    """Verify a binding against the identity public key we already trust; return its content.

    Raises MalformedToken/WrongType/BadSignature from :mod:`keys.jws`, or BadBinding when the
    signed content is not a valid binding for that identity.
    """
    try:
        verify_key = nacl.signing.VerifyKey(identity_public)
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError, TypeError, ValueError) as exc:
        raise BadBinding("the identity public key is not 32 bytes") from exc
    decoded = jws.decode(token, BINDING_TYP)
    payload = jws.verify_decoded(decoded, verify_key)
    node_id = node_id_from_public_key(identity_public)
    if set(payload) != _BINDING_FIELDS:
        raise BadBinding(f"binding fields are {sorted(payload)}, "
                         f"expected {sorted(_BINDING_FIELDS)}")
    if type(payload["v"]) is not int or payload["v"] != 1:
        raise BadBinding(f"unsupported binding version {payload['v']!r}")
    if payload["node_id"] != node_id or decoded.kid != node_id:
        raise BadBinding(f"binding names node {payload['node_id']!r} but is signed by {node_id}")
    encryption = payload["encryption"]
    if not isinstance(encryption, dict) or set(encryption) != {"kid", "public"}:
        raise BadBinding("binding 'encryption' must hold exactly 'kid' and 'public'")
    public = decode_key32(encryption["public"], "encryption public key", BadBinding)
    if encryption["kid"] != encryption_kid(public):
        raise BadBinding("binding encryption key ID does not match the key")
    spki = payload["tls_spki_sha256"]
    if not isinstance(spki, str) or not _HEX64.fullmatch(spki):
        raise BadBinding("binding TLS pin must be 64 lowercase hex characters")
    seq = payload["seq"]
    if type(seq) is not int or seq < 1:
        raise BadBinding("binding sequence number must be an integer from 1 up")
    try:
        name = check_node_name(payload["name"])
        valid_from = check_time(payload["valid_from"])
    except InvalidValue as exc:
        raise BadBinding(f"binding {exc}") from exc
    return Binding(node_id=node_id, name=name, encryption_kid=encryption["kid"],
                   encryption_public=public, tls_spki_sha256=spki, valid_from=valid_from,
                   seq=seq, token=decoded.token)


def decode_key32(value: Any, what: str, error: type[KeysError]) -> bytes:
    """Decode a signed base64url field that must hold a 32-byte public key; raise ``error`` if
    not."""
    if not isinstance(value, str):
        raise error(f"{what} must be base64url text")
    try:
        raw = jws.b64url_decode(value)
    except KeysError as exc:
        raise error(f"{what} is not valid base64url") from exc
    if len(raw) != 32:
        raise error(f"{what} must be 32 bytes, not {len(raw)}")
    return raw
