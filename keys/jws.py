"""JWS compact serialization (RFC 7515) with EdDSA/Ed25519 (RFC 8037), and nothing else.

Every small signed object in lienthong (receipts, envelope headers, peer cards, key bindings,
processing statuses) is one of these tokens. Two reasons:

* an auditor can verify any of them with a standard JOSE library and the signer's public key,
  without lienthong;
* the signature covers the exact bytes that travel (``b64(header) "." b64(payload)``), never a
  re-encoding, and the protected header carries a ``typ`` naming the kind of object, so a
  signature made for one kind can never be accepted as another (domain separation).

There is no algorithm negotiation: ``alg`` must be ``EdDSA`` and ``typ`` must be the one the
caller asks for.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from lienthong.keys.errors import BadSignature, MalformedToken, WrongType

#: Tokens longer than this are refused before any decoding (a card with many addresses or a
#: header with hundreds of recipients is still far below it).
MAX_TOKEN_BYTES = 1024 * 1024


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly: no padding, no stray characters."""
    if not isinstance(text, str) or "=" in text:
        raise MalformedToken("base64url text must be unpadded")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise MalformedToken("base64url text must be ASCII") from exc
    padded = raw + b"=" * (-len(raw) % 4)
    try:
        out = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken(f"not base64url: {exc}") from exc
    if b64url_encode(out) != text:
        raise MalformedToken("non-canonical base64url")
    return out


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """The one JSON encoding we sign: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedToken(f"duplicate JSON member {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise MalformedToken(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    # json.loads turns an overflowing literal such as 1e999 into inf without consulting
    # parse_constant; refuse it here so "no NaN/Infinity" holds for every spelling.
    value = float(text)
    if math.isinf(value) or math.isnan(value):
        raise MalformedToken(f"JSON number {text} is out of range")
    return value


def strict_json_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object, refusing duplicate keys and NaN/Infinity."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_reject_duplicates,
                           parse_constant=_reject_constant, parse_float=_finite_float)
    except MalformedToken:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedToken("JSON value must be an object")
    return value


@dataclass(frozen=True, slots=True)
class Decoded:
    """A parsed but not yet verified token. Never act on ``payload`` before ``verify``."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes
    token: str

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def sign(signing_key: nacl.signing.SigningKey, typ: str, payload: Mapping[str, Any],
         kid: str) -> str:
    """Return a JWS compact token of kind ``typ`` over ``payload``, signed by ``signing_key``."""
    header = {"alg": "EdDSA", "kid": kid, "typ": typ}
    signing_input = (b64url_encode(canonical_json(header)) + "." +
                     b64url_encode(canonical_json(payload))).encode("ascii")
    signature = signing_key.sign(signing_input).signature
    return signing_input.decode("ascii") + "." + b64url_encode(signature)


def decode(token: str | bytes, expected_typ: str) -> Decoded:
    """Parse ``token`` and check its header, without checking the signature yet."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedToken("token must be ASCII") from exc
    if not isinstance(token, str):
        raise MalformedToken("token must be text")
    token = token.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedToken(f"token longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken("JWS compact serialization has exactly three parts")
    header = strict_json_object(b64url_decode(parts[0]))
    if header.get("alg") != "EdDSA":
        raise MalformedToken(f"unsupported alg {header.get('alg')!r}; only EdDSA is accepted")
    if "crit" in header:
        raise MalformedToken("critical header parameters are not supported")
    if header.get("typ") != expected_typ:
        raise WrongType(f"expected a {expected_typ!r} object, got {header.get('typ')!r}")
    payload = strict_json_object(b64url_decode(parts[1]))
    signature = b64url_decode(parts[2])
    if len(signature) != 64:
        raise MalformedToken("an Ed25519 signature is 64 bytes")
    return Decoded(header=header, payload=payload,
                   signing_input=(parts[0] + "." + parts[1]).encode("ascii"),
                   signature=signature, token=token)


def verify_decoded(decoded: Decoded, verify_key: nacl.signing.VerifyKey) -> dict[str, Any]:
    """Check the signature of an already decoded token; return its payload."""
    try:
        verify_key.verify(decoded.signing_input, decoded.signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise BadSignature(f"{decoded.header.get('typ')} signature does not verify") from exc
    return decoded.payload


def verify(token: str | bytes, verify_key: nacl.signing.VerifyKey,
           expected_typ: str) -> dict[str, Any]:
    """Decode, check ``typ`` and verify the signature; return the payload."""
    return verify_decoded(decode(token, expected_typ), verify_key)
