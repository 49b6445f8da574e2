"""Signed audit heads: each field rule, each refusal word for word, and the signer's timing.

A refused head is reported by `audit verify` with these messages (docs/audit.md), so the
texts are pinned. The signer runs on a fake clock (the only fake: time) against a real
SQLite store.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from lienthong.keys import jws
from lienthong.keys.errors import InvalidValue
from lienthong.keys.identity import NodeKeys, generate_node_keys
from lienthong.node.audit.heads import (
    HEAD_INTERVAL_SECONDS,
    HEAD_TYP,
    BadHead,
    HeadInfo,
    HeadSigner,
    sign_current_head,
    sign_head,
    verify_head,
    verify_head_row,
)
from lienthong.node.store.database import Store
from lienthong.node.store.records import AuditHead

T0 = "2026-11-25T08:00:00Z"
T1 = "2026-11-25T08:01:00Z"
H = "c" * 64


def _rng(seed: bytes) -> Any:
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture(scope="module")
def keys() -> NodeKeys:
    return generate_node_keys("tinhuy", now=T0, random_bytes=_rng(b"heads-rules"))


@pytest.fixture(scope="module")
def other() -> NodeKeys:
    return generate_node_keys("hdnd", now=T0, random_bytes=_rng(b"heads-other"))


def forged(key: nacl.signing.SigningKey, payload: dict[str, Any], kid: str,
           typ: str = HEAD_TYP) -> str:
    return jws.sign(key, typ, payload, kid=kid)


def refusal(token: str, key: nacl.signing.VerifyKey) -> str:
    with pytest.raises(BadHead) as caught:
        verify_head(token, key)
    return str(caught.value)


# -- signing and verifying one head ------------------------------------------------------------

def test_a_head_carries_exactly_its_four_fields(keys: NodeKeys) -> None:
    token = sign_head(keys.identity, seq=1, hash=H, time=T0)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == keys.node_id and header["typ"] == HEAD_TYP
    assert jws.decode(token, HEAD_TYP).payload == \
        {"seq": 1, "hash": H, "time": T0, "node_id": keys.node_id}
    assert verify_head(token, keys.identity.verify_key) == \
        HeadInfo(seq=1, hash=H, time=T0, node_id=keys.node_id)


def test_signing_refuses_a_head_of_no_entry_or_no_time(keys: NodeKeys) -> None:
    for seq in (0, -1, True, "1", 1.0):
        with pytest.raises(ValueError) as caught:
            sign_head(keys.identity, seq=seq, hash=H, time=T0)  # type: ignore[arg-type]
        assert str(caught.value) == "an audit head names an entry, seq 1 or more"
    with pytest.raises(InvalidValue):
        sign_head(keys.identity, seq=1, hash=H, time="now")


def test_a_head_of_another_key_or_type_does_not_verify(keys: NodeKeys, other: NodeKeys) -> None:
    token = sign_head(keys.identity, seq=2, hash=H, time=T0)
    message = refusal(token, other.identity.verify_key)
    assert message == ("the head's signature does not verify with this node's key "
                       f"({HEAD_TYP} signature does not verify)")
    receipt_like = forged(keys.identity, {"seq": 2}, keys.node_id, typ="lienthong-receipt/1")
    assert refusal(receipt_like, keys.identity.verify_key).startswith(
        "the head's signature does not verify with this node's key (expected a "
        f"'{HEAD_TYP}' object")


def test_the_fields_and_the_node_are_checked(keys: NodeKeys, other: NodeKeys) -> None:
    key, vk, me = keys.identity, keys.identity.verify_key, keys.node_id
    good = {"seq": 2, "hash": H, "time": T0, "node_id": me}
    assert refusal(forged(key, {**good, "extra": 1}, me), vk) == \
        "the head's fields are ['extra', 'hash', 'node_id', 'seq', 'time'], expected " \
        "['hash', 'node_id', 'seq', 'time']"
    assert refusal(forged(key, {"seq": 2, "hash": H, "time": T0}, me), vk) == \
        "the head's fields are ['hash', 'seq', 'time'], expected " \
        "['hash', 'node_id', 'seq', 'time']"
    assert refusal(forged(key, {**good, "node_id": other.node_id}, me), vk) == \
        f"the head names node {other.node_id!r}, not {me}"
    assert refusal(forged(key, good, other.node_id), vk) == \
        f"the head names node {me!r}, not {me}"
    for seq, digest in ((0, H), (True, H), ("2", H), (2, 64), (2, H[:-1]), (2, H + "c")):
        assert refusal(forged(key, {**good, "seq": seq, "hash": digest}, me), vk) == \
            "the head's seq or hash is not well formed"
    with pytest.raises(InvalidValue) as inner:
        from lienthong.keys.identity import check_time
        check_time("yesterday")
    assert refusal(forged(key, {**good, "time": "yesterday"}, me), vk) == \
        f"the head's time is not usable: {inner.value}"
    assert verify_head(forged(key, {**good, "seq": 1}, me), vk).seq == 1


def test_a_row_must_say_what_its_signature_says(keys: NodeKeys) -> None:
    token = sign_head(keys.identity, seq=4, hash=H, time=T0)
    vk = keys.identity.verify_key
    assert verify_head_row(AuditHead(seq=4, hash=H, signature=token, time=T0), vk).seq == 4
    for seq, digest in ((5, H), (4, "d" * 64)):
        with pytest.raises(BadHead) as caught:
            verify_head_row(AuditHead(seq=seq, hash=digest, signature=token, time=T0), vk)
        assert str(caught.value) == (f"the row says entry {seq} with hash {digest[:16]}..., but "
                                     f"the signature covers entry 4 with hash {H[:16]}...")


# -- signing the current tip -------------------------------------------------------------------

def test_the_current_head_is_signed_once_per_tip(store: Store, keys: NodeKeys) -> None:
    assert sign_current_head(store, keys, T0) is None             # an empty log has no head
    assert store.audit_heads() == []
    store.append_audit("node-started", T0)
    seq, tip = store.audit_tip()
    head = sign_current_head(store, keys, T1)
    assert head is not None
    assert (head.seq, head.hash, head.time) == (seq, tip, T1)
    assert verify_head(head.signature, keys.identity.verify_key) == \
        HeadInfo(seq=seq, hash=tip, time=T1, node_id=keys.node_id)
    assert store.audit_heads() == [head]
    assert sign_current_head(store, keys, T1) is None             # the tip did not move
    store.append_audit("node-stopped", T1)
    assert sign_current_head(store, keys, T1).seq == seq + 1      # type: ignore[union-attr]


class StaleHeads:
    """The store as a second signer sees it while the first commits: no head yet."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def audit_heads(self) -> list[AuditHead]:
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_head_another_signer_kept_first_is_not_returned(store: Store, keys: NodeKeys) -> None:
    store.append_audit("node-started", T0)
    assert sign_current_head(store, keys, T0) is not None
    assert sign_current_head(StaleHeads(store), keys, T1) is None  # type: ignore[arg-type]
    assert len(store.audit_heads()) == 1


# -- the signer on the reactor -----------------------------------------------------------------

class Signer:
    def __init__(self, store: Store, keys: NodeKeys, **kw: Any) -> None:
        self.clock = Clock()
        self.keys = keys
        self.now = T0
        self.calls = 0

        def run_db(function: Any, *args: Any) -> defer.Deferred:
            self.calls += 1
            return defer.maybeDeferred(function, *args)

        self.signer = HeadSigner(clock=self.clock, run_db=run_db, store=store,
                                 current_keys=lambda: self.keys, now_text=lambda: self.now,
                                 **kw)


def test_the_signer_signs_at_start_every_interval_and_at_stop(store: Store, keys: NodeKeys,
                                                              other: NodeKeys) -> None:
    assert HEAD_INTERVAL_SECONDS == 60.0
    store.append_audit("node-started", T0)
    s = Signer(store, keys, interval=30.0)
    s.signer.start()
    assert [h.seq for h in store.audit_heads()] == [1]          # at once, not after 30 s
    store.append_audit("document-sealed", T0)
    s.clock.advance(29.9)
    assert len(store.audit_heads()) == 1 and s.calls == 1
    s.now = T1
    s.clock.advance(0.1)
    heads = store.audit_heads()
    assert [h.seq for h in heads] == [1, 2] and heads[-1].time == T1 and s.calls == 2
    store.append_audit("node-stopped", T1)
    s.keys = other                                  # the identity was rotated meanwhile
    stopped = s.signer.stop()
    assert stopped.called
    last = store.audit_heads()[-1]
    assert last.seq == 3
    verify_head(last.signature, other.identity.verify_key)
    s.clock.advance(120)
    assert s.calls == 3                             # the timer is stopped


def test_the_default_interval_and_a_stop_without_start(store: Store, keys: NodeKeys) -> None:
    store.append_audit("node-started", T0)
    s = Signer(store, keys)
    s.signer.start()
    s.clock.advance(59)
    assert s.calls == 1
    s.clock.advance(1)
    assert s.calls == 2
    s.signer.stop()
    idle = Signer(store, keys)
    store.append_audit("node-stopped", T1)
    idle.signer.stop()                              # never started: still signs at stop
    assert store.audit_heads()[-1].seq == 2


def test_a_signing_failure_is_logged_not_raised(store: Store, keys: NodeKeys,
                                                tmp_path: Path) -> None:
    from twisted.logger import globalLogPublisher
    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        s = Signer(store, keys)
        s.now = "not a time"
        store.append_audit("node-started", T0)
        d = s.signer.sign_now()
        results: list[Any] = []
        d.addBoth(results.append)
        assert results == [None]                    # handled: the loop keeps running
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert any(event.get("log_format") == "could not sign the audit head"
               and event.get("log_namespace") == "lienthong.audit" for event in seen)
    assert store.audit_heads() == []


def test_no_head_is_signed_for_a_log_cut_shorter_than_its_last_head(store: Store,
                                                                    keys: NodeKeys) -> None:
    """Entries deleted from the end (tampering) leave the tip below the last signed head: the
    signer must not sign the shorter chain, or the cut would look signed."""
    for kind in ("node-started", "document-sealed", "node-stopped"):
        store.append_audit(kind, T0)
    assert sign_current_head(store, keys, T0).seq == 3                # type: ignore[union-attr]
    from sqlalchemy import text
    with store.transaction() as conn:
        conn.execute(text("DELETE FROM audit WHERE seq = 3"))
    assert store.audit_tip()[0] == 2
    assert sign_current_head(store, keys, T1) is None
    assert [h.seq for h in store.audit_heads()] == [3]
