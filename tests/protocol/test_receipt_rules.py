"""Receipt rules a mutation run found unpinned (issue 22): the kid, every field's schema, and
each field that must match what we sent.

Every forged receipt here is correctly signed by the key it claims, so only the rule under
test can refuse it.
"""
from __future__ import annotations

from typing import Any

import pytest

from lienthong.keys import jws
from lienthong.protocol.errors import (
    MalformedReceipt,
    ReceiptBadSignature,
    ReceiptMismatch,
    ReceiptWrongType,
)
from lienthong.protocol.receipt import (
    RECEIPT_TYP,
    VERSION,
    ReceiptInfo,
    decode_receipt,
    issue_receipt,
    verify_receipt,
)
from tests.protocol.test_receipt import ALICE, BOB, CAROL, TIME, _header, _receipt
from tests.vectors.make_vectors import party


def _payload() -> dict[str, Any]:
    return jws.decode(_receipt(_header()), RECEIPT_TYP).payload


def _signed_by_bob(payload: dict[str, Any], kid: str | None = None) -> str:
    return jws.sign(BOB.identity, RECEIPT_TYP, payload, kid=kid or BOB.node_id)


def test_kid_other_than_the_recipient_is_refused() -> None:
    """Bob's receipt, signed by Bob, but with Carol's node ID as kid: refused on its form."""
    forged = _signed_by_bob(_payload(), kid=CAROL.node_id)
    with pytest.raises(MalformedReceipt,
                       match=r"^the receipt's kid must be the recipient's node ID$"):
        verify_receipt(forged, BOB.identity.verify_key)
    with pytest.raises(MalformedReceipt,
                       match=r"^the receipt's kid must be the recipient's node ID$"):
        decode_receipt(forged)


def test_kid_that_is_not_text_is_refused() -> None:
    """A kid that is a number (so no node ID at all) is refused like a wrong one."""
    payload = _payload()
    header = {"alg": "EdDSA", "kid": 7, "typ": RECEIPT_TYP}
    signing_input = (jws.b64url_encode(jws.canonical_json(header)) + "." +
                     jws.b64url_encode(jws.canonical_json(payload))).encode("ascii")
    token = (signing_input.decode("ascii") + "." +
             jws.b64url_encode(BOB.identity.sign(signing_input).signature))
    with pytest.raises(MalformedReceipt, match="kid"):
        verify_receipt(token, BOB.identity.verify_key)


@pytest.mark.parametrize("key,value", [
    ("message_id", "AB" * 16), ("message_id", "ab" * 15), ("message_id", "ab" * 32),
    ("message_id", None), ("message_id", 5),
    ("header_sha256", "AB" * 32), ("header_sha256", "ab" * 16), ("header_sha256", None),
    ("header_sha256", "ab" * 31 + "zz"),
    ("recipient", "nobody"), ("recipient", None), ("recipient", 3),
    ("sha256", "ab" * 16), ("sha256", None),
    ("sender", None), ("size", -1), ("size", True), ("size", 1.5), ("size", None),
    ("time", "2026-11-25 22:00:07Z"), ("time", "2026-13-25T22:00:07Z"), ("time", None),
    ("status", None), ("status", ""),
    ("v", True), ("v", 1.0), ("v", "1"), ("v", None), ("v", 0),
])
def test_each_field_is_checked(key: str, value: Any) -> None:
    """A correctly signed receipt with one field of the wrong form raises MalformedReceipt
    (not a TypeError, not acceptance), naming the field."""
    payload = _payload()
    payload[key] = value
    forged = _signed_by_bob(payload)
    with pytest.raises(MalformedReceipt) as caught:
        verify_receipt(forged, BOB.identity.verify_key)
    assert key in str(caught.value) or (key == "v" and "version" in str(caught.value))


def test_recipient_in_another_spelling_is_refused() -> None:
    """The recipient must be written exactly as node IDs are printed (canonical form)."""
    payload = _payload()
    payload["recipient"] = BOB.node_id.lower()
    with pytest.raises(MalformedReceipt, match="recipient"):
        verify_receipt(_signed_by_bob(payload, kid=payload["recipient"]),
                       BOB.identity.verify_key)


@pytest.mark.parametrize("field", ["time", "header_sha256", "v"])
def test_a_missing_field_is_named(field: str) -> None:
    payload = _payload()
    del payload[field]
    with pytest.raises(MalformedReceipt) as caught:
        verify_receipt(_signed_by_bob(payload), BOB.identity.verify_key)
    assert field in str(caught.value) or field == "v"


def test_wrong_fields_message_names_missing_and_unknown() -> None:
    payload = _payload()
    del payload["time"]
    payload["when"] = TIME
    with pytest.raises(MalformedReceipt) as caught:
        verify_receipt(_signed_by_bob(payload), BOB.identity.verify_key)
    assert str(caught.value) == "receipt fields wrong: missing ['time'], unknown ['when']"


@pytest.mark.parametrize("field,value", [
    ("message_id", "0" * 32), ("sender", CAROL.node_id), ("sha256", "0" * 64), ("size", 6),
    ("header_sha256", "0" * 64),
])
def test_each_identifying_field_must_match_what_we_sent(field: str, value: Any) -> None:
    """A genuine, well-formed receipt from Bob that differs from the header we sent in one
    identifying field raises ReceiptMismatch naming that field."""
    header = _header()
    payload = jws.decode(_receipt(header), RECEIPT_TYP).payload
    payload[field] = value
    with pytest.raises(ReceiptMismatch) as caught:
        verify_receipt(_signed_by_bob(payload), BOB.identity.verify_key, expected=header)
    assert str(caught.value) == (f"the receipt's {field} is {value!r}, but we sent "
                                 f"{getattr(header, field)!r}")


def test_receipt_as_bytes_verifies_and_keeps_the_token_text() -> None:
    header = _header()
    token = _receipt(header)
    info = verify_receipt(token.encode("ascii"), BOB.identity.verify_key, expected=header,
                          recipient=BOB.node_id)
    assert info.token == token and info.version == VERSION == 1
    assert decode_receipt(token.encode("ascii")) == info


def test_decoded_receipt_has_every_field() -> None:
    header = _header()
    info = decode_receipt(_receipt(header))
    assert info == ReceiptInfo(message_id=header.message_id, sender=ALICE.node_id,
                               recipient=BOB.node_id, sha256=header.sha256, size=header.size,
                               status="delivered", time=TIME,
                               header_sha256=header.header_sha256, token=info.token)


def test_token_that_is_not_jws_is_malformed_and_says_receipt() -> None:
    with pytest.raises(MalformedReceipt, match="^receipt: "):
        decode_receipt("not.a.token")
    with pytest.raises(ReceiptWrongType):
        decode_receipt(jws.sign(BOB.identity, "lienthong-status/1", _payload(), kid=BOB.node_id))


def test_issue_refuses_a_malformed_recipient_before_signing() -> None:
    with pytest.raises(MalformedReceipt, match="recipient"):
        issue_receipt(BOB.identity, recipient="bob", header=_header(), time=TIME)


def test_issue_names_what_is_wrong() -> None:
    header = _header()
    with pytest.raises(ValueError, match="identity is not the signing key"):
        issue_receipt(CAROL.identity, recipient=BOB.node_id, header=header, time=TIME)
    with pytest.raises(MalformedReceipt, match="unknown receipt status 'read'"):
        issue_receipt(BOB.identity, recipient=BOB.node_id, header=header, time=TIME,
                      status="read")
    with pytest.raises(MalformedReceipt, match="time"):
        issue_receipt(BOB.identity, recipient=BOB.node_id, header=header, time="now")


def test_issued_payload_is_exactly_the_documented_one() -> None:
    """The signed payload has the nine documented fields with the header's values."""
    header = _header()
    decoded = jws.decode(_receipt(header), RECEIPT_TYP)
    assert decoded.header == {"alg": "EdDSA", "kid": BOB.node_id, "typ": RECEIPT_TYP}
    assert decoded.payload == {
        "v": 1, "message_id": header.message_id, "sender": header.sender,
        "recipient": BOB.node_id, "sha256": header.sha256, "size": header.size,
        "status": "delivered", "time": TIME, "header_sha256": header.header_sha256}


@pytest.mark.parametrize("key,value,message", [
    ("message_id", "x", "message_id must be 32 lowercase hex digits"),
    ("sender", "x", "sender: 'x' is not a node ID (56 base32 characters in 8 groups)"),
    ("recipient", "x", "recipient: 'x' is not a node ID (56 base32 characters in 8 groups)"),
    ("sha256", "x", "sha256 must be 64 lowercase hex digits"),
    ("size", -1, "size: size must be an integer from 0 to 4503599627370496, not -1"),
    ("time", "x", "time must be RFC 3339 UTC text like 2026-11-25T22:00:00Z, not 'x'"),
    ("header_sha256", "x", "header_sha256 must be 64 lowercase hex digits"),
    ("v", 2, "unsupported receipt version 2; this node reads v1"),
    ("status", "x", "unknown receipt status 'x'"),
])
def test_each_refusal_names_the_field_word_for_word(key: str, value: Any, message: str) -> None:
    """The refusal goes into the audit log and the clerk's report as it is: its words are part
    of what the node shows, so they are pinned."""
    payload = _payload()
    payload[key] = value
    with pytest.raises(MalformedReceipt) as caught:
        verify_receipt(_signed_by_bob(payload), BOB.identity.verify_key)
    assert str(caught.value) == message


def test_wrong_type_keeps_the_reason() -> None:
    other = jws.sign(BOB.identity, "lienthong-status/1", _payload(), kid=BOB.node_id)
    with pytest.raises(ReceiptWrongType) as caught:
        decode_receipt(other)
    assert str(caught.value) == ("expected a 'lienthong-receipt/1' object, got "
                                 "'lienthong-status/1'")


def test_issue_refusals_word_for_word() -> None:
    header = _header()
    with pytest.raises(ValueError) as key:
        issue_receipt(CAROL.identity, recipient=BOB.node_id, header=header, time=TIME)
    assert str(key.value) == "identity is not the signing key of node ID recipient"
    with pytest.raises(MalformedReceipt) as time:
        issue_receipt(BOB.identity, recipient=BOB.node_id, header=header, time="now")
    assert str(time.value) == ("time must be RFC 3339 UTC text like 2026-11-25T22:00:00Z, "
                               "not 'now'")
    with pytest.raises(MalformedReceipt) as who:
        issue_receipt(BOB.identity, recipient="bob", header=header, time=TIME)
    assert str(who.value).startswith("recipient: 'bob' is not a node ID")
    mallory = party("mallory")
    with pytest.raises(ReceiptMismatch) as mismatch:
        issue_receipt(mallory.identity, recipient=mallory.node_id, header=header, time=TIME)
    assert str(mismatch.value) == (f"{mallory.node_id} is not a recipient of message "
                                   f"{header.message_id}")


def test_verify_refusals_word_for_word() -> None:
    """Who signed, who answered and whether they were addressed, as the sender's audit
    entry records them."""
    header = _header()
    payload = jws.decode(_receipt(header), RECEIPT_TYP).payload
    mallory = party("mallory")
    forged = jws.sign(mallory.identity, RECEIPT_TYP, payload, kid=BOB.node_id)
    with pytest.raises(ReceiptBadSignature) as key:
        verify_receipt(forged, mallory.identity.verify_key)
    assert str(key.value) == (f"the key that signed the receipt is not the identity of "
                              f"{BOB.node_id}")
    with pytest.raises(ReceiptMismatch) as who:
        verify_receipt(_receipt(header, CAROL), CAROL.identity.verify_key,
                       recipient=BOB.node_id)
    assert str(who.value) == f"the receipt comes from {CAROL.node_id}, not {BOB.node_id}"
    payload["recipient"] = mallory.node_id
    stranger = jws.sign(mallory.identity, RECEIPT_TYP, payload, kid=mallory.node_id)
    with pytest.raises(ReceiptMismatch) as addressed:
        verify_receipt(stranger, mallory.identity.verify_key, expected=header)
    assert str(addressed.value) == (f"{mallory.node_id} is not a recipient of message "
                                    f"{header.message_id}")


def test_a_bad_signature_says_so() -> None:
    token = _receipt(_header())
    with pytest.raises(ReceiptBadSignature) as caught:
        verify_receipt(token, CAROL.identity.verify_key)
    assert str(caught.value) == "the receipt's signature does not verify"
