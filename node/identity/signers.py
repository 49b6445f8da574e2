"""Which of a peer's identity keys a signed token it sent is checked with: the one its kid names.

A peer that rotates its identity (docs/keys.md §3) keeps its former keys in our directory,
closed at the time we applied its continuation. What it signed just before rotating (an audit
head, a witness, a reconciliation summary, sealed and queued before the switch) may reach us
after that: checked against the peer's *current* key it would fail for no fault of anyone. So a
token is checked with the key of that peer its JWS ``kid`` names, and one signed by a former key
must say it was signed before that key stopped being current, allowing the same week of clock
difference and transit that envelopes from a former identity get (``IDENTITY_GRACE_SECONDS``).
A key of another office, or a kid the peer never had, is refused.
"""
from __future__ import annotations

import nacl.signing

from lienthong.keys import jws
from lienthong.keys.directory import Directory
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import parse_time
from lienthong.node.core.errors import NodeError
from lienthong.node.identity.history import IDENTITY_GRACE_SECONDS


class SignerNotOfPeer(NodeError):
    """A token a peer sent is signed by a key that is not, or was not then, one of its own."""

    code = "signer-not-of-peer"


def office_node_id(directory: Directory, node_id: str) -> str:
    """The current node ID of the office that has, or had, identity ``node_id`` (a document
    sealed before a peer rotated arrives under its former ID; answers go to the current one)."""
    peer = directory.peer_for_identity(node_id)
    return peer.node_id if peer is not None else node_id


def signer_key(directory: Directory, peer: str, token: str | bytes,
               typ: str) -> tuple[nacl.signing.VerifyKey, str | None]:
    """The identity key of ``peer`` that the token's kid names, and when that key stopped
    being current (None for the current key). The signature is NOT checked here."""
    try:
        kid = jws.decode(token, typ).kid
    except KeysError as exc:
        raise SignerNotOfPeer(f"it is not a signed {typ} token: {exc}") from exc
    for key in directory.identities_of(peer):
        if key.kid == kid:
            return nacl.signing.VerifyKey(key.public_bytes), key.valid_until
    raise SignerNotOfPeer(f"it is signed as {kid!r}, which is not an identity of the office "
                          "that sent it")


def check_signed_while_current(valid_until: str | None, signed_at: str) -> None:
    """Refuse a token signed by a former key at a time after that key was closed (plus the
    grace week); a token signed by the current key passes."""
    if valid_until is None:
        return
    limit = parse_time(valid_until).timestamp() + IDENTITY_GRACE_SECONDS
    if parse_time(signed_at).timestamp() >= limit:
        raise SignerNotOfPeer(f"it is signed at {signed_at} by a former identity key that "
                              f"stopped being current at {valid_until}")
