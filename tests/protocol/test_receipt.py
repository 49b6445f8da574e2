"""Receipts (protocol/receipt.py): issue, verify, refuse; checked by an independent JOSE library."""
from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import OKPKey

from lienthong.keys import jws
from lienthong.protocol.envelope import EnvelopeHeader, verify_header
from lienthong.protocol.errors import (
    MalformedReceipt,
    ReceiptBadSignature,
    ReceiptError,
    ReceiptMismatch,
    ReceiptWrongType,
)
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.receipt import (
    RECEIPT_TYP,
    ReceiptInfo,
    decode_receipt,
    issue_receipt,
    verify_receipt,
)
from lienthong.protocol.sealing import seal_all
from tests.vectors.make_vectors import Party, party

ALICE, BOB, CAROL, MALLORY = party("alice"), party("bob"), party("carol"), party("mallory")
TIME = "2026-11-25T22:00:07Z"


def _header(plaintext: bytes = b"hello", message_id: str | None = None) -> EnvelopeHeader:
    envelope, _ = seal_all(
        plaintext, identity=ALICE.identity, sender=ALICE.node_id, sender_key=ALICE.sealing_key,
        recipients={BOB.node_id: BOB.sealing_key, CAROL.node_id: CAROL.sealing_key},
        name="a.pdf", message_id=message_id or new_message_id(),
        created="2026-11-25T22:00:00Z", chunk_size=4096)
    return verify_header(envelope.header_token, ALICE.identity.verify_key)


def _receipt(header: EnvelopeHeader, reader: Party = BOB) -> str:
    return issue_receipt(reader.identity, recipient=reader.node_id, header=header, time=TIME)


def _jwk(p: Party) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": jws.b64url_encode(p.identity.verify_key.encode())}


def _jose_verify(token: str, p: Party) -> Any:
    # joserfc 1.8 flags "EdDSA" as deprecated by RFC 9864 (in favour of "Ed25519") and only
    # accepts it when asked for explicitly; the signature check itself is unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jose_jws.deserialize_compact(token, OKPKey.import_key(_jwk(p)),
                                            algorithms=["EdDSA"])


def test_issue_and_verify() -> None:
    """A receipt names the message, both parties, the digest, size, status, time and header."""
    header = _header()
    info = verify_receipt(_receipt(header), BOB.identity.verify_key, expected=header,
                          recipient=BOB.node_id)
    assert info == ReceiptInfo(message_id=header.message_id, sender=ALICE.node_id,
                               recipient=BOB.node_id, sha256=header.sha256, size=5,
                               status="delivered", time=TIME,
                               header_sha256=header.header_sha256, token=info.token)


def test_reissue_is_byte_identical() -> None:
    """Issuing twice for the same inputs gives the same bytes (Ed25519 is deterministic)."""
    header = _header()
    assert _receipt(header) == _receipt(header)


def test_independent_jose_library_verifies() -> None:
    """joserfc, given only the recipient's public OKP JWK, verifies the receipt and its payload."""
    header = _header()
    token = _receipt(header)
    result = _jose_verify(token, BOB)
    assert result.headers() == {"alg": "EdDSA", "kid": BOB.node_id, "typ": RECEIPT_TYP}
    assert json.loads(result.payload)["sha256"] == header.sha256
    with pytest.raises(BadSignatureError):
        _jose_verify(token, CAROL)


def test_decode_without_key() -> None:
    """decode_receipt shows the fields without a key (for display only)."""
    header = _header()
    assert decode_receipt(_receipt(header)).message_id == header.message_id


def test_flipped_signature() -> None:
    """A receipt with a flipped signature byte raises ReceiptBadSignature."""
    token = _receipt(_header())
    head, payload, sig = token.split(".")
    raw = bytearray(jws.b64url_decode(sig))
    raw[0] ^= 1
    with pytest.raises(ReceiptBadSignature):
        verify_receipt(".".join([head, payload, jws.b64url_encode(bytes(raw))]),
                       BOB.identity.verify_key)


def test_changed_payload() -> None:
    """A receipt whose payload was edited without re-signing raises ReceiptBadSignature."""
    token = _receipt(_header())
    head, _, sig = token.split(".")
    payload = jws.decode(token, RECEIPT_TYP).payload
    payload["size"] = 6
    with pytest.raises(ReceiptBadSignature):
        verify_receipt(".".join([head, jws.b64url_encode(jws.canonical_json(payload)), sig]),
                       BOB.identity.verify_key)


def test_signed_by_someone_else() -> None:
    """Mallory signing a receipt in Bob's name fails with Bob's key and with Mallory's own."""
    header = _header()
    payload = jws.decode(_receipt(header), RECEIPT_TYP).payload
    forged = jws.sign(MALLORY.identity, RECEIPT_TYP, payload, kid=BOB.node_id)
    with pytest.raises(ReceiptBadSignature):
        verify_receipt(forged, BOB.identity.verify_key)
    with pytest.raises(ReceiptBadSignature):
        verify_receipt(forged, MALLORY.identity.verify_key)


def test_envelope_header_given_as_receipt() -> None:
    """An envelope header token offered as a receipt raises ReceiptWrongType."""
    header = _header()
    with pytest.raises(ReceiptWrongType):
        verify_receipt(header.token, ALICE.identity.verify_key)
    with pytest.raises(ReceiptWrongType):
        decode_receipt(header.token)


def test_receipt_for_another_message() -> None:
    """A genuine receipt for another message raises ReceiptMismatch."""
    header, other = _header(), _header()
    with pytest.raises(ReceiptMismatch, match="message_id"):
        verify_receipt(_receipt(other), BOB.identity.verify_key, expected=header)


def test_receipt_for_another_version_of_the_message() -> None:
    """Same message ID, other content: the digest mismatch is caught (ReceiptMismatch)."""
    message_id = new_message_id()
    sent, other = _header(b"hello", message_id), _header(b"jello", message_id)
    with pytest.raises(ReceiptMismatch, match="sha256"):
        verify_receipt(_receipt(other), BOB.identity.verify_key, expected=sent)


def test_receipt_for_the_same_document_under_another_header() -> None:
    """Same message ID and content, resealed (another header): header_sha256 differs."""
    message_id = new_message_id()
    sent, other = _header(b"hello", message_id), _header(b"hello", message_id)
    with pytest.raises(ReceiptMismatch, match="header_sha256"):
        verify_receipt(_receipt(other), BOB.identity.verify_key, expected=sent)


def test_receipt_from_another_recipient() -> None:
    """Carol's genuine receipt is not Bob's (ReceiptMismatch when Bob's is expected)."""
    header = _header()
    with pytest.raises(ReceiptMismatch):
        verify_receipt(_receipt(header, CAROL), CAROL.identity.verify_key, expected=header,
                       recipient=BOB.node_id)


def test_receipt_from_a_node_that_was_not_addressed() -> None:
    """A genuine receipt from a node not among the recipients raises ReceiptMismatch."""
    header = _header()
    payload = jws.decode(_receipt(header), RECEIPT_TYP).payload
    payload["recipient"] = MALLORY.node_id
    forged = jws.sign(MALLORY.identity, RECEIPT_TYP, payload, kid=MALLORY.node_id)
    with pytest.raises(ReceiptMismatch):
        verify_receipt(forged, MALLORY.identity.verify_key, expected=header)


def test_issue_refusals() -> None:
    """Issuing for a message not addressed to us, an unknown status or a bad time is refused."""
    header = _header()
    with pytest.raises(ReceiptMismatch):
        issue_receipt(MALLORY.identity, recipient=MALLORY.node_id, header=header, time=TIME)
    with pytest.raises(MalformedReceipt):
        issue_receipt(BOB.identity, recipient=BOB.node_id, header=header, time=TIME,
                      status="read")
    with pytest.raises(MalformedReceipt):
        issue_receipt(BOB.identity, recipient=BOB.node_id, header=header, time="now")
    with pytest.raises(ValueError):
        issue_receipt(CAROL.identity, recipient=BOB.node_id, header=header, time=TIME)


@pytest.mark.parametrize("key,value", [
    ("v", 2), ("status", "rejected"), ("size", "5"), ("time", "2026-11-25T22:00:07+07:00"),
    ("sha256", "AB" * 32), ("extra", True), ("sender", "nobody"),
])
def test_schema_violations(key: str, value: Any) -> None:
    """A correctly signed receipt that breaks the v1 schema raises MalformedReceipt."""
    payload = jws.decode(_receipt(_header()), RECEIPT_TYP).payload
    payload[key] = value
    forged = jws.sign(BOB.identity, RECEIPT_TYP, payload, kid=BOB.node_id)
    with pytest.raises(MalformedReceipt):
        verify_receipt(forged, BOB.identity.verify_key)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_tokens_only_raise_receipt_errors(junk: str | bytes) -> None:
    """Arbitrary text or bytes as a receipt only ever raise ReceiptError subclasses."""
    with pytest.raises(ReceiptError):
        decode_receipt(junk)
