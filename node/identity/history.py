"""The identities this node held before its current one, and how long each still answers.

Theory of operation
-------------------
An identity rotation (identity/rotation.py, identity/key_update_outgoing.py) gives the node a
new node ID, but what the old identity signed stays in the world: audit heads in our own
store, receipts we issued, envelopes still queued at peers that were offline.
``state/identity-history.json`` lists each former identity, oldest first, with:

* ``continuation``: the token, signed by that identity, that handed over to its successor
  (``audit verify`` checks the chain of continuations up to the current card, so an entry
  cannot be slipped in without a signature by the key it names);
* ``valid_from`` / ``valid_until``: when it was this node's current identity. Audit heads are
  signed only by the current identity, so a head signed by a former one must fall inside its
  period;
* ``grace_until``: until when it still *receives*. Peers that were offline during the rotation
  still hold envelopes addressed to the old node ID; until ``grace_until`` the node opens
  them (its encryption keys did not change) and signs their receipts with the old identity
  key, which it keeps, encrypted, in ``keys/keystore.former-<ID>.json``. After that the key
  file is deleted and such envelopes are refused with a reason.

This module only reads and writes that file; it does no I/O beyond it and takes time as text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing

from lienthong.config.schema import NodeConfig
from lienthong.keys import jws
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys, check_time, decode_key32, parse_time
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.core.errors import NodeError
from lienthong.node.core.home import write_private_file

IDENTITY_HISTORY = Path("state") / "identity-history.json"
#: How long a former identity still receives (envelopes addressed to it, receipts signed by it)
#: after the node switched away from it. The same week as a peer's TLS grace
#: (identity/peer_tls_grace.py).
IDENTITY_GRACE_SECONDS = 7 * 24 * 3600.0


class IdentityHistoryError(NodeError):
    """The identity history file is damaged or says something impossible."""

    code = "identity-history-damaged"


@dataclass(frozen=True, slots=True)
class FormerIdentity:
    """One identity this node used to have."""

    node_id: str
    identity_public: bytes
    continuation: str | None
    valid_from: str | None
    valid_until: str | None
    grace_until: str | None

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return nacl.signing.VerifyKey(self.identity_public)

    def receives_at(self, now: str) -> bool:
        """True while envelopes addressed to this identity are still opened and receipted."""
        return self.grace_until is not None and parse_time(now) < parse_time(self.grace_until)

    def as_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "identity": jws.b64url_encode(self.identity_public),
                "continuation": self.continuation, "valid_from": self.valid_from,
                "valid_until": self.valid_until, "grace_until": self.grace_until}


def former_keystore(config: NodeConfig, node_id: str) -> Path:
    """Where the keystore of a former identity is kept during its grace period."""
    return config.keystore.path.with_name(f"keystore.former-{node_id.split('-', 1)[0]}.json")


def _entry(raw: Any, where: Path) -> FormerIdentity:
    try:
        if not isinstance(raw, dict):
            raise IdentityHistoryError("an entry is not an object")
        # A KeysError is reworded below as damage to the file, like any other.
        public = decode_key32(raw["identity"], "identity key", KeysError)
        node_id = raw["node_id"]
        if node_id_from_public_key(public) != node_id:
            raise IdentityHistoryError(f"{node_id!r} does not match its identity key")
        times = {name: raw.get(name) for name in ("valid_from", "valid_until", "grace_until")}
        for value in times.values():
            if value is not None:
                check_time(value)
        continuation = raw.get("continuation")
        if continuation is not None and not isinstance(continuation, str):
            raise IdentityHistoryError("a continuation is a JWS string")
        return FormerIdentity(node_id=node_id, identity_public=public,
                              continuation=continuation, **times)
    except (KeyError, TypeError, KeysError) as exc:
        raise IdentityHistoryError(f"{where} is damaged: {exc}") from exc
    except IdentityHistoryError as exc:
        raise IdentityHistoryError(f"{where} is damaged: {exc}") from exc


def read_identity_history(home: Path) -> list[FormerIdentity]:
    """Identities this node used before its current one, oldest first."""
    path = home / IDENTITY_HISTORY
    try:
        raw = jws.strict_json_object(path.read_bytes())
    except FileNotFoundError:
        return []
    except KeysError as exc:
        raise IdentityHistoryError(f"{path} is damaged: {exc}") from exc
    entries = raw.get("identities")
    if raw.get("v") != 1 or not isinstance(entries, list):
        raise IdentityHistoryError(f"{path} is not a version 1 identity history")
    return [_entry(entry, path) for entry in entries]


def record_identity_history(home: Path, old: NodeKeys, token: str | None, *, switched_at: str,
                            grace_until: str) -> FormerIdentity:
    """Remember the identity this node is giving up, with the continuation that hands it
    over, the time it stopped being current and the end of its grace period."""
    check_time(switched_at)
    check_time(grace_until)
    entries = read_identity_history(home)
    valid_from = entries[-1].valid_until if entries else None
    entry = FormerIdentity(node_id=old.node_id, identity_public=old.identity_public,
                           continuation=token, valid_from=valid_from, valid_until=switched_at,
                           grace_until=grace_until)
    entries = [e for e in entries if e.node_id != old.node_id] + [entry]
    write_private_file(home / IDENTITY_HISTORY, jws.canonical_json(
        {"v": 1, "identities": [e.as_json() for e in entries]}) + b"\n")
    return entry
