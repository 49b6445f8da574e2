"""Envelopes: a signed header (JWS) that binds a document's metadata to its encrypted payload,
and the v3 signed trailer (the stream itself is sealed and opened by protocol/sealing.py).

Theory of operation
-------------------
An envelope is two things that travel together: the *header token*, a JWS compact token of
type ``lienthong-envelope/1`` signed by the sender's identity key, and the *ciphertext stream*
(protocol/payload.py). The header names the message, the sender, every recipient, the file
name, the plaintext size and SHA-256, the chunk size, the ciphertext size (v1 headers also
its SHA-256; v2, written since issue 6, leaves that out: docs/protocol.md), and the file key
sealed to every recipient and to the sender itself. The sender learns the digest only after
the last byte, so :class:`Sealer` streams the ciphertext out first (or, with
:meth:`Sealer.digest`, only hashes, for a sender that encrypts while sending) and signs at
:meth:`Sealer.finish`.

Version 3 (issue 14) reads differently: the header keeps readable only what routing needs
(version, message ID, sender, recipients, size class, priority) beside the sealed file keys and
one *sealed contents* box (name, creation time, size, chunk size and the free ``meta``
container), encrypted under a key derived from the file key, so only the readers open it
(:func:`open_header`). The header is signed before the first plaintext byte is read, and the
plaintext's size and SHA-256 are bound by a *signed trailer* the sender makes after the last
one: 104 bytes sealed as the stream's final chunk (protocol/payload.py), which the receiver
checks in :meth:`Opener.finish`. So a v3 sender can offer while it still reads and hashes.

A receiver checks in this order (docs/protocol.md, part A): :func:`decode_header` only to learn
who claims to have sent it, :func:`verify_header` with that peer's identity key and the node ID
the connection authenticated, then :class:`Opener` opens its sealed key, decrypts chunk by
chunk, and :meth:`Opener.finish` proves the final tag came exactly at the end and that sizes
and the signed digests match. Plaintext must stay staged until ``finish`` returns.

Everything here is pure: no I/O, time and randomness come from the caller. Every failure on
data from outside raises a :class:`protocol.errors.EnvelopeError` subclass.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import (
    BadSignature,
    BadTrailer,
    DecryptError,
    HeaderWrongType,
    MalformedHeader,
    NotForUs,
    SenderMismatch,
)
from lienthong.protocol.fields import (
    check_hex,
    check_name,
    check_node_id,
    check_size_field,
    check_time,
)
from lienthong.protocol.filekey import SEALED_KEY_BYTES, open_file_key
from lienthong.protocol.layout import check_chunk_size, ciphertext_size

ENVELOPE_TYP = "lienthong-envelope/1"
#: The version this node writes to a peer that reads it (docs/protocol.md: HELLO decides).
#: v2 (2026-11) dropped ``ciphertext_sha256`` from the header; v3 (issue 14) seals all but the
#: routing facts and signs the digest in a trailer. v1 and v2 are still read and v2 written
#: to peers that do not speak v3 yet.
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MAX_KID_CHARS = 128
_FIELDS_V2 = frozenset({"v", "message_id", "sender", "recipients", "created", "name", "size",
                        "sha256", "chunk_size", "ciphertext_size", "keys", "meta"})
_FIELDS_V3 = frozenset({"v", "message_id", "sender", "recipients", "size_class", "priority",
                        "keys", "sealed"})
_FIELDS = {1: _FIELDS_V2 | {"ciphertext_sha256"}, 2: _FIELDS_V2, 3: _FIELDS_V3}
#: The members of v3's sealed contents, exactly (``meta`` is the free container).
_CONTENTS_FIELDS = frozenset({"name", "created", "size", "chunk_size", "meta"})
#: Priorities a v3 header may name (0 flash ... 3 normal, as protocol/events.py's Priority).
PRIORITIES = range(4)

#: v3 size classes: class c holds documents of at most 64 KiB * 16**c bytes (0: up to 64 KiB,
#: 1: 1 MiB, 2: 16 MiB, 3: 256 MiB, 4: 4 GiB, 5: 64 GiB); class 6 is anything larger. Coarse on
#: purpose: enough to schedule by, without naming the size.
SIZE_CLASS_BASE = 64 * 1024
MAX_SIZE_CLASS = 6

#: The signed trailer (v3): size (u64 big-endian) || SHA-256 (32) || Ed25519 signature (64).
TRAILER_BYTES = 8 + 32 + 64
#: What the trailer's signature covers is this prefix, then the header's SHA-256 (32 raw
#: bytes), then the trailer's first 40 bytes (size and SHA-256).
TRAILER_CONTEXT = b"lienthong-trailer/1\x00"
_SIZE = struct.Struct(">Q")
#: The sealed contents: XChaCha20-Poly1305 (IETF) with a random 24-byte nonce under
#: BLAKE2b-256(key = file key, person = CONTENTS_PERSON, data = b""), AD = raw message ID.
CONTENTS_PERSON = b"lienthong-v3-ctt"
NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES    # 24


def size_class(size: int) -> int:
    """The v3 size class of a ``size``-byte document (see :data:`SIZE_CLASS_BASE`)."""
    limit, cls = SIZE_CLASS_BASE, 0
    while size > limit and cls < MAX_SIZE_CLASS:
        limit, cls = limit * 16, cls + 1
    return cls


# -- the header --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SealedKey:
    """The file key sealed to one reader's X25519 key ``kid``."""

    node_id: str
    kid: str
    sealed: bytes


@dataclass(frozen=True, slots=True)
class Contents:
    """What a v3 header seals (v1 and v2 headers carry it readable): the document's facts
    other than routing. ``meta`` is the general container: any JSON object the sending office
    (or a later feature: petitions) puts there, sealed and signed, uninterpreted here."""

    name: str
    created: str
    size: int
    chunk_size: int
    meta: Mapping[str, Any]


class SealedContents(RuntimeError):
    """A v3 header's sealed fields were asked for before :func:`open_header` opened them, or
    its digest before the trailer proved it: a bug in the caller, never a peer's fault."""


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The parsed fields of a header token. Only trust one returned by :func:`verify_header`.

    A v3 header's ``name``, ``created``, ``size``, ``chunk_size``, ``meta`` and
    ``ciphertext_size`` exist once :func:`open_header` (or :class:`Opener`) has opened its
    sealed contents, and its ``sha256`` once the trailer proved it (:meth:`Opener.finish`) or
    the caller restored it from its own records (:meth:`with_digest`); before that they raise
    :class:`SealedContents`.
    """

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    keys: tuple[SealedKey, ...]
    token: str
    version: int
    contents: Contents | None
    digest: str | None              # the plaintext SHA-256 (v1, v2; v3 from the trailer)
    ciphertext_sha256: str | None   # v1 only
    size_class: int | None = None   # v3 only
    priority: int | None = None     # v3 only
    sealed: bytes | None = None     # v3 only: the sealed contents box
    #: The identity key :func:`verify_header` checked the token with (None if only decoded):
    #: what a v3 trailer must be signed with.
    verified_key: bytes | None = None

    def _opened(self) -> Contents:
        if self.contents is None:
            raise SealedContents(f"envelope {self.message_id}'s contents are still sealed")
        return self.contents

    @property
    def name(self) -> str:
        return self._opened().name

    @property
    def created(self) -> str:
        return self._opened().created

    @property
    def size(self) -> int:
        return self._opened().size

    @property
    def chunk_size(self) -> int:
        return self._opened().chunk_size

    @property
    def meta(self) -> Mapping[str, Any]:
        return self._opened().meta

    @property
    def ciphertext_size(self) -> int:
        return ciphertext_size(self.size, self.chunk_size, self.trailer_bytes)

    @property
    def trailer_bytes(self) -> int:
        """Length of the signed trailer chunk at the end of the stream (0: none, v1 and v2)."""
        return TRAILER_BYTES if self.version >= 3 else 0

    @property
    def sha256(self) -> str:
        if self.digest is None:
            raise SealedContents(f"envelope {self.message_id}'s digest is only known from its "
                                 "trailer")
        return self.digest

    @property
    def opened(self) -> bool:
        return self.contents is not None

    def with_digest(self, sha256: str) -> EnvelopeHeader:
        """This header with its (v3: trailer-proven) digest, e.g. restored from the node's own
        record of a document it already verified."""
        return replace(self, digest=check_hex(sha256, "sha256", 64))

    @property
    def header_sha256(self) -> str:
        """SHA-256 (hex) of the token's ASCII bytes: what receipts name the header by."""
        return hashlib.sha256(self.token.encode("ascii")).hexdigest()

    def key_for(self, node_id: str) -> SealedKey | None:
        return next((k for k in self.keys if k.node_id == node_id), None)


def check_kid(kid: object, node_id: str) -> str:
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
        raise MalformedHeader(f"keys[{node_id}].kid must be 1..{MAX_KID_CHARS} characters")
    return kid


def _parse_keys(value: object, readers: set[str]) -> tuple[SealedKey, ...]:
    if not isinstance(value, dict) or set(value) != readers:
        raise MalformedHeader("keys must hold one sealed key for the sender and each recipient, "
                              "and no others")
    out = []
    for node_id in sorted(value):
        entry = value[node_id]
        if not isinstance(entry, dict) or set(entry) != {"kid", "sealed"}:
            raise MalformedHeader(f"keys[{node_id}] must have exactly 'kid' and 'sealed'")
        kid = check_kid(entry["kid"], node_id)
        try:
            sealed = jws.b64url_decode(entry["sealed"])
        except key_errors.MalformedToken as exc:
            raise MalformedHeader(f"keys[{node_id}].sealed: {exc}") from exc
        if len(sealed) != SEALED_KEY_BYTES:
            raise MalformedHeader(f"keys[{node_id}].sealed must be {SEALED_KEY_BYTES} bytes")
        out.append(SealedKey(node_id=node_id, kid=kid, sealed=sealed))
    return tuple(out)


def _parse(decoded: jws.Decoded) -> EnvelopeHeader:
    """Check every field of a decoded header token against its version's schema."""
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] not in READABLE_VERSIONS:
        raise MalformedHeader(f"unsupported envelope version {p.get('v')!r}; this node reads "
                              "v1, v2 and v3")
    version = p["v"]
    fields = _FIELDS[version]
    if set(p) != fields:
        missing, extra = sorted(fields - set(p)), sorted(set(p) - fields)
        raise MalformedHeader(f"header fields wrong: missing {missing}, unknown {extra}")
    sender = check_node_id(p["sender"], "sender")
    if decoded.kid != sender:
        raise MalformedHeader("the token's kid must be the sender's node ID")
    recipients = p["recipients"]
    if not isinstance(recipients, list) or not recipients:
        raise MalformedHeader("recipients must be a non-empty list")
    recipients = tuple(check_node_id(r, "recipient") for r in recipients)
    if len(set(recipients)) != len(recipients):
        raise MalformedHeader("recipients must not repeat")
    message_id = check_hex(p["message_id"], "message_id", 32)
    keys = _parse_keys(p["keys"], set(recipients) | {sender})
    if version >= 3:
        return _parse_v3(p, decoded, message_id, sender, recipients, keys)
    size = check_size_field(p["size"], "size")
    try:
        chunk_size = check_chunk_size(p["chunk_size"])
    except ValueError as exc:
        raise MalformedHeader(str(exc)) from exc
    if (type(p["ciphertext_size"]) is not int
            or p["ciphertext_size"] != ciphertext_size(size, chunk_size)):
        raise MalformedHeader("ciphertext_size does not follow from size and chunk_size")
    if not isinstance(p["meta"], dict):
        raise MalformedHeader("meta must be a JSON object")
    return EnvelopeHeader(
        message_id=message_id, sender=sender, recipients=recipients, keys=keys,
        contents=Contents(name=check_name(p["name"]),
                          created=check_time(p["created"], "created"), size=size,
                          chunk_size=chunk_size, meta=MappingProxyType(p["meta"])),
        digest=check_hex(p["sha256"], "sha256", 64),
        ciphertext_sha256=(check_hex(p["ciphertext_sha256"], "ciphertext_sha256", 64)
                           if version == 1 else None),
        token=decoded.token, version=version)


def _parse_v3(p: Mapping[str, Any], decoded: jws.Decoded, message_id: str, sender: str,
              recipients: tuple[str, ...], keys: tuple[SealedKey, ...]) -> EnvelopeHeader:
    cls = p["size_class"]
    if type(cls) is not int or not 0 <= cls <= MAX_SIZE_CLASS:
        raise MalformedHeader(f"size_class must be an integer from 0 to {MAX_SIZE_CLASS}")
    priority = p["priority"]
    if type(priority) is not int or priority not in PRIORITIES:
        raise MalformedHeader("priority must be an integer from 0 to 3")
    try:
        sealed = jws.b64url_decode(p["sealed"])
    except (key_errors.MalformedToken, TypeError, AttributeError) as exc:
        raise MalformedHeader(f"sealed: {exc}") from exc
    if len(sealed) < NONCE_BYTES + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES:
        raise MalformedHeader("sealed is too short to hold a nonce and a tag")
    return EnvelopeHeader(
        message_id=message_id, sender=sender, recipients=recipients, keys=keys,
        contents=None, digest=None, ciphertext_sha256=None, token=decoded.token, version=3,
        size_class=cls, priority=priority, sealed=sealed)


def contents_key(file_key: bytes) -> bytes:
    """The key v3 seals a header's contents with, derived from the document's file key (never
    the file key itself, which secretstream uses)."""
    return hashlib.blake2b(b"", key=file_key, digest_size=32, person=CONTENTS_PERSON).digest()


def seal_contents(contents: Mapping[str, Any], file_key: bytes, message_id: str,
                   nonce: bytes) -> bytes:
    box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        jws.canonical_json(dict(contents)), bytes.fromhex(message_id), nonce,
        contents_key(file_key))
    return nonce + box


def open_contents(header: EnvelopeHeader, file_key: bytes) -> Contents:
    sealed = header.sealed
    if sealed is None:
        raise MalformedHeader("the header has no sealed contents")
    try:
        plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[NONCE_BYTES:], bytes.fromhex(header.message_id), sealed[:NONCE_BYTES],
            contents_key(file_key))
    except nacl.exceptions.CryptoError as exc:
        raise DecryptError("the header's sealed contents do not open with its file key") from exc
    try:
        c = jws.strict_json_object(plain)
    except key_errors.MalformedToken as exc:
        raise MalformedHeader(f"sealed contents: {exc}") from exc
    if set(c) != _CONTENTS_FIELDS:
        missing, extra = sorted(_CONTENTS_FIELDS - set(c)), sorted(set(c) - _CONTENTS_FIELDS)
        raise MalformedHeader(f"sealed contents wrong: missing {missing}, unknown {extra}")
    size = check_size_field(c["size"], "size")
    try:
        chunk_size = check_chunk_size(c["chunk_size"])
    except ValueError as exc:
        raise MalformedHeader(str(exc)) from exc
    if not isinstance(c["meta"], dict):
        raise MalformedHeader("meta must be a JSON object")
    if size_class(size) != header.size_class:
        raise MalformedHeader(f"size_class {header.size_class} does not fit the sealed size "
                              f"({size_class(size)} would)")
    return Contents(name=check_name(c["name"]), created=check_time(c["created"], "created"),
                    size=size, chunk_size=chunk_size, meta=MappingProxyType(c["meta"]))


def reader_file_key(header: EnvelopeHeader, node_id: str,
                     encryption_keys: Mapping[str, nacl.public.PrivateKey]) -> bytes:
    entry = header.key_for(node_id)
    if entry is None:
        raise NotForUs(f"message {header.message_id} holds no sealed key for {node_id}")
    private = encryption_keys.get(entry.kid)
    if private is None:
        raise NotForUs(f"message {header.message_id} is sealed to our encryption key "
                       f"{entry.kid!r}, which this node does not hold")
    return open_file_key(entry.sealed, private.public_key.encode(), private.encode())


def open_header(header: EnvelopeHeader, *, node_id: str,
                encryption_keys: Mapping[str, nacl.public.PrivateKey]) -> EnvelopeHeader:
    """``header`` with its sealed contents opened by reader ``node_id`` (v3); a v1 or v2 header,
    or one already opened, is returned as it is. Raises NotForUs, DecryptError or
    MalformedHeader (contents that do not fit the signed routing part)."""
    return open_header_key(header, node_id=node_id, encryption_keys=encryption_keys)[0]


def open_header_key(header: EnvelopeHeader, *, node_id: str,
                    encryption_keys: Mapping[str, nacl.public.PrivateKey],
                    ) -> tuple[EnvelopeHeader, bytes | None]:
    """:func:`open_header`, and the file key it opened the contents with (None when it opened
    nothing: a v1 or v2 header, or one already opened). A reader that goes on to decrypt the
    payload passes the key to :class:`protocol.sealing.Opener` instead of opening it a second
    time (an X25519 operation each). The key is a secret: keep it in memory only."""
    if header.contents is not None:
        return header, None
    file_key = reader_file_key(header, node_id, encryption_keys)
    return replace(header, contents=open_contents(header, file_key)), file_key


def trailer_message(header_sha256: str, size: int, sha256: str) -> bytes:
    """What a v3 trailer's signature covers (see :data:`TRAILER_CONTEXT`)."""
    return (TRAILER_CONTEXT + bytes.fromhex(header_sha256) + _SIZE.pack(size)
            + bytes.fromhex(sha256))


def sign_trailer(identity: nacl.signing.SigningKey, header_sha256: str, size: int,
                 sha256: str) -> bytes:
    """The 104-byte signed trailer of a v3 envelope: size, SHA-256, signature."""
    message = trailer_message(header_sha256, size, sha256)
    return message[len(TRAILER_CONTEXT) + 32:] + identity.sign(message).signature


def check_trailer(header: EnvelopeHeader, trailer: bytes | None) -> tuple[int, str]:
    """Verify a v3 trailer against ``header`` (verified: its ``verified_key``); return the
    size and SHA-256 it signs. BadTrailer if it is missing, malformed, or not the sender's
    signature over this very header."""
    if trailer is None or len(trailer) != TRAILER_BYTES:
        raise BadTrailer(f"the stream of {header.message_id} ends without a signed trailer")
    if header.verified_key is None:
        raise BadTrailer("the header was not verified, so its trailer cannot be")
    size, sha256 = _SIZE.unpack(trailer[:8])[0], trailer[8:40].hex()
    try:
        nacl.signing.VerifyKey(header.verified_key).verify(
            trailer_message(header.header_sha256, size, sha256), trailer[40:])
    except nacl.exceptions.BadSignatureError as exc:
        raise BadTrailer(f"the trailer of {header.message_id} is not the sender's signature "
                         "over this envelope header (altered, or from another document)") from exc
    return size, sha256


def _decode(token: str | bytes) -> jws.Decoded:
    try:
        return jws.decode(token, ENVELOPE_TYP)
    except key_errors.WrongType as exc:
        raise HeaderWrongType(str(exc)) from exc
    except key_errors.MalformedToken as exc:
        raise MalformedHeader(f"envelope header: {exc}") from exc


def decode_header(token: str | bytes) -> EnvelopeHeader:
    """Parse and check the structure of a header WITHOUT checking its signature.

    Use it only to find out which peer's key to verify with; act on nothing else in it.
    """
    return _parse(_decode(token))


def verify_header(token: str | bytes, sender_verify_key: nacl.signing.VerifyKey, *,
                  expected_sender: str | None = None) -> EnvelopeHeader:
    """Check type, signature, schema and sender of a header token; return its fields.

    ``sender_verify_key`` is the claimed sender's identity key from the peer directory; it must
    hash to the sender's node ID. ``expected_sender`` is the node ID the connection
    authenticated; a header signed by anyone else raises SenderMismatch.
    """
    decoded = _decode(token)
    try:
        jws.verify_decoded(decoded, sender_verify_key)
    except key_errors.BadSignature as exc:
        raise BadSignature("the envelope header's signature does not verify") from exc
    header = _parse(decoded)
    if node_id_from_public_key(sender_verify_key.encode()) != header.sender:
        raise BadSignature(f"the key that signed the header is not the identity of sender "
                           f"{header.sender}")
    if expected_sender is not None and header.sender != expected_sender:
        raise SenderMismatch(f"the header is signed by {header.sender}, but the connection "
                             f"authenticated {expected_sender}")
    return replace(header, verified_key=sender_verify_key.encode())
