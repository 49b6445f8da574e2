"""Processing statuses and recalls: each rule at its boundary, each refusal word for word.

The refusals are what the audit log and the document's history page show when a peer's
status or recall is refused (docs/protocol.md), so the texts are pinned here.
"""
from __future__ import annotations

import hashlib
from typing import Any

import nacl.signing
import pytest

from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import (
    MalformedRecall,
    MalformedStatus,
    RecallBadSignature,
    RecallMismatch,
    RecallWrongType,
    StatusBadSignature,
    StatusMismatch,
    StatusWrongType,
)
from lienthong.protocol.status import (
    MAX_NOTE,
    MAX_RECIPIENTS,
    MAX_REGISTER_NUMBER,
    RECALL_TYP,
    STATUS_TYP,
    RecallInfo,
    StatusInfo,
    check_chain,
    check_text,
    decode_recall,
    decode_status,
    issue_recall,
    issue_status,
    token_sha256,
    verify_recall,
    verify_status,
)

SENDER = nacl.signing.SigningKey(b"s" * 32)
READER = nacl.signing.SigningKey(b"r" * 32)
OTHER = nacl.signing.SigningKey(b"o" * 32)
SENDER_ID = node_id_from_public_key(bytes(SENDER.verify_key))
READER_ID = node_id_from_public_key(bytes(READER.verify_key))
OTHER_ID = node_id_from_public_key(bytes(OTHER.verify_key))
MID = "a" * 32
RECEIPT = "receipt.token.text"
RSHA = hashlib.sha256(RECEIPT.encode("ascii")).hexdigest()
T = "2026-11-25T22:10:00Z"
DROP = object()
STATUS_LIST = ("assigned, completed, in-progress, recall-accepted, recall-refused, registered, "
               "rejected")


def status(**change: Any) -> str:
    fields: dict[str, Any] = dict(message_id=MID, sender=SENDER_ID, recipient=READER_ID,
                                  status="registered", time=T, receipt_sha256=RSHA,
                                  note="ok", register_number="12/VT")
    fields.update(change)
    return issue_status(READER, **fields)


def status_payload(**change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"v": 1, "message_id": MID, "sender": SENDER_ID,
                              "recipient": READER_ID, "status": "registered", "note": "ok",
                              "register_number": "12/VT", "time": T, "receipt_sha256": RSHA}
    fields.update(change)
    return {key: value for key, value in fields.items() if value is not DROP}


def forged_status(key: nacl.signing.SigningKey = READER, kid: str = READER_ID,
                  **change: Any) -> str:
    return jws.sign(key, STATUS_TYP, status_payload(**change), kid=kid)


def refused(error: type[Exception], call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kw)
    assert type(caught.value) is error
    return str(caught.value)


def status_refusal(**change: Any) -> str:
    return refused(MalformedStatus, status, **change)


# -- token_sha256 and check_text ---------------------------------------------------------------

def test_token_sha256_ignores_surrounding_whitespace() -> None:
    assert token_sha256(RECEIPT) == RSHA
    assert token_sha256(" " + RECEIPT + "\n") == RSHA


def test_check_text_limits_are_inclusive_and_worded() -> None:
    assert check_text("x" * 5, "note", 5, MalformedStatus) == "x" * 5
    assert check_text("", "note", 5, MalformedStatus) == ""
    assert refused(MalformedStatus, check_text, "x" * 6, "note", 5, MalformedStatus) == \
        "note must be text of 0 to 5 characters"
    assert refused(MalformedStatus, check_text, 7, "note", 5, MalformedStatus) == \
        "note must be text of 0 to 5 characters"
    assert refused(MalformedRecall, check_text, " \n ", "reason", 5, MalformedRecall,
                   empty=False) == "reason must be text of 1 to 5 characters"
    assert check_text(" x ", "reason", 5, MalformedRecall, empty=False) == " x "


@pytest.mark.parametrize("hidden", ["\r", "\t", "\x00", "\u202e", "\u200b", "\u2028",
                                    "\u2029", "\ud800"])
def test_check_text_refuses_hidden_characters_but_not_a_line_break(hidden: str) -> None:
    assert check_text("a\nb", "note", 10, MalformedStatus) == "a\nb"
    assert refused(MalformedStatus, check_text, "a" + hidden, "note", 10, MalformedStatus) == \
        "note contains control or invisible formatting characters"


def test_check_text_refuses_decomposed_unicode() -> None:
    assert check_text("Thư", "note", 10, MalformedStatus) == "Thư"
    assert refused(MalformedStatus, check_text, "Thu\u031b", "note", 10, MalformedStatus) == \
        "note is not in Unicode NFC"


# -- statuses ----------------------------------------------------------------------------------

def test_an_issued_status_carries_every_field() -> None:
    token = status()
    decoded = jws.decode(token, STATUS_TYP)
    assert decoded.kid == READER_ID
    assert decoded.payload == status_payload()
    info = verify_status(token, READER.verify_key, recipient=READER_ID, sender=SENDER_ID,
                         message_id=MID)
    assert info == StatusInfo(message_id=MID, sender=SENDER_ID, recipient=READER_ID,
                              status="registered", note="ok", register_number="12/VT", time=T,
                              receipt_sha256=RSHA, token=token)
    assert info.version == 1
    assert info.token_sha256 == token_sha256(token)
    assert verify_status(token.encode("ascii"), READER.verify_key) == info
    assert decode_status(token) == info
    check_chain(info, RECEIPT)


def test_issue_checks_the_parties_and_the_signer() -> None:
    assert status_refusal(message_id="A" * 32) == "message_id must be 32 lowercase hex digits"
    assert status_refusal(sender="x").startswith("sender: ")
    assert status_refusal(recipient="x").startswith("recipient: ")
    assert status_refusal(time="now").startswith("time must be RFC 3339 UTC text")
    with pytest.raises(ValueError) as caught:
        status(recipient=OTHER_ID)
    assert str(caught.value) == "identity is not the signing key of node ID recipient"


def test_status_rules_on_issue() -> None:
    assert status_refusal(status="read") == \
        f"unknown status 'read'; expected one of {STATUS_LIST}"
    assert status_refusal(status="rejected", note="") == \
        "note must be text of 1 to 2000 characters"
    assert status_refusal(note="x" * (MAX_NOTE + 1)) == \
        "note must be text of 0 to 2000 characters"
    assert verify_status(status(note="x" * MAX_NOTE), READER.verify_key).note == "x" * MAX_NOTE
    assert status_refusal(register_number=None) == \
        "a 'registered' status needs the incoming-register number"
    assert status_refusal(status="recall-accepted") == \
        "a 'recall-accepted' status carries no register number"
    assert status_refusal(register_number=" ") == \
        "register_number must be text of 1 to 64 characters"
    assert status_refusal(register_number="x" * (MAX_REGISTER_NUMBER + 1)) == \
        "register_number must be text of 1 to 64 characters"
    longest = "x" * MAX_REGISTER_NUMBER
    assert verify_status(status(register_number=longest), READER.verify_key).register_number \
        == longest
    assert status_refusal(status="completed", receipt_sha256=None) == \
        "a 'completed' status must name the receipt it follows"
    assert status_refusal(receipt_sha256="f" * 63) == \
        "receipt_sha256 must be 64 lowercase hex digits"


def test_statuses_without_a_register_number_or_a_receipt() -> None:
    """Only 'registered' needs the number; only 'recall-refused' may lack the receipt."""
    for name in ("assigned", "in-progress", "completed", "recall-accepted"):
        info = verify_status(status(status=name, register_number=None), READER.verify_key)
        assert (info.status, info.register_number) == (name, None)
    refusal = status(status="recall-refused", register_number=None, receipt_sha256=None,
                     note="never received")
    info = verify_status(refusal, READER.verify_key)
    assert info.receipt_sha256 is None
    assert refused(StatusMismatch, check_chain, info, RECEIPT) == \
        f"the 'recall-refused' status of {MID} does not follow the receipt this office gave " \
        "for it"
    with_receipt = verify_status(status(status="recall-refused", register_number=None,
                                        note="too late"), READER.verify_key)
    check_chain(with_receipt, RECEIPT)
    with pytest.raises(StatusMismatch):
        check_chain(with_receipt, RECEIPT + "x")


def test_parse_refuses_a_status_issue_would_not_write() -> None:
    def parse_refusal(**change: Any) -> str:
        return refused(MalformedStatus, verify_status, forged_status(**change),
                       READER.verify_key)

    for version in (2, True, "1"):
        assert parse_refusal(v=version) == \
            f"unsupported status version {version!r}; this node reads v1"
    assert parse_refusal(v=DROP) == "unsupported status version None; this node reads v1"
    assert parse_refusal(extra=1) == "status fields wrong: missing [], unknown ['extra']"
    assert parse_refusal(note=DROP, time=DROP) == \
        "status fields wrong: missing ['note', 'time'], unknown []"
    assert parse_refusal(kid=SENDER_ID) == \
        "the status's kid must be the reporting office's node ID"
    assert parse_refusal(recipient="x").startswith("recipient: ")
    assert parse_refusal(status="read").startswith("unknown status 'read'")
    assert parse_refusal(message_id="a" * 31) == "message_id must be 32 lowercase hex digits"
    assert parse_refusal(sender="x").startswith("sender: ")
    assert parse_refusal(time="2026-02-30T00:00:00Z") == \
        "time '2026-02-30T00:00:00Z' is not a real date and time"
    assert parse_refusal(receipt_sha256=None) == \
        "a 'registered' status must name the receipt it follows"


def test_verify_status_checks_signature_signer_and_each_party() -> None:
    token = status()
    assert refused(StatusBadSignature, verify_status, token, OTHER.verify_key) == \
        "the status's signature does not verify"
    assert refused(StatusBadSignature, verify_status, forged_status(key=OTHER),
                   OTHER.verify_key) == \
        f"the key that signed the status is not the identity of {READER_ID}"
    assert refused(StatusMismatch, verify_status, token, READER.verify_key,
                   recipient=OTHER_ID) == \
        f"the status's recipient is {READER_ID!r}, expected {OTHER_ID!r}"
    assert refused(StatusMismatch, verify_status, token, READER.verify_key,
                   sender=OTHER_ID) == \
        f"the status's sender is {SENDER_ID!r}, expected {OTHER_ID!r}"
    assert refused(StatusMismatch, verify_status, token, READER.verify_key,
                   message_id="b" * 32) == \
        f"the status's message_id is {MID!r}, expected {'b' * 32!r}"


def test_a_token_of_another_kind_or_no_token_is_not_a_status() -> None:
    recall = issue_recall(SENDER, message_id=MID, sender=SENDER_ID, recipients=[READER_ID],
                          reason="r", time=T)
    assert refused(StatusWrongType, verify_status, recall, SENDER.verify_key) == \
        "expected a 'lienthong-status/1' object, got 'lienthong-recall/1'"
    assert refused(StatusWrongType, decode_status, recall) == \
        "expected a 'lienthong-status/1' object, got 'lienthong-recall/1'"
    assert refused(MalformedStatus, verify_status, "a.b", READER.verify_key) == \
        "status: JWS compact serialization has exactly three parts"
    assert refused(MalformedStatus, decode_status, "a.b") == \
        "status: JWS compact serialization has exactly three parts"


def test_decode_status_reads_any_signer_but_checks_the_schema() -> None:
    token = forged_status(key=OTHER)
    assert decode_status(token).token == token
    with pytest.raises(MalformedStatus):
        decode_status(forged_status(key=OTHER, status="read"))


# -- recalls -----------------------------------------------------------------------------------

def recall(**change: Any) -> str:
    fields: dict[str, Any] = dict(message_id=MID, sender=SENDER_ID, recipients=[READER_ID],
                                  reason="sent by mistake", time=T)
    fields.update(change)
    return issue_recall(SENDER, **fields)


def recall_payload(**change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"v": 1, "message_id": MID, "sender": SENDER_ID,
                              "recipients": [READER_ID], "reason": "sent by mistake", "time": T}
    fields.update(change)
    return {key: value for key, value in fields.items() if value is not DROP}


def forged_recall(key: nacl.signing.SigningKey = SENDER, kid: str = SENDER_ID,
                  **change: Any) -> str:
    return jws.sign(key, RECALL_TYP, recall_payload(**change), kid=kid)


def recall_refusal(**change: Any) -> str:
    return refused(MalformedRecall, recall, **change)


def many_ids(count: int) -> list[str]:
    return [node_id_from_public_key(hashlib.sha256(i.to_bytes(4, "big")).digest())
            for i in range(count)]


def test_an_issued_recall_carries_every_field() -> None:
    token = recall(recipients=(READER_ID, OTHER_ID), replaced_by="b" * 32)
    decoded = jws.decode(token, RECALL_TYP)
    assert decoded.kid == SENDER_ID
    assert decoded.payload == recall_payload(recipients=[READER_ID, OTHER_ID],
                                             replaced_by="b" * 32)
    info = verify_recall(token, SENDER.verify_key, sender=SENDER_ID, recipient=OTHER_ID)
    assert info == RecallInfo(message_id=MID, sender=SENDER_ID,
                              recipients=(READER_ID, OTHER_ID), reason="sent by mistake",
                              time=T, replaced_by="b" * 32, token=token)
    assert info.version == 1
    assert info.token_sha256 == token_sha256(token)
    assert decode_recall(token.encode("ascii")) == info
    plain = recall()
    assert "replaced_by" not in jws.decode(plain, RECALL_TYP).payload
    assert verify_recall(plain, SENDER.verify_key).replaced_by is None


def test_recall_rules_on_issue() -> None:
    assert recall_refusal(message_id="x") == "message_id must be 32 lowercase hex digits"
    assert recall_refusal(sender="x").startswith("sender: ")
    with pytest.raises(ValueError) as caught:
        recall(sender=READER_ID)
    assert str(caught.value) == "identity is not the signing key of node ID sender"
    assert recall_refusal(recipients=[]) == "recipients must be a list of 1 to 1000 node IDs"
    assert recall_refusal(recipients=["x"]).startswith("recipient: ")
    assert recall_refusal(recipients=[READER_ID, READER_ID]) == "recipients must not repeat"
    assert recall_refusal(reason=" ") == "reason must be text of 1 to 2000 characters"
    assert recall_refusal(replaced_by="B" * 32) == "replaced_by must be 32 lowercase hex digits"
    assert recall_refusal(replaced_by=MID) == "a document cannot replace itself"
    assert recall_refusal(time="2026-11-25 22:10:00").startswith("time must be RFC 3339")


def test_a_recall_names_at_most_max_recipients() -> None:
    ids = many_ids(MAX_RECIPIENTS + 1)
    token = recall(recipients=ids[:MAX_RECIPIENTS])
    assert len(verify_recall(token, SENDER.verify_key).recipients) == MAX_RECIPIENTS
    assert recall_refusal(recipients=ids) == "recipients must be a list of 1 to 1000 node IDs"


def test_parse_refuses_a_recall_issue_would_not_write() -> None:
    def parse_refusal(**change: Any) -> str:
        return refused(MalformedRecall, verify_recall, forged_recall(**change),
                       SENDER.verify_key)

    for version in (0, True, "1"):
        assert parse_refusal(v=version) == \
            f"unsupported recall version {version!r}; this node reads v1"
    assert parse_refusal(v=DROP) == "unsupported recall version None; this node reads v1"
    assert parse_refusal(extra=1) == "recall fields wrong: missing [], unknown ['extra']"
    assert parse_refusal(reason=DROP) == "recall fields wrong: missing ['reason'], unknown []"
    assert parse_refusal(reason=DROP, extra=1) == \
        "recall fields wrong: missing ['reason'], unknown ['extra']"
    assert parse_refusal(kid=READER_ID) == "the recall's kid must be the sender's node ID"
    assert parse_refusal(sender="x").startswith("sender: ")
    assert parse_refusal(replaced_by=None) == "replaced_by, when present, names a message"
    assert parse_refusal(replaced_by=MID) == "a document cannot replace itself"
    assert parse_refusal(recipients=READER_ID) == \
        "recipients must be a list of 1 to 1000 node IDs"
    assert parse_refusal(recipients={"a": READER_ID}) == \
        "recipients must be a list of 1 to 1000 node IDs"
    assert parse_refusal(time="x").startswith("time must be RFC 3339")
    assert parse_refusal(reason="") == "reason must be text of 1 to 2000 characters"


def test_verify_recall_checks_signature_signer_sender_and_recipient() -> None:
    token = recall()
    assert refused(RecallBadSignature, verify_recall, token, OTHER.verify_key) == \
        "the recall's signature does not verify"
    assert refused(RecallBadSignature, verify_recall, forged_recall(key=OTHER),
                   OTHER.verify_key) == \
        f"the key that signed the recall is not the identity of {SENDER_ID}"
    assert refused(RecallMismatch, verify_recall, token, SENDER.verify_key,
                   sender=OTHER_ID) == f"the recall is signed by {SENDER_ID}, not {OTHER_ID}"
    assert refused(RecallMismatch, verify_recall, token, SENDER.verify_key,
                   recipient=OTHER_ID) == f"{OTHER_ID} is not among the recall's recipients"


def test_a_token_of_another_kind_or_no_token_is_not_a_recall() -> None:
    token = status()
    assert refused(RecallWrongType, verify_recall, token, READER.verify_key) == \
        "expected a 'lienthong-recall/1' object, got 'lienthong-status/1'"
    assert refused(RecallWrongType, decode_recall, token) == \
        "expected a 'lienthong-recall/1' object, got 'lienthong-status/1'"
    assert refused(MalformedRecall, decode_recall, "a.b") == \
        "recall: JWS compact serialization has exactly three parts"


def test_decode_recall_reads_any_signer_but_checks_the_schema() -> None:
    token = forged_recall(key=OTHER)
    assert decode_recall(token).sender == SENDER_ID
    with pytest.raises(MalformedRecall):
        decode_recall(forged_recall(key=OTHER, recipients=[]))


def test_a_status_without_a_note_has_an_empty_one() -> None:
    token = issue_status(READER, message_id=MID, sender=SENDER_ID, recipient=READER_ID,
                         status="completed", time=T, receipt_sha256=RSHA)
    assert jws.decode(token, STATUS_TYP).payload["note"] == ""
    assert verify_status(token, READER.verify_key).register_number is None
