"""Audit-head witnesses: each field rule at its boundary, and each refusal word for word.

A witness is what another office signs to say it holds a head of our chain; `audit verify`
reports a refused one with the message raised here (docs/audit.md), so the texts are pinned.
"""
from __future__ import annotations

import hashlib
from typing import Any

import nacl.signing
import pytest

from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import WitnessError
from lienthong.protocol.witness import (
    WITNESS_TYP,
    WitnessInfo,
    decode_witness,
    issue_witness,
    verify_witness,
)

A = nacl.signing.SigningKey(b"a" * 32)
B = nacl.signing.SigningKey(b"b" * 32)
A_ID = node_id_from_public_key(bytes(A.verify_key))
B_ID = node_id_from_public_key(bytes(B.verify_key))
T = "2026-11-25T08:00:00Z"
T2 = "2026-11-25T09:30:00Z"
PREV = "e" * 64


def issue(**change: Any) -> str:
    fields: dict[str, Any] = dict(subject=A_ID, seq=5, hash="c" * 64, head_time=T,
                                  head_sha256="d" * 64, index=2, prev_sha256=PREV, time=T2)
    fields.update(change)
    return issue_witness(B, **fields)


def payload(**change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"v": 1, "subject": A_ID, "seq": 5, "hash": "c" * 64,
                              "head_time": T, "head_sha256": "d" * 64, "witness": B_ID,
                              "index": 2, "prev_sha256": PREV, "time": T2}
    fields.update(change)
    return {key: value for key, value in fields.items() if value is not DROP}


DROP = object()


def forged(key: nacl.signing.SigningKey = B, kid: str = B_ID, **change: Any) -> str:
    """A token signed with ``key`` over a payload ``issue_witness`` would never write."""
    return jws.sign(key, WITNESS_TYP, payload(**change), kid=kid)


def refusal_of_issue(**change: Any) -> str:
    with pytest.raises(WitnessError) as caught:
        issue(**change)
    return str(caught.value)


def refusal_of_verify(token: str, key: nacl.signing.SigningKey = B, **kw: Any) -> str:
    with pytest.raises(WitnessError) as caught:
        verify_witness(token, key.verify_key, **kw)
    return str(caught.value)


def test_an_issued_witness_carries_every_field_and_its_token() -> None:
    token = issue()
    info = verify_witness(token, B.verify_key, subject=A_ID)
    assert info == WitnessInfo(subject=A_ID, seq=5, hash="c" * 64, head_time=T,
                               head_sha256="d" * 64, witness=B_ID, index=2, prev_sha256=PREV,
                               time=T2, token=token)
    assert info.token_sha256 == hashlib.sha256(token.encode("ascii")).hexdigest()
    decoded = jws.decode(token, WITNESS_TYP)
    assert decoded.kid == B_ID
    assert decoded.payload == payload()
    assert verify_witness(token.encode("ascii"), B.verify_key) == info  # bytes too
    assert verify_witness(token, B.verify_key, subject=None) == info


def test_the_lowest_seq_and_index_are_one() -> None:
    info = verify_witness(issue(seq=1, index=1, prev_sha256=None), B.verify_key)
    assert (info.seq, info.index, info.prev_sha256) == (1, 1, None)
    assert refusal_of_issue(seq=0) == "seq must be a whole number of 1 or more"
    assert refusal_of_issue(seq=True) == "seq must be a whole number of 1 or more"
    assert refusal_of_issue(seq="5") == "seq must be a whole number of 1 or more"
    assert refusal_of_issue(index=0, prev_sha256=None) == \
        "index must be a whole number of 1 or more"
    assert refusal_of_issue(index=True, prev_sha256=None) == \
        "index must be a whole number of 1 or more"
    assert refusal_of_issue(index=2.0) == "index must be a whole number of 1 or more"


def test_only_the_first_witness_has_no_prev() -> None:
    rule = "the first witness has no prev_sha256; every later one names it"
    assert refusal_of_issue(index=1, prev_sha256=PREV) == rule
    assert refusal_of_issue(index=2, prev_sha256=None) == rule
    assert refusal_of_issue(index=3, prev_sha256="E" * 64) == \
        "prev_sha256 must be 64 lowercase hex digits"
    assert refusal_of_verify(forged(index=1)) == rule
    assert refusal_of_verify(forged(prev_sha256=None)) == rule
    assert refusal_of_verify(forged(prev_sha256="e" * 63)) == \
        "prev_sha256 must be 64 lowercase hex digits"


def test_issue_checks_every_field_and_names_it() -> None:
    assert refusal_of_issue(subject="nobody").startswith("subject: ")
    assert refusal_of_issue(subject=A_ID.lower()) == \
        f"subject {A_ID.lower()!r} is not in canonical form ({A_ID})"
    assert refusal_of_issue(hash="c" * 63) == "hash must be 64 lowercase hex digits"
    assert refusal_of_issue(head_sha256="d" * 65) == \
        "head_sha256 must be 64 lowercase hex digits"
    assert refusal_of_issue(head_time="2026-11-25") == \
        "head_time must be RFC 3339 UTC text like 2026-11-25T22:00:00Z, not '2026-11-25'"
    assert refusal_of_issue(time="yesterday") == \
        "time must be RFC 3339 UTC text like 2026-11-25T22:00:00Z, not 'yesterday'"


def test_an_office_does_not_witness_its_own_chain() -> None:
    with pytest.raises(ValueError) as caught:
        issue(subject=B_ID)
    assert str(caught.value) == "an office does not witness its own chain"
    assert not isinstance(caught.value, WitnessError)


def test_version_must_be_the_integer_one() -> None:
    for version in (2, 0, True, "1", 1.0):
        assert refusal_of_verify(forged(v=version)) == \
            f"unsupported witness version {version!r}; this node reads v1"
    assert refusal_of_verify(forged(v=DROP)) == \
        "unsupported witness version None; this node reads v1"


def test_the_fields_are_exactly_the_ten_named() -> None:
    assert refusal_of_verify(forged(extra="x")) == \
        "witness fields wrong: missing [], unknown ['extra']"
    assert refusal_of_verify(forged(time=DROP, head_time=DROP)) == \
        "witness fields wrong: missing ['head_time', 'time'], unknown []"


def test_the_kid_is_the_witness() -> None:
    assert refusal_of_verify(forged(kid=A_ID)) == \
        "the witness's kid must be the witnessing office's node ID"
    assert refusal_of_verify(forged(witness="nobody")).startswith("witness: ")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("subject", "nobody", "subject: "),
    ("hash", "C" * 64, "hash must be 64 lowercase hex digits"),
    ("head_sha256", "d" * 32, "head_sha256 must be 64 lowercase hex digits"),
    ("head_time", "2026-13-01T00:00:00Z", "head_time '2026-13-01T00:00:00Z' is not a real"),
    ("time", 7, "time must be RFC 3339 UTC text"),
    ("seq", -1, "seq must be a whole number of 1 or more"),
])
def test_verify_checks_every_field_and_names_it(field: str, value: object, message: str) -> None:
    assert refusal_of_verify(forged(**{field: value})).startswith(message)


def test_the_signature_and_the_signer_are_checked() -> None:
    assert refusal_of_verify(issue(), A) == "the witness's signature does not verify"
    # A signs a witness that says B is the witness, with B's ID as kid: the signature is A's
    # and verifies under A's key, but the key is not the identity of the office it names.
    assert refusal_of_verify(forged(key=A), A) == \
        f"the key that signed the witness is not the identity of {B_ID}"
    assert refusal_of_verify(issue(), subject=B_ID) == \
        f"the witness is about the chain of {A_ID}, not {B_ID}"


def test_a_token_of_another_type_is_not_a_witness() -> None:
    head = jws.sign(B, "lienthong-audit-head/1", {"seq": 1}, kid=B_ID)
    message = refusal_of_verify(head)
    assert message.startswith("not an audit-head witness: ")
    assert "lienthong-audit-witness/1" in message
    with pytest.raises(WitnessError) as caught:
        decode_witness("not.a.token")
    assert str(caught.value).startswith("not an audit-head witness: ")


def test_decode_reads_without_the_signature_but_with_the_schema() -> None:
    """decode_witness is for display: a witness signed by anyone parses, a malformed one not."""
    token = forged(key=A)
    info = decode_witness(token)
    assert (info.witness, info.subject, info.token) == (B_ID, A_ID, token)
    with pytest.raises(WitnessError):
        decode_witness(forged(seq=0))
