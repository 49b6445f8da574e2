"""Key rotation on the rotating node's side: new keys at rest, the announcement its peers
verify, and the request the running daemon picks up.

Theory of operation
-------------------
``lienthong keys rotate`` runs in its own process, beside a daemon that may be running. It
needs the passphrase because it rewrites the keystore. It never talks to the daemon directly:

1. it opens the keystore and makes the new key (``keys.identity.rotate_tls_key`` /
   ``rotate_encryption_key``; old X25519 keys are kept, so archived envelopes still open);
2. for a TLS rotation it first copies the current keystore file, unchanged, to
   ``keys/keystore.previous.json`` (still encrypted, 0600): the daemon needs the *old* TLS key
   to reach peers that have not yet learnt the new one, and must find it again after a
   restart;
3. it saves the new keystore atomically, rewrites the peer card, bumps the binding sequence
   number (``state/binding-seq``), and leaves a request, ``state/key-update-request.json``;
4. the daemon polls for that file each second (:mod:`lienthong.node.identity.key_updates`): it
   reloads the keystore,
   sends every trusted peer a ``key-update`` control document (the new card and a binding
   signed by the identity key), and forgets the old TLS key once every peer has receipted it.

An identity rotation cannot be applied the same way, because the identity key *is* the node
ID that every envelope, HELLO and receipt names. The new keys are therefore written to
``keys/keystore.next.json`` and the current keystore is left alone; the announcement carries a
*continuation* (JWS ``lienthong-identity-rotation/1``) signed by the old identity, naming the
new node ID, the new identity key and the new card (itself signed by the new key, so both keys
consent). The daemon seals the continuation with the old identity and then switches to the
new one at once (node.identity_switch).

Peers verify what they receive with :func:`verify_key_announcement` and
:func:`verify_identity_rotation` against the identity key they already trust for the sender.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils

from lienthong.config.schema import NodeConfig
from lienthong.keys import jws, tls
from lienthong.keys.card import PeerCard, make_card, read_card
from lienthong.keys.directory import Peer
from lienthong.keys.errors import BadBinding, KeysError, KeystoreError
from lienthong.keys.identity import (
    Binding,
    NodeKeys,
    check_time,
    decode_key32,
    make_binding,
    rotate_encryption_key,
    rotate_tls_key,
    verify_binding,
)
from lienthong.keys.keystore import load_keystore, save_keystore
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.core.home import write_private_file
from lienthong.node.identity.provision import write_card

#: The ``kind`` of the control document that carries an announcement.
ANNOUNCEMENT_KIND = "key-update"
ROTATION_TYP = "lienthong-identity-rotation/1"
KINDS = ("tls", "encryption", "identity")

PREVIOUS_KEYSTORE = "keystore.previous.json"
NEXT_KEYSTORE = "keystore.next.json"
REQUEST_FILE = Path("state") / "key-update-request.json"
STATE_FILE = Path("state") / "key-update.json"
SEQ_FILE = Path("state") / "binding-seq"
#: Announcements are a few kilobytes; anything larger is refused unread.
MAX_ANNOUNCEMENT_BYTES = 64 * 1024


class RotationError(Exception):
    """A rotation cannot start now (another is still being announced, bad request file...)."""


# -- where things are -------------------------------------------------------------------------

def previous_keystore(config: NodeConfig) -> Path:
    return config.keystore.path.with_name(PREVIOUS_KEYSTORE)


def next_keystore(config: NodeConfig) -> Path:
    return config.keystore.path.with_name(NEXT_KEYSTORE)


def keystore_limits(path: Path) -> tuple[int, int]:
    """The Argon2id limits the keystore at ``path`` was written with (kept on rewrite)."""
    try:
        header = json.loads(Path(path).read_text(encoding="utf-8"))
        return int(header["kdf"]["opslimit"]), int(header["kdf"]["memlimit"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"cannot read the KDF settings of keystore {path}: {exc}") from exc


# -- the request the daemon picks up ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RotationRequest:
    """What ``keys rotate`` asks the daemon to announce."""

    kinds: tuple[str, ...]
    seq: int
    requested_at: str
    rotation: str | None = None  # identity continuation token, for an identity rotation

    def __post_init__(self) -> None:
        if not self.kinds or any(kind not in KINDS for kind in self.kinds):
            raise RotationError(f"unknown key kinds {self.kinds!r}")
        if type(self.seq) is not int or self.seq < 1:
            raise RotationError("the binding sequence number must be a positive integer")
        check_time(self.requested_at)
        if ("identity" in self.kinds) != (self.rotation is not None):
            raise RotationError("an identity rotation, and only one, carries a continuation")

    def as_json(self) -> bytes:
        return jws.canonical_json({"v": 1, "kinds": list(self.kinds), "seq": self.seq,
                                   "requested_at": self.requested_at,
                                   "rotation": self.rotation}) + b"\n"


def read_request(home: Path) -> RotationRequest | None:
    """The pending request, or None. A damaged request file raises RotationError."""
    try:
        data = (home / REQUEST_FILE).read_bytes()
    except FileNotFoundError:
        return None
    try:
        raw = jws.strict_json_object(data)
        if raw.get("v") != 1 or set(raw) != {"v", "kinds", "seq", "requested_at", "rotation"}:
            raise RotationError(f"{home / REQUEST_FILE} is not a version 1 rotation request")
        return RotationRequest(kinds=tuple(raw["kinds"]), seq=raw["seq"],
                               requested_at=raw["requested_at"], rotation=raw["rotation"])
    except (KeysError, KeyError, TypeError) as exc:
        raise RotationError(f"{home / REQUEST_FILE} is damaged: {exc}") from exc


def write_request(home: Path, request: RotationRequest) -> None:
    write_private_file(home / REQUEST_FILE, request.as_json())


def clear_request(home: Path) -> None:
    (home / REQUEST_FILE).unlink(missing_ok=True)


def _next_seq(home: Path) -> int:
    try:
        last = int((home / SEQ_FILE).read_text(encoding="ascii").strip() or "1")
    except FileNotFoundError:
        last = 1  # the card made at ``init`` stands for binding 1
    except ValueError as exc:
        raise RotationError(f"{home / SEQ_FILE} is damaged: {exc}") from exc
    return last + 1


# -- the announcement -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Announcement:
    """A parsed (not yet verified) ``key-update`` document: a binding and card, or a
    continuation."""

    binding: str | None = None
    card: str | None = None
    rotation: str | None = None


def key_announcement(node_keys: NodeKeys, *, card_text: str | None, addresses: Iterable[str],
                     now: str, seq: int) -> bytes:
    """The document announcing this node's current TLS and encryption keys.

    It carries the card file ``keys rotate`` wrote (``card_text``) when that card names these
    very keys, so peers keep the same card the office hands out; otherwise a fresh one.
    """
    binding = make_binding(node_keys, now=now, seq=seq)
    card = None
    if card_text is not None:
        try:
            parsed = read_card(card_text)
        except KeysError:
            parsed = None
        if parsed is not None and (parsed.node_id, parsed.tls_spki_sha256,
                                   parsed.encryption_kid) == (
                node_keys.node_id, node_keys.tls_spki_sha256, node_keys.current_encryption.kid):
            card = parsed.token
    if card is None:
        card = make_card(node_keys, addresses=list(addresses), now=now).strip()
    return jws.canonical_json({"v": 1, "binding": binding, "card": card})


def identity_announcement(rotation_token: str) -> bytes:
    """The document announcing an identity continuation."""
    return jws.canonical_json({"v": 1, "rotation": rotation_token})


def parse_announcement(data: bytes) -> Announcement:
    """Parse a ``key-update`` document strictly; raise BadBinding when it is not one."""
    if len(data) > MAX_ANNOUNCEMENT_BYTES:
        raise BadBinding(f"a key announcement is at most {MAX_ANNOUNCEMENT_BYTES} bytes")
    try:
        raw = jws.strict_json_object(data)
    except KeysError as exc:
        raise BadBinding(f"the key announcement is not JSON: {exc}") from exc
    if raw.get("v") != 1:
        raise BadBinding("unknown key announcement version")
    if set(raw) == {"v", "binding", "card"} and all(isinstance(raw[k], str)
                                                    for k in ("binding", "card")):
        return Announcement(binding=raw["binding"], card=raw["card"])
    if set(raw) == {"v", "rotation"} and isinstance(raw["rotation"], str):
        return Announcement(rotation=raw["rotation"])
    raise BadBinding(f"the key announcement has fields {sorted(raw)}; expected binding and "
                     "card, or rotation")


@dataclass(frozen=True, slots=True)
class VerifiedKeys:
    """An announcement of new TLS/encryption keys, verified against the peer's identity."""

    binding: Binding
    card: PeerCard


def verify_key_announcement(announcement: Announcement, peer: Peer) -> VerifiedKeys:
    """Check a binding and card against the identity key we already trust for ``peer``.

    Raises BadBinding (or another KeysError) unless the binding is signed by the peer's current
    identity key, and the card is signed by that same key and names the same keys.
    """
    if announcement.binding is None or announcement.card is None:
        raise BadBinding("this announcement carries no binding and card")
    identity = peer.current("identity").public_bytes
    binding = verify_binding(announcement.binding, identity)
    card = read_card(announcement.card)
    if card.node_id != peer.node_id or card.identity_public != identity:
        raise BadBinding(f"the announced card is for {card.node_id}, not for {peer.node_id}")
    if (card.encryption_kid, card.encryption_public, card.tls_spki_sha256) != (
            binding.encryption_kid, binding.encryption_public, binding.tls_spki_sha256):
        raise BadBinding("the announced card and binding name different keys")
    return VerifiedKeys(binding=binding, card=card)


# -- identity continuation --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IdentityRotation:
    """A verified continuation: the holder of ``old_node_id`` hands over to ``card``'s key."""

    old_node_id: str
    new_node_id: str
    card: PeerCard
    time: str
    token: str


_ROTATION_FIELDS = frozenset({"v", "old_node_id", "new_node_id", "new_identity", "card", "time"})


def successor_keys(node_keys: NodeKeys, *,
                   random_bytes: Callable[[int], bytes] = nacl.utils.random) -> NodeKeys:
    """The same node with a new identity key: same encryption keys, same TLS key (so the pin
    peers hold does not change), and a certificate naming the new node ID."""
    identity = nacl.signing.SigningKey(random_bytes(32))
    node_id = node_id_from_public_key(bytes(identity.verify_key))
    cert = tls.make_self_signed_certificate(node_keys.tls_key, node_id, random_bytes=random_bytes)
    return replace(node_keys, identity=identity, tls_cert_der=cert)


def make_identity_rotation(old: NodeKeys, new: NodeKeys, *, card_token: str, now: str) -> str:
    """Sign, with the *old* identity, the hand-over to ``new`` (whose card is ``card_token``)."""
    check_time(now)
    payload = {"v": 1, "old_node_id": old.node_id, "new_node_id": new.node_id,
               "new_identity": jws.b64url_encode(new.identity_public),
               "card": card_token.strip(), "time": now}
    return jws.sign(old.identity, ROTATION_TYP, payload, kid=old.node_id)


def verify_identity_rotation(token: str, old_identity_public: bytes) -> IdentityRotation:
    """Verify a continuation against the identity key we trust for the old node ID."""
    old_node_id = node_id_from_public_key(old_identity_public)
    decoded = jws.decode(token, ROTATION_TYP)
    payload = jws.verify_decoded(decoded, nacl.signing.VerifyKey(old_identity_public))
    if set(payload) != _ROTATION_FIELDS or payload["v"] != 1:
        raise BadBinding(f"continuation fields are {sorted(payload)}")
    if payload["old_node_id"] != old_node_id or decoded.kid != old_node_id:
        raise BadBinding(f"the continuation is signed by {old_node_id} but names "
                         f"{payload['old_node_id']!r}")
    new_identity = decode_key32(payload["new_identity"], "new identity key", BadBinding)
    card = read_card(payload["card"])
    if card.identity_public != new_identity or card.node_id != payload["new_node_id"]:
        raise BadBinding("the continuation's card is not for the new identity it names")
    if card.node_id == old_node_id:
        raise BadBinding("a continuation must name a new identity")
    check_time(payload["time"])
    return IdentityRotation(old_node_id=old_node_id, new_node_id=card.node_id, card=card,
                            time=payload["time"], token=decoded.token)


# -- what ``keys rotate`` does ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RotationResult:
    """What changed, for the CLI to print and audit."""

    kinds: tuple[str, ...]
    node_id: str
    new_node_id: str
    tls_pins: tuple[str, str]
    encryption_kids: tuple[str, str]


def rotate(config: NodeConfig, kinds: tuple[str, ...], passphrase: bytes, *, now: str,
           force: bool = False,
           random_bytes: Callable[[int], bytes] = nacl.utils.random) -> RotationResult:
    """Make the new keys, save them, rewrite the card and leave the request for the daemon."""
    home = config.home
    path = config.keystore.path
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise RotationError(f"choose what to rotate among {', '.join(KINDS)}")
    if "identity" in kinds and len(kinds) > 1:
        raise RotationError("rotate the identity on its own; rotate the other keys afterwards")
    if (next_keystore(config).exists() or _announcing_identity(home)) and not force:
        raise RotationError("an identity rotation is still being announced (see lienthong "
                            "keys status); wait for it to finish, or add --force (peers that "
                            "have not heard of it will then need the new card)")
    if "tls" in kinds and previous_keystore(config).exists() and not force:
        raise RotationError("the last TLS rotation is still being announced to some peers "
                            "(see lienthong keys status); wait for it to finish, or add --force "
                            "(peers that have not heard of it will then need the new card)")
    old = load_keystore(path, passphrase)
    opslimit, memlimit = keystore_limits(path)
    seq = _next_seq(home)
    if "identity" in kinds:
        new = successor_keys(old, random_bytes=random_bytes)
        card = make_card(new, addresses=list(config.node.advertise), now=now)
        token = make_identity_rotation(old, new, card_token=card, now=now)
        save_keystore(next_keystore(config), new, passphrase, opslimit=opslimit,
                      memlimit=memlimit, random_bytes=random_bytes)
        request = RotationRequest(kinds=kinds, seq=seq, requested_at=now, rotation=token)
    else:
        new = old
        if "encryption" in kinds:
            new = rotate_encryption_key(new, now=now, random_bytes=random_bytes)
        if "tls" in kinds:
            new = rotate_tls_key(new, random_bytes=random_bytes)
            # The old file, byte for byte: the daemon opens it with the same passphrase.
            write_private_file(previous_keystore(config), path.read_bytes())
        save_keystore(path, new, passphrase, opslimit=opslimit, memlimit=memlimit,
                      random_bytes=random_bytes)
        write_card(config, new, now=now)
        pending = _pending_kinds(home)
        request = RotationRequest(kinds=tuple(k for k in KINDS if k in kinds or k in pending),
                                  seq=seq, requested_at=now)
    write_private_file(home / SEQ_FILE, f"{seq}\n".encode("ascii"))
    write_request(home, request)
    return RotationResult(kinds=kinds, node_id=old.node_id, new_node_id=new.node_id,
                          tls_pins=(old.tls_spki_sha256, new.tls_spki_sha256),
                          encryption_kids=(old.current_encryption.kid,
                                           new.current_encryption.kid))


def _announcing_identity(home: Path) -> bool:
    try:
        state = read_state(home)
    except RotationError:
        return False
    return state is not None and "identity" in state.get("kinds", ())


def _pending_kinds(home: Path) -> tuple[str, ...]:
    try:
        request = read_request(home)
    except RotationError:
        return ()
    return request.kinds if request is not None and request.rotation is None else ()


def read_state(home: Path) -> dict[str, Any] | None:
    """The daemon's record of the announcement in progress, or None."""
    try:
        return jws.strict_json_object((home / STATE_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except KeysError as exc:
        raise RotationError(f"{home / STATE_FILE} is damaged: {exc}") from exc


def write_state(home: Path, state: dict[str, Any]) -> None:
    write_private_file(home / STATE_FILE, jws.canonical_json(state) + b"\n")


def clear_state(home: Path) -> None:
    (home / STATE_FILE).unlink(missing_ok=True)
