"""The signed refusal of an offered document (lienthong-refusal/1): it verifies only for the
refusing office's key, about that sender and that very envelope."""
from __future__ import annotations

import nacl.signing
import pytest

from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import RefusalError
from lienthong.protocol.refusal import issue_refusal, verify_refusal

RECEIVER = nacl.signing.SigningKey(bytes(range(32)))
SENDER = nacl.signing.SigningKey(bytes(range(1, 33)))
R_ID = node_id_from_public_key(RECEIVER.verify_key.encode())
S_ID = node_id_from_public_key(SENDER.verify_key.encode())
HEADER = "eyJhbGciOiJFZERTQSJ9.eyJ4IjoxfQ.c2ln"
MID = "ab" * 16


def refusal(**changes: str) -> str:
    fields = {"message_id": MID, "sender": S_ID, "recipient": R_ID,
              "code": "petition-not-allowed", "reason": "không nhận đơn từ hdnd",
              "time": "2026-12-07T08:00:00Z", "header_token": HEADER}
    fields.update(changes)
    return issue_refusal(RECEIVER, **fields)


def test_a_refusal_verifies_for_the_refusing_office_and_that_envelope() -> None:
    info = verify_refusal(refusal(), RECEIVER.verify_key, recipient=R_ID, sender=S_ID,
                          header_token=HEADER)
    assert (info.code, info.reason, info.message_id) == ("petition-not-allowed",
                                                         "không nhận đơn từ hdnd", MID)
    assert jws.decode(info.token, "lienthong-refusal/1").kid == R_ID


@pytest.mark.parametrize(("key", "kwargs", "match"), [
    (SENDER.verify_key, {}, "signature"),
    (RECEIVER.verify_key, {"header_token": HEADER + "x"}, "header_sha256"),
    (RECEIVER.verify_key, {"sender": R_ID}, "sender"),
])
def test_another_key_sender_or_envelope_is_refused(key: nacl.signing.VerifyKey,
                                                   kwargs: dict[str, str], match: str) -> None:
    wanted = {"recipient": R_ID, "sender": S_ID, "header_token": HEADER, **kwargs}
    with pytest.raises(RefusalError, match=match):
        verify_refusal(refusal(), key, **wanted)


def test_a_status_token_is_not_a_refusal_and_bad_fields_are_not_signed() -> None:
    other = jws.sign(RECEIVER, "lienthong-status/1", {"v": 1}, kid=R_ID)
    with pytest.raises(RefusalError, match="refusal"):
        verify_refusal(other, RECEIVER.verify_key, recipient=R_ID, sender=S_ID,
                       header_token=HEADER)
    with pytest.raises(RefusalError, match="code"):
        refusal(code="Not A Code")
    with pytest.raises(RefusalError, match="reason"):
        refusal(reason="bad\u202ereason")
    with pytest.raises(ValueError, match="signing key"):
        issue_refusal(SENDER, message_id=MID, sender=S_ID, recipient=R_ID, code="x",
                      reason="y", time="2026-12-07T08:00:00Z", header_token=HEADER)
