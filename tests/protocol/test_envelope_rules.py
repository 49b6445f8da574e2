"""Envelope v2 rules pinned word for word (issue 22): each schema refusal of a correctly
signed header names its field as the audit log shows it, and the kid length at its boundary
(v3 has its own: test_envelope_v3_rules.py).

In a file of its own so that the v3 envelope work (issue 14) merges without conflicts.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from lienthong.keys import jws
from lienthong.protocol.envelope import ENVELOPE_TYP, MAX_KID_CHARS, decode_header
from lienthong.protocol.errors import (
    BadSignature,
    HeaderWrongType,
    MalformedHeader,
    NotForUs,
    SenderMismatch,
)
from lienthong.protocol.sealing import Sealer
from tests.protocol.test_envelope import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    Opener,
    _args,
    _seal,
    _set,
    _verify,
    resign,
    verify_header,
)

Change = Callable[[dict[str, Any]], None]


def _first_key(p: dict[str, Any]) -> dict[str, Any]:
    return p["keys"][sorted(p["keys"])[0]]


CASES: list[tuple[str, Change, str]] = [
    ("v4", _set("v", 4), "unsupported envelope version 4; this node reads v1, v2 and v3"),
    ("v0", _set("v", 0), "unsupported envelope version 0; this node reads v1, v2 and v3"),
    ("v-bool", _set("v", True),
     "unsupported envelope version True; this node reads v1, v2 and v3"),
    ("v-missing", lambda p: p.pop("v"),
     "unsupported envelope version None; this node reads v1, v2 and v3"),
    ("v2-fields-as-v3", _set("v", 3),
     "header fields wrong: missing ['priority', 'sealed', 'size_class'], unknown "
     "['chunk_size', 'ciphertext_size', 'created', 'meta', 'name', 'sha256', 'size']"),
    ("v2-fields-as-v1", _set("v", 1),
     "header fields wrong: missing ['ciphertext_sha256'], unknown []"),
    ("extra", _set("extra", 1), "header fields wrong: missing [], unknown ['extra']"),
    ("missing", lambda p: p.pop("meta"), "header fields wrong: missing ['meta'], unknown []"),
    ("recipients-empty", _set("recipients", []), "recipients must be a non-empty list"),
    ("recipients-text", _set("recipients", "x"), "recipients must be a non-empty list"),
    ("recipients-repeat", lambda p: p.__setitem__("recipients", p["recipients"] * 2),
     "recipients must not repeat"),
    ("chunk", _set("chunk_size", 1024),
     "chunk_size must be an integer from 4096 to 4194304, not 1024"),
    ("ciphertext-size", _set("ciphertext_size", 1),
     "ciphertext_size does not follow from size and chunk_size"),
    ("ciphertext-size-float", lambda p: p.__setitem__("ciphertext_size",
                                                        float(p["ciphertext_size"])),
     "ciphertext_size does not follow from size and chunk_size"),
    ("meta", _set("meta", []), "meta must be a JSON object"),
    ("message-id", _set("message_id", "G" * 32), "message_id must be 32 lowercase hex digits"),
    ("sha256", _set("sha256", "0" * 63), "sha256 must be 64 lowercase hex digits"),
    ("created", _set("created", "x"),
     "created must be RFC 3339 UTC text like 2026-11-25T22:00:00Z, not 'x'"),
    ("size", _set("size", -1), "size: size must be an integer from 0 to 4503599627370496, not -1"),
    ("name", _set("name", "a/b"), "file name 'a/b' contains '/', '\\' or NUL"),
    ("keys-missing", lambda p: p["keys"].pop(sorted(p["keys"])[0]),
     "keys must hold one sealed key for the sender and each recipient, and no others"),
    ("keys-not-object", _set("keys", []),
     "keys must hold one sealed key for the sender and each recipient, and no others"),
    ("key-extra-member", lambda p: _first_key(p).__setitem__("x", 1),
     "keys[{first}] must have exactly 'kid' and 'sealed'"),
    ("key-not-object", lambda p: p["keys"].__setitem__(sorted(p["keys"])[0], "k"),
     "keys[{first}] must have exactly 'kid' and 'sealed'"),
    ("kid-empty", lambda p: _first_key(p).__setitem__("kid", ""),
     "keys[{first}].kid must be 1..128 characters"),
    ("kid-long", lambda p: _first_key(p).__setitem__("kid", "k" * 129),
     "keys[{first}].kid must be 1..128 characters"),
    ("kid-number", lambda p: _first_key(p).__setitem__("kid", 7),
     "keys[{first}].kid must be 1..128 characters"),
    ("sealed-short", lambda p: _first_key(p).__setitem__("sealed", jws.b64url_encode(bytes(79))),
     "keys[{first}].sealed must be 80 bytes"),
    ("sealed-long", lambda p: _first_key(p).__setitem__("sealed", jws.b64url_encode(bytes(81))),
     "keys[{first}].sealed must be 80 bytes"),
    ("sealed-padded", lambda p: _first_key(p).__setitem__("sealed", "AA=="),
     "keys[{first}].sealed: base64url text must be unpadded"),
]


@pytest.mark.parametrize("change,message", [(c, m) for _, c, m in CASES],
                         ids=[name for name, _, _ in CASES])
def test_each_schema_refusal_word_for_word(change: Change, message: str) -> None:
    token, _ = _seal(b"hello")
    first = sorted(jws.decode(token, ENVELOPE_TYP).payload["keys"])[0]
    with pytest.raises(MalformedHeader) as caught:
        _verify(resign(token, ALICE, change))
    assert str(caught.value) == message.format(first=first)


def test_a_kid_of_exactly_the_limit_is_accepted() -> None:
    assert MAX_KID_CHARS == 128
    token, _ = _seal(b"hello")
    header = _verify(resign(token, ALICE, lambda p: _first_key(p).__setitem__("kid", "k" * 128)))
    assert "k" * 128 in {key.kid for key in header.keys}
    header = _verify(resign(token, ALICE, lambda p: _first_key(p).__setitem__("kid", "k")))
    assert "k" in {key.kid for key in header.keys}
    sealer = Sealer(size=1, **_args(sender_key=(
        "s" * 128, ALICE.sealing_key[1])))
    sealer.feed(b"x")
    assert sealer.finish().header.key_for(ALICE.node_id).kid == "s" * 128


def test_kid_other_than_the_sender_word_for_word() -> None:
    token, _ = _seal(b"hello")
    payload = jws.decode(token, ENVELOPE_TYP).payload
    forged = jws.sign(ALICE.identity, ENVELOPE_TYP, payload, kid=BOB.node_id)
    with pytest.raises(MalformedHeader) as caught:
        _verify(forged)
    assert str(caught.value) == "the token's kid must be the sender's node ID"


def test_signature_and_sender_refusals_word_for_word() -> None:
    token, _ = _seal(b"hello")
    with pytest.raises(BadSignature) as signature:
        verify_header(token, BOB.identity.verify_key)
    assert str(signature.value) == "the envelope header's signature does not verify"
    forged = resign(token, MALLORY, lambda p: None)
    with pytest.raises(BadSignature) as key:
        verify_header(forged, MALLORY.identity.verify_key)
    assert str(key.value) == (f"the key that signed the header is not the identity of sender "
                              f"{ALICE.node_id}")
    with pytest.raises(SenderMismatch) as sender:
        verify_header(token, ALICE.identity.verify_key, expected_sender=CAROL.node_id)
    assert str(sender.value) == (f"the header is signed by {ALICE.node_id}, but the connection "
                                 f"authenticated {CAROL.node_id}")


def test_token_refusals_keep_their_reason() -> None:
    with pytest.raises(MalformedHeader) as malformed:
        decode_header("a.b")
    assert str(malformed.value) == ("envelope header: JWS compact serialization has exactly "
                                    "three parts")
    token, _ = _seal(b"hello")
    other = jws.sign(ALICE.identity, "lienthong-receipt/1",
                     jws.decode(token, ENVELOPE_TYP).payload, kid=ALICE.node_id)
    with pytest.raises(HeaderWrongType) as wrong:
        decode_header(other)
    assert str(wrong.value) == ("expected a 'lienthong-envelope/1' object, got "
                                "'lienthong-receipt/1'")


def test_header_names_and_keys() -> None:
    token, _ = _seal(b"hello")
    header = _verify(token)
    assert header.header_sha256 == hashlib.sha256(token.encode("ascii")).hexdigest()
    assert header.key_for(MALLORY.node_id) is None
    assert header.key_for(BOB.node_id).kid == BOB.kid
    # Only verify_header records the key it checked the token with (a v3 trailer needs it).
    assert header.verified_key == ALICE.identity.verify_key.encode()
    assert decode_header(token.encode("ascii")) == replace(header, verified_key=None)


def test_not_for_us_word_for_word() -> None:
    token, _ = _seal(b"hello")
    header = _verify(token)
    with pytest.raises(NotForUs) as nobody:
        Opener(header, node_id=MALLORY.node_id, encryption_keys={MALLORY.kid: MALLORY.encryption})
    assert str(nobody.value) == (f"message {header.message_id} holds no sealed key for "
                                 f"{MALLORY.node_id}")
    with pytest.raises(NotForUs) as other_key:
        Opener(header, node_id=BOB.node_id, encryption_keys={"x": BOB.encryption})
    assert str(other_key.value) == (f"message {header.message_id} is sealed to our encryption "
                                    f"key {BOB.kid!r}, which this node does not hold")


def test_sealer_refusals_word_for_word() -> None:
    for version in (0, 4, True):
        with pytest.raises(ValueError, match=rf"^cannot write envelope version {version!r}$"):
            Sealer(size=1, **_args(version=version))
    with pytest.raises(ValueError, match=r"^identity is not the signing key of node ID sender$"):
        Sealer(size=1, **_args(identity=MALLORY.identity))
    with pytest.raises(MalformedHeader, match=r"^an envelope needs at least one recipient$"):
        Sealer(size=1, **_args(recipients={}))
    with pytest.raises(ValueError,
                       match=r"^the sender is a recipient with a different encryption key$"):
        Sealer(size=1, **_args(recipients={ALICE.node_id: BOB.sealing_key}))
    with pytest.raises(ValueError, match=r"^random_bytes\(32\) returned the wrong length$"):
        Sealer(size=1, **_args(random_bytes=lambda n: bytes(n - 1)))
    with pytest.raises(MalformedHeader, match=r"^meta must be JSON-serialisable: "):
        Sealer(size=1, **_args(meta={"x": object()}))
