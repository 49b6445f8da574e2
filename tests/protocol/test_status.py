"""Processing statuses and recalls (protocol/status.py): issue, verify, chain, refuse."""
from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from lienthong.keys import jws
from lienthong.protocol.envelope import verify_header
from lienthong.protocol.errors import (
    MalformedRecall,
    MalformedStatus,
    ProtocolError,
    RecallBadSignature,
    RecallMismatch,
    RecallWrongType,
    SignedObjectError,
    StatusBadSignature,
    StatusMismatch,
    StatusWrongType,
)
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.receipt import issue_receipt
from lienthong.protocol.sealing import seal_all
from lienthong.protocol.status import (
    RECALL_TYP,
    STATUS_TYP,
    check_chain,
    decode_recall,
    decode_status,
    issue_recall,
    issue_status,
    token_sha256,
    verify_recall,
    verify_status,
)
from tests.vectors.make_vectors import Party, party

ALICE, BOB, CAROL = party("alice"), party("bob"), party("carol")
TIME = "2026-11-25T22:10:00Z"


def _receipt(reader: Party = BOB) -> tuple[str, str]:
    envelope, _ = seal_all(
        b"Nghi quyet so 12-NQ/TU", identity=ALICE.identity, sender=ALICE.node_id,
        sender_key=ALICE.sealing_key,
        recipients={BOB.node_id: BOB.sealing_key, CAROL.node_id: CAROL.sealing_key},
        name="nq-12.pdf", message_id=new_message_id(), created="2026-11-25T22:00:00Z",
        chunk_size=4096)
    header = verify_header(envelope.header_token, ALICE.identity.verify_key)
    receipt = issue_receipt(reader.identity, recipient=reader.node_id, header=header,
                            time="2026-11-25T22:00:05Z")
    return header.message_id, receipt


def _status(status: str = "registered", reader: Party = BOB, **kw: Any) -> tuple[str, str, str]:
    message_id, receipt = _receipt(reader)
    args: dict[str, Any] = {"note": "", "register_number": "152/VP" if status == "registered"
                            else None, "receipt_sha256": token_sha256(receipt)}
    args.update(kw)
    token = issue_status(reader.identity, message_id=message_id, sender=ALICE.node_id,
                         recipient=reader.node_id, status=status, time=TIME, **args)
    return message_id, receipt, token


def _jose_payload(token: str, p: Party) -> dict[str, Any]:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": jws.b64url_encode(p.identity.verify_key.encode())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = jose_jws.deserialize_compact(token, OKPKey.import_key(jwk), algorithms=["EdDSA"])
    assert result.headers()["typ"] in (STATUS_TYP, RECALL_TYP)
    return json.loads(result.payload)


def test_registered_status_verifies_and_chains_to_its_receipt() -> None:
    """A 'registered' status carries the register number and follows exactly its receipt."""
    message_id, receipt, token = _status(note="Vào sổ công văn đến")
    info = verify_status(token, BOB.identity.verify_key, recipient=BOB.node_id,
                         sender=ALICE.node_id, message_id=message_id)
    assert (info.status, info.register_number, info.note) == ("registered", "152/VP",
                                                              "Vào sổ công văn đến")
    assert info.receipt_sha256 == token_sha256(receipt)
    check_chain(info, receipt)
    _, other_receipt = _receipt()
    with pytest.raises(StatusMismatch):
        check_chain(info, other_receipt)


def test_any_jose_library_reads_a_status() -> None:
    """joserfc verifies a status with the office's public key alone and sees its fields."""
    message_id, _, token = _status("completed")
    payload = _jose_payload(token, BOB)
    assert payload["message_id"] == message_id and payload["status"] == "completed"


def test_reissue_with_the_same_time_is_byte_identical() -> None:
    """A request processed twice (after a crash) yields the same token, so it is deduplicated."""
    message_id, receipt = _receipt()
    make = lambda: issue_status(BOB.identity, message_id=message_id,  # noqa: E731
                                sender=ALICE.node_id, recipient=BOB.node_id, status="assigned",
                                time=TIME, receipt_sha256=token_sha256(receipt))
    assert make() == make()


def test_status_signed_by_another_office_is_refused() -> None:
    """Carol's key does not verify Bob's status; Carol cannot claim to be Bob either."""
    _, _, token = _status()
    with pytest.raises(StatusBadSignature):
        verify_status(token, CAROL.identity.verify_key)
    with pytest.raises(StatusMismatch):
        verify_status(token, BOB.identity.verify_key, recipient=CAROL.node_id)
    with pytest.raises(StatusMismatch):
        verify_status(token, BOB.identity.verify_key, sender=CAROL.node_id)


def test_a_receipt_or_recall_is_not_a_status() -> None:
    """Domain separation: a receipt or a recall given as a status is refused by its typ."""
    _, receipt = _receipt()
    with pytest.raises(StatusWrongType):
        verify_status(receipt, BOB.identity.verify_key)
    recall = issue_recall(ALICE.identity, message_id=new_message_id(), sender=ALICE.node_id,
                          recipients=[BOB.node_id], reason="nhầm", time=TIME)
    with pytest.raises(StatusWrongType):
        decode_status(recall)
    _, _, status = _status()
    with pytest.raises(RecallWrongType):
        decode_recall(status)


@pytest.mark.parametrize("status,kw,match", [
    ("registered", {"register_number": None}, "register number"),
    ("rejected", {"note": "  "}, "note"),
    ("recall-refused", {"note": ""}, "note"),
    ("completed", {"receipt_sha256": None}, "receipt"),
    ("recall-accepted", {"register_number": "1"}, "no register number"),
    ("archived", {}, "unknown status"),
    ("completed", {"note": "a\u202eb"}, "control"),
    ("completed", {"note": "x" * 2001}, "note"),
])
def test_issue_refuses_incomplete_statuses(status: str, kw: dict[str, Any], match: str) -> None:
    """Rules are checked when signing: a rejection needs a reason, registration a number."""
    with pytest.raises(MalformedStatus, match=match):
        _status(status, **kw)


def test_recall_refused_for_an_unknown_document_needs_no_receipt() -> None:
    """The only status without a receipt to chain to is the refusal of an unknown recall."""
    message_id = new_message_id()
    token = issue_status(BOB.identity, message_id=message_id, sender=ALICE.node_id,
                         recipient=BOB.node_id, status="recall-refused", time=TIME,
                         receipt_sha256=None, note="không có văn bản này")
    info = verify_status(token, BOB.identity.verify_key)
    assert info.receipt_sha256 is None
    with pytest.raises(StatusMismatch):
        check_chain(info, _receipt()[1])


def test_tampered_payload_is_refused() -> None:
    """Changing one field of a signed status (completed -> rejected) breaks the signature."""
    _, _, token = _status("completed")
    head, payload, signature = token.split(".")
    fields = json.loads(jws.b64url_decode(payload))
    fields["status"] = "rejected"
    fields["note"] = "không thuộc thẩm quyền"
    forged = ".".join((head, jws.b64url_encode(jws.canonical_json(fields)), signature))
    with pytest.raises(StatusBadSignature):
        verify_status(forged, BOB.identity.verify_key)


def test_recall_verifies_for_a_named_recipient_only() -> None:
    """A recall is the sender's, names its recipients, and optionally its replacement."""
    message_id, replacement = new_message_id(), new_message_id()
    token = issue_recall(ALICE.identity, message_id=message_id, sender=ALICE.node_id,
                         recipients=[BOB.node_id, CAROL.node_id], reason="Ban hành nhầm",
                         time=TIME, replaced_by=replacement)
    info = verify_recall(token, ALICE.identity.verify_key, sender=ALICE.node_id,
                         recipient=BOB.node_id)
    assert (info.message_id, info.replaced_by, info.reason) == (message_id, replacement,
                                                                "Ban hành nhầm")
    assert _jose_payload(token, ALICE)["recipients"] == [BOB.node_id, CAROL.node_id]
    with pytest.raises(RecallMismatch):
        verify_recall(token, ALICE.identity.verify_key, recipient=ALICE.node_id)
    with pytest.raises(RecallMismatch):
        verify_recall(token, ALICE.identity.verify_key, sender=BOB.node_id)
    with pytest.raises(RecallBadSignature):
        verify_recall(token, BOB.identity.verify_key)


@pytest.mark.parametrize("kw,match", [
    ({"reason": ""}, "reason"),
    ({"recipients": []}, "recipients"),
    ({"recipients": ["nobody"]}, "recipient"),
    ({"replaced_by": "same"}, "replace itself"),
])
def test_recall_rules(kw: dict[str, Any], match: str) -> None:
    """A recall needs a reason and recipients, and cannot name itself as its replacement."""
    message_id = new_message_id()
    args: dict[str, Any] = {"recipients": [BOB.node_id], "reason": "sai số ký hiệu"}
    args.update(kw)
    if args.get("replaced_by") == "same":
        args["replaced_by"] = message_id
    with pytest.raises(MalformedRecall, match=match):
        issue_recall(ALICE.identity, message_id=message_id, sender=ALICE.node_id, time=TIME,
                     **args)


def test_recall_with_unknown_field_is_refused() -> None:
    """A recall payload with a field v1 does not know is refused, even if well signed."""
    payload = {"v": 1, "message_id": new_message_id(), "sender": ALICE.node_id,
               "recipients": [BOB.node_id], "reason": "x", "time": TIME, "urgent": True}
    token = jws.sign(ALICE.identity, RECALL_TYP, payload, kid=ALICE.node_id)
    with pytest.raises(MalformedRecall, match="unknown"):
        verify_recall(token, ALICE.identity.verify_key)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400))
def test_arbitrary_input_only_raises_protocol_errors(data: bytes | str) -> None:
    """Garbage given as a status or a recall raises a SignedObjectError and nothing else."""
    for verify, key in ((verify_status, BOB), (verify_recall, ALICE)):
        with pytest.raises(ProtocolError) as caught:
            verify(data, key.identity.verify_key)
        assert isinstance(caught.value, SignedObjectError)
