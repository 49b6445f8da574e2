"""Signed heads of the audit chain: the node's own word for "the log reached entry N with hash H".

Theory of operation
-------------------
The hash chain (``lienthong.node.store.audit_chain``) shows an edit, deletion or reordering,
but someone who can write the database could recompute every hash after the edit. So the node
periodically (every
``HEAD_INTERVAL_SECONDS`` while running, and once at shutdown) signs the current tip with its
identity key and keeps the signature in ``audit_heads``. Rewriting history then means forging
the node's signature, and cutting entries off the end is seen because a signed head points past
the end.

A head is a JWS compact token (RFC 7515, EdDSA) of type ``lienthong-audit-head/1``, ``kid`` the
node ID, payload ``{"seq", "hash", "time", "node_id"}``. Like receipts it is plain JOSE, so an
auditor can check it with any JOSE library and the node's public card (docs/audit.md).

Signing happens only when the tip moved since the last head, and it is not itself an audit
event (that would move the tip every minute forever).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nacl.signing
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.keys import jws
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys, check_time
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.core.errors import NodeError
from lienthong.node.store.database import Store
from lienthong.node.store.records import AuditHead

HEAD_TYP = "lienthong-audit-head/1"
HEAD_INTERVAL_SECONDS = 60.0
_FIELDS = frozenset({"seq", "hash", "time", "node_id"})

log = Logger(namespace="lienthong.audit")


class BadHead(NodeError):
    """A signed audit head does not verify, or says something other than its row."""

    code = "bad-audit-head"


@dataclass(frozen=True, slots=True)
class HeadInfo:
    """The content of a head whose signature has been verified."""

    seq: int
    hash: str
    time: str
    node_id: str


def sign_head(identity: nacl.signing.SigningKey, *, seq: int, hash: str, time: str) -> str:
    """A head token for (seq, hash) signed by ``identity`` at ``time`` (RFC 3339)."""
    check_time(time)
    if type(seq) is not int or seq < 1:
        raise ValueError("an audit head names an entry, seq 1 or more")
    node_id = node_id_from_public_key(bytes(identity.verify_key))
    return jws.sign(identity, HEAD_TYP, {"seq": seq, "hash": hash, "time": time,
                                         "node_id": node_id}, kid=node_id)


def verify_head(token: str, verify_key: nacl.signing.VerifyKey) -> HeadInfo:
    """Check a head's type, signature and fields with the node's identity key; raise BadHead."""
    node_id = node_id_from_public_key(bytes(verify_key))
    try:
        decoded = jws.decode(token, HEAD_TYP)
        payload = jws.verify_decoded(decoded, verify_key)
    except KeysError as exc:
        raise BadHead(f"the head's signature does not verify with this node's key ({exc})") \
            from exc
    if set(payload) != _FIELDS:
        raise BadHead(f"the head's fields are {sorted(payload)}, expected {sorted(_FIELDS)}")
    if payload["node_id"] != node_id or decoded.kid != node_id:
        raise BadHead(f"the head names node {payload['node_id']!r}, not {node_id}")
    seq, digest, time = payload["seq"], payload["hash"], payload["time"]
    if type(seq) is not int or seq < 1 or not isinstance(digest, str) or len(digest) != 64:
        raise BadHead("the head's seq or hash is not well formed")
    try:
        check_time(time)
    except KeysError as exc:
        raise BadHead(f"the head's time is not usable: {exc}") from exc
    return HeadInfo(seq=seq, hash=digest, time=time, node_id=node_id)


def verify_head_row(row: AuditHead, verify_key: nacl.signing.VerifyKey) -> HeadInfo:
    """Verify a stored head and check its row says what its signature says."""
    info = verify_head(row.signature, verify_key)
    if (info.seq, info.hash) != (row.seq, row.hash):
        raise BadHead(f"the row says entry {row.seq} with hash {row.hash[:16]}..., but the "
                      f"signature covers entry {info.seq} with hash {info.hash[:16]}...")
    return info


def sign_current_head(store: Store, node_keys: NodeKeys, now: str) -> AuditHead | None:
    """Sign the audit tip if no head covers it yet; return the new head (blocking: db thread)."""
    seq, tip = store.audit_tip()
    if seq == 0:
        return None
    heads = store.audit_heads()
    if heads and heads[-1].seq >= seq:
        return None
    token = sign_head(node_keys.identity, seq=seq, hash=tip, time=now)
    if not store.record_audit_head(seq, tip, token, now):
        return None
    return AuditHead(seq=seq, hash=tip, signature=token, time=now)


class HeadSigner:
    """Signs the audit head every ``interval`` seconds on the reactor, and once more at stop.

    ``current_keys`` is asked at each signing, so a head is always signed by the identity the
    node holds at that moment (an identity rotation swaps the node's keys while this runs).
    """

    def __init__(self, *, clock: IReactorTime, run_db: Callable[..., Deferred], store: Store,
                 current_keys: Callable[[], NodeKeys], now_text: Callable[[], str],
                 interval: float = HEAD_INTERVAL_SECONDS) -> None:
        self._run_db = run_db
        self._store = store
        self._current_keys = current_keys
        self._now_text = now_text
        self._interval = interval
        self._loop = LoopingCall(self.sign_now)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(self._interval, now=True)

    def sign_now(self) -> Deferred:
        d = self._run_db(sign_current_head, self._store, self._current_keys(), self._now_text())
        d.addErrback(lambda failure: log.failure("could not sign the audit head", failure))
        return d

    def stop(self) -> Deferred:
        """Stop the timer and sign what the log holds now (the shutdown head)."""
        if self._loop.running:
            self._loop.stop()
        return self.sign_now()
