"""A receiving office's signed refusal of a document offered to it.

Theory of operation
-------------------
A REJECT frame tells the sending node, over its TLS connection, that an offer was refused;
nothing signed remains of it. When a receiver refuses a document because *its own policy*
does not allow it (a citizens' petition from an office not allowed for petitions,
docs/petitions.md §3), it also signs a **refusal**: a JWS compact token of type
``lienthong-refusal/1`` signed by the refusing office's identity key, naming the message,
its sender, the refusing office (``recipient``), a stable ``code``, a ``reason`` and the
SHA-256 of the envelope header token that was offered (``header_sha256``). The sender keeps
it beside its record of the document: a proof, checkable later with any JOSE library, that
this office refused that very envelope, and why.

The ``typ`` separates the domain from receipts, statuses and recalls. Pure: time is passed in.
Verification raises :class:`protocol.errors.RefusalError`, never returns a bool.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import nacl.signing

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import RefusalError
from lienthong.protocol.fields import check_hex, check_node_id, check_time
from lienthong.protocol.status import check_text, token_sha256

REFUSAL_TYP = "lienthong-refusal/1"
VERSION = 1
MAX_REASON = 2000
_FIELDS = frozenset({"v", "message_id", "sender", "recipient", "code", "reason", "time",
                     "header_sha256"})
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True, slots=True)
class RefusalInfo:
    """The fields of a refusal. Only trust one returned by :func:`verify_refusal`."""

    message_id: str
    sender: str
    recipient: str
    code: str
    reason: str
    time: str
    header_sha256: str
    token: str

    @property
    def token_sha256(self) -> str:
        return token_sha256(self.token)


def _check(code: object, reason: object) -> None:
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise RefusalError("code must be 1 to 64 characters of a-z, 0-9 and '-'")
    check_text(reason, "reason", MAX_REASON, RefusalError, empty=False)


def issue_refusal(identity: nacl.signing.SigningKey, *, message_id: str, sender: str,
                  recipient: str, code: str, reason: str, time: str,
                  header_token: str) -> str:
    """Sign, as ``recipient``, the refusal of the envelope ``header_token`` from ``sender``."""
    check_hex(message_id, "message_id", 32, RefusalError)
    check_node_id(sender, "sender", RefusalError)
    check_node_id(recipient, "recipient", RefusalError)
    if node_id_from_public_key(identity.verify_key.encode()) != recipient:
        raise ValueError("identity is not the signing key of node ID recipient")
    _check(code, reason)
    check_time(time, "time", RefusalError)
    payload = {"v": VERSION, "message_id": message_id, "sender": sender,
               "recipient": recipient, "code": code, "reason": reason, "time": time,
               "header_sha256": token_sha256(header_token)}
    return jws.sign(identity, REFUSAL_TYP, payload, kid=recipient)


def _parse(decoded: jws.Decoded) -> RefusalInfo:
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] != VERSION:
        raise RefusalError(f"unsupported refusal version {p.get('v')!r}; this node reads v1")
    if set(p) != _FIELDS:
        raise RefusalError(f"refusal fields wrong: missing {sorted(_FIELDS - set(p))}, "
                           f"unknown {sorted(set(p) - _FIELDS)}")
    recipient = check_node_id(p["recipient"], "recipient", RefusalError)
    if decoded.kid != recipient:
        raise RefusalError("the refusal's kid must be the refusing office's node ID")
    _check(p["code"], p["reason"])
    return RefusalInfo(
        message_id=check_hex(p["message_id"], "message_id", 32, RefusalError),
        sender=check_node_id(p["sender"], "sender", RefusalError), recipient=recipient,
        code=p["code"], reason=p["reason"], time=check_time(p["time"], "time", RefusalError),
        header_sha256=check_hex(p["header_sha256"], "header_sha256", 64, RefusalError),
        token=decoded.token)


def verify_refusal(token: str | bytes, recipient_verify_key: nacl.signing.VerifyKey, *,
                   recipient: str, sender: str, header_token: str) -> RefusalInfo:
    """Check a refusal's type, signature and schema; that ``recipient`` signed it, about
    a document from ``sender``, refusing exactly ``header_token``."""
    try:
        decoded = jws.decode(token, REFUSAL_TYP)
        jws.verify_decoded(decoded, recipient_verify_key)
    except key_errors.BadSignature as exc:
        raise RefusalError("the refusal's signature does not verify") from exc
    except (key_errors.WrongType, key_errors.MalformedToken) as exc:
        raise RefusalError(f"refusal: {exc}") from exc
    info = _parse(decoded)
    if node_id_from_public_key(recipient_verify_key.encode()) != info.recipient:
        raise RefusalError(f"the key that signed the refusal is not the identity of "
                           f"{info.recipient}")
    for field, want in (("recipient", recipient), ("sender", sender),
                        ("header_sha256", token_sha256(header_token))):
        if getattr(info, field) != want:
            raise RefusalError(f"the refusal's {field} is {getattr(info, field)!r}, "
                               f"expected {want!r}")
    return info
