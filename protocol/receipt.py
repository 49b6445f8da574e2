"""Receipts: the recipient's signed statement that it holds a document, durably and verified.

Theory of operation
-------------------
A receipt is a JWS compact token of type ``lienthong-receipt/1`` (EdDSA, RFC 8037) signed by the
recipient's identity key, with the recipient's node ID as ``kid``. Its payload names the
message, both parties, the document's SHA-256 and size, a status, the recipient's clock, and
the SHA-256 of the exact envelope header token it answers, so one receipt can never be taken for
another message, another version of the same message or another recipient. Because it is plain
JWS, an auditor can check it with any JOSE library and the recipient's public key alone
(tests/protocol/test_receipt.py does so with joserfc).

The node issues a receipt only after the document is verified and durably stored
(docs/reliability.md §1.2); this module only builds and checks the token. Time is passed
in, never read.
"""
from __future__ import annotations

from dataclasses import dataclass

import nacl.signing

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import (
    MalformedReceipt,
    ReceiptBadSignature,
    ReceiptMismatch,
    ReceiptWrongType,
)
from lienthong.protocol.fields import check_hex, check_node_id, check_size_field, check_time

RECEIPT_TYP = "lienthong-receipt/1"
VERSION = 1
#: v1 knows one status. A refusal is not a receipt: it travels as a protocol REJECT.
STATUSES = frozenset({"delivered"})
_FIELDS = frozenset({"v", "message_id", "sender", "recipient", "sha256", "size", "status",
                     "time", "header_sha256"})


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    """The fields of a receipt token. Only trust one returned by :func:`verify_receipt`."""

    message_id: str
    sender: str
    recipient: str
    sha256: str
    size: int
    status: str
    time: str
    header_sha256: str
    token: str
    version: int = VERSION


def _payload(header: EnvelopeHeader, recipient: str, time: str, status: str) -> dict[str, object]:
    return {"v": VERSION, "message_id": header.message_id, "sender": header.sender,
            "recipient": recipient, "sha256": header.sha256, "size": header.size,
            "status": status, "time": time, "header_sha256": header.header_sha256}


def issue_receipt(identity: nacl.signing.SigningKey, *, recipient: str, header: EnvelopeHeader,
                  time: str, status: str = "delivered") -> str:
    """Sign a receipt for ``header`` as ``recipient`` (whose identity key is ``identity``).

    Call only once the document is verified and durable. The token is deterministic for given
    inputs (Ed25519 is), so re-issuing for a duplicate gives identical bytes; still, store and
    resend the first one.
    """
    check_node_id(recipient, "recipient", MalformedReceipt)
    if node_id_from_public_key(identity.verify_key.encode()) != recipient:
        raise ValueError("identity is not the signing key of node ID recipient")
    if recipient not in header.recipients:
        raise ReceiptMismatch(f"{recipient} is not a recipient of message {header.message_id}")
    if status not in STATUSES:
        raise MalformedReceipt(f"unknown receipt status {status!r}")
    check_time(time, "time", MalformedReceipt)
    return jws.sign(identity, RECEIPT_TYP, _payload(header, recipient, time, status),
                    kid=recipient)


def _decode(token: str | bytes) -> jws.Decoded:
    try:
        return jws.decode(token, RECEIPT_TYP)
    except key_errors.WrongType as exc:
        raise ReceiptWrongType(str(exc)) from exc
    except key_errors.MalformedToken as exc:
        raise MalformedReceipt(f"receipt: {exc}") from exc


def _parse(decoded: jws.Decoded) -> ReceiptInfo:
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] != VERSION:
        raise MalformedReceipt(f"unsupported receipt version {p.get('v')!r}; this node reads v1")
    if set(p) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(p)), sorted(set(p) - _FIELDS)
        raise MalformedReceipt(f"receipt fields wrong: missing {missing}, unknown {extra}")
    recipient = check_node_id(p["recipient"], "recipient", MalformedReceipt)
    if decoded.kid != recipient:
        raise MalformedReceipt("the receipt's kid must be the recipient's node ID")
    if p["status"] not in STATUSES:
        raise MalformedReceipt(f"unknown receipt status {p['status']!r}")
    return ReceiptInfo(
        message_id=check_hex(p["message_id"], "message_id", 32, MalformedReceipt),
        sender=check_node_id(p["sender"], "sender", MalformedReceipt),
        recipient=recipient,
        sha256=check_hex(p["sha256"], "sha256", 64, MalformedReceipt),
        size=check_size_field(p["size"], "size", MalformedReceipt),
        status=p["status"], time=check_time(p["time"], "time", MalformedReceipt),
        header_sha256=check_hex(p["header_sha256"], "header_sha256", 64, MalformedReceipt),
        token=decoded.token)


def decode_receipt(token: str | bytes) -> ReceiptInfo:
    """Parse a receipt for display WITHOUT checking its signature; act on nothing in it."""
    return _parse(_decode(token))


def verify_receipt(token: str | bytes, recipient_verify_key: nacl.signing.VerifyKey, *,
                   expected: EnvelopeHeader | None = None,
                   recipient: str | None = None, sha256: str | None = None,
                   size: int | None = None) -> ReceiptInfo:
    """Check a receipt's type, signature and schema, and that it answers what we sent.

    ``recipient_verify_key`` must be the identity key of the node the receipt names (it must
    hash to that node ID). With ``expected`` (the header we sent), every field that identifies
    the message must match it; with ``recipient``, the receipt must come from that node. A v3
    header read back from a token names neither the document's SHA-256 (its trailer did) nor
    its size (sealed): the caller gives them as ``sha256`` and ``size`` from its own record
    of what it sealed, and the receipt must name those.
    """
    decoded = _decode(token)
    try:
        jws.verify_decoded(decoded, recipient_verify_key)
    except key_errors.BadSignature as exc:
        raise ReceiptBadSignature("the receipt's signature does not verify") from exc
    info = _parse(decoded)
    if node_id_from_public_key(recipient_verify_key.encode()) != info.recipient:
        raise ReceiptBadSignature(f"the key that signed the receipt is not the identity of "
                                  f"{info.recipient}")
    if recipient is not None and info.recipient != recipient:
        raise ReceiptMismatch(f"the receipt comes from {info.recipient}, not {recipient}")
    if expected is not None:
        if info.recipient not in expected.recipients:
            raise ReceiptMismatch(f"{info.recipient} is not a recipient of message "
                                  f"{expected.message_id}")
        wanted = {"message_id": expected.message_id, "sender": expected.sender,
                  "header_sha256": expected.header_sha256,
                  "sha256": expected.digest if expected.digest is not None else sha256,
                  "size": expected.size if expected.opened else size}
        for field, want in wanted.items():
            if want is None:
                raise ValueError(f"the {field} the receipt must name is not known: give it")
            got = getattr(info, field)
            if got != want:
                raise ReceiptMismatch(f"the receipt's {field} is {got!r}, but we sent {want!r}")
    return info
