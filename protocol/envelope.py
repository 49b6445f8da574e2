"""Envelopes: a signed header (JWS) that binds a document's metadata to its encrypted payload.

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
import unicodedata
from collections.abc import Callable, Mapping
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
    DigestMismatch,
    EnvelopeError,
    HeaderWrongType,
    MalformedHeader,
    NotForUs,
    SenderMismatch,
    SizeMismatch,
)
from lienthong.protocol.fields import (
    check_hex,
    check_name,
    check_node_id,
    check_size_field,
    check_time,
)
from lienthong.protocol.filekey import KEY_BYTES, SEALED_KEY_BYTES, open_file_key, seal_file_key
from lienthong.protocol.layout import DEFAULT_CHUNK_SIZE, check_chunk_size, ciphertext_size
from lienthong.protocol.payload import (
    Digest,
    PayloadDecryptor,
    PayloadEncryptor,
    PayloadSummary,
)

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


def _check_kid(kid: object, node_id: str) -> str:
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
        kid = _check_kid(entry["kid"], node_id)
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


def _seal_contents(contents: Mapping[str, Any], file_key: bytes, message_id: str,
                   nonce: bytes) -> bytes:
    box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        jws.canonical_json(dict(contents)), bytes.fromhex(message_id), nonce,
        contents_key(file_key))
    return nonce + box


def _open_contents(header: EnvelopeHeader, file_key: bytes) -> Contents:
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


def _reader_file_key(header: EnvelopeHeader, node_id: str,
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
    if header.contents is not None:
        return header
    return replace(header, contents=_open_contents(
        header, _reader_file_key(header, node_id, encryption_keys)))


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


# -- sealing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """A finished envelope. ``tail`` is ciphertext ``feed`` had not yet returned (usually b"";
    v3: the trailer chunk; for an empty document never fed, the whole stream): append it to
    the ciphertext. ``trailer`` is the v3 signed trailer (None before v3), for a sender that
    re-creates the ciphertext later (node/spool/sealing.py)."""

    header_token: str
    header: EnvelopeHeader
    tail: bytes
    trailer: bytes | None = None


class Sealer:
    """Encrypt one document as it is read and sign at the end: the whole header (v1, v2), or
    the trailer (v3, whose header is signed at once: :attr:`header_token`).

    ``plaintext_digest`` is the SHA-256 object the document is hashed with (default
    ``hashlib.sha256()``); the node passes one that hashes on another thread (node/core/hashing.py).
    ``priority`` (0 flash .. 3 normal) is readable in a v3 header; earlier versions ignore it.
    ``version`` is the caller's choice (2 unless told: the one every peer reads); the node
    writes 3 to peers whose HELLO said they read it (docs/protocol.md, Part B §5).
    """

    def __init__(self, *, identity: nacl.signing.SigningKey, sender: str,
                 sender_key: tuple[str, nacl.public.PublicKey],
                 recipients: Mapping[str, tuple[str, nacl.public.PublicKey]],
                 name: str, size: int, message_id: str, created: str,
                 meta: Mapping[str, Any] | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 random_bytes: Callable[[int], bytes] = nacl.utils.random,
                 version: int = 2, plaintext_digest: Digest | None = None,
                 priority: int = 3) -> None:
        if type(version) is not int or version not in READABLE_VERSIONS:   # True == 1
            raise ValueError(f"cannot write envelope version {version!r}")
        check_node_id(sender, "sender")
        if node_id_from_public_key(identity.verify_key.encode()) != sender:
            raise ValueError("identity is not the signing key of node ID sender")
        if not recipients:
            raise MalformedHeader("an envelope needs at least one recipient")
        if type(priority) is not int or priority not in PRIORITIES:
            raise MalformedHeader("priority must be an integer from 0 to 3")
        readers = dict(recipients)
        for node_id, (kid, _public) in readers.items():
            check_node_id(node_id, "recipient")
            _check_kid(kid, node_id)
        if sender in readers and readers[sender] != sender_key:
            raise ValueError("the sender is a recipient with a different encryption key")
        readers[sender] = sender_key
        _check_kid(sender_key[0], sender)
        try:  # a deep copy through JSON: later changes by the caller cannot reach the header
            meta = jws.strict_json_object(jws.canonical_json(dict(meta or {})))
        except (TypeError, ValueError, key_errors.MalformedToken) as exc:
            raise MalformedHeader(f"meta must be JSON-serialisable: {exc}") from exc
        try:
            check_chunk_size(chunk_size)
        except ValueError as exc:
            raise MalformedHeader(str(exc)) from exc
        self._identity = identity
        self._version = version
        message_id = check_hex(message_id, "message_id", 32)
        name = check_name(unicodedata.normalize("NFC", name) if isinstance(name, str) else name)
        contents = {
            "created": check_time(created, "created"), "name": name,
            "size": check_size_field(size, "size"), "chunk_size": chunk_size, "meta": meta}
        self._fields: dict[str, Any] = {"v": version, "message_id": message_id,
                                        "sender": sender, "recipients": list(recipients)}
        if version < 3:
            self._fields.update(contents, ciphertext_size=ciphertext_size(size, chunk_size))
        # Order of random draws (fixed, for known-answer vectors): file key, stream header,
        # then one 32-byte ephemeral seed per reader in sorted node-ID order; v3 then the
        # 24-byte nonce of the sealed contents.
        file_key = random_bytes(KEY_BYTES)
        if len(file_key) != KEY_BYTES:
            raise ValueError("random_bytes(32) returned the wrong length")
        self._payload = PayloadEncryptor(file_key, ad=bytes.fromhex(message_id), size=size,
                                         chunk_size=chunk_size, random_bytes=random_bytes,
                                         ciphertext_digest=version == 1,
                                         plaintext_digest=plaintext_digest,
                                         trailer=TRAILER_BYTES if version >= 3 else 0)
        self._injected_digest = plaintext_digest
        self._digest_only: Digest | None = None   # the SHA-256 once digest() replaces feed()
        self._digested = 0
        self._size = size
        self._fields["keys"] = {
            node_id: {"kid": kid, "sealed": jws.b64url_encode(
                seal_file_key(file_key, public.encode(), random_bytes=random_bytes))}
            for node_id, (kid, public) in sorted(readers.items())}
        self._header: EnvelopeHeader | None = None
        if version >= 3:
            nonce = random_bytes(NONCE_BYTES)
            if len(nonce) != NONCE_BYTES:
                raise ValueError("random_bytes(24) returned the wrong length")
            self._fields.update(size_class=size_class(size), priority=priority,
                                sealed=jws.b64url_encode(
                                    _seal_contents(contents, file_key, message_id, nonce)))
            token = jws.sign(identity, ENVELOPE_TYP, self._fields, kid=sender)
            self._header = replace(decode_header(token), verified_key=identity.verify_key.encode(),
                                   contents=Contents(name=name, created=created,
                                                     size=size, chunk_size=chunk_size,
                                                     meta=MappingProxyType(meta)))

    @property
    def header(self) -> EnvelopeHeader | None:
        """v3: the signed header (contents opened, digest not yet known), ready to offer
        before a byte is read; None for v1 and v2, whose header is signed by :meth:`finish`."""
        return self._header

    @property
    def header_token(self) -> str | None:
        """v3: the signed header token (see :attr:`header`); None for v1 and v2."""
        return None if self._header is None else self._header.token

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take the next plaintext piece; return the ciphertext now available (the first
        output starts with the 24-byte stream header). Pieces of exactly ``chunk_size`` bytes
        are cheapest: no copy, no join (bench/protocol_bench.py --piece-kib)."""
        if self._digest_only is not None:
            raise ValueError("this Sealer is hashing only (digest() was called)")
        return self._payload.feed(data)

    def digest(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next plaintext piece without encrypting it (v2, v3): for a sender that
        encrypts later, while sending, from the same key and :attr:`stream_header`
        (node.sealing.EnvelopeSource). Do not mix with :meth:`feed`."""
        if self._version == 1:
            raise ValueError("a v1 header signs the ciphertext's digest: feed() it")
        if self._digest_only is None:
            if self._payload.started:
                raise ValueError("this Sealer is already encrypting (feed() was called)")
            self._digest_only = (hashlib.sha256() if self._injected_digest is None
                                 else self._injected_digest)
        view = memoryview(data).cast("B")
        if len(view) > self._size - self._digested:
            raise SizeMismatch(f"more plaintext than the declared {self._size} bytes "
                               "(did the file grow while it was being sealed?)")
        self._digest_only.update(view)
        self._digested += len(view)

    @property
    def stream_header(self) -> bytes:
        """The 24-byte secretstream header: the first bytes of the ciphertext stream."""
        return self._payload.stream_header

    def finish(self) -> SealedEnvelope:
        """Close the stream (SizeMismatch if the plaintext was short) and sign: the header
        (v1, v2) or the trailer (v3, whose chunk then ends ``tail`` when :meth:`feed` was
        used)."""
        if self._digest_only is not None:
            if self._digested != self._size:
                raise SizeMismatch(f"only {self._digested} of the declared {self._size} "
                                   "plaintext bytes were read (did the file shrink while it "
                                   "was being sealed?)")
            sha256 = self._digest_only.digest().hex()
        if self._header is not None:   # v3: the trailer
            if self._digest_only is None:   # encrypting: the digest once the last byte is in
                sha256 = self._payload.plaintext_sha256()
            trailer = sign_trailer(self._identity, self._header.header_sha256, self._size,
                                   sha256)
            tail = b"" if self._digest_only is not None else self._payload.finish(trailer)[0]
            return SealedEnvelope(header_token=self._header.token,
                                  header=self._header.with_digest(sha256), tail=tail,
                                  trailer=trailer)
        if self._digest_only is not None:
            fields = dict(self._fields, sha256=sha256)
            tail = b""
        else:
            tail, summary = self._payload.finish()
            fields = dict(self._fields, sha256=summary.sha256)
            if self._version == 1:
                fields["ciphertext_sha256"] = summary.ciphertext_sha256
        token = jws.sign(self._identity, ENVELOPE_TYP, fields, kid=fields["sender"])
        header = replace(decode_header(token), verified_key=self._identity.verify_key.encode())
        return SealedEnvelope(header_token=token, header=header, tail=tail)


# -- opening -----------------------------------------------------------------------------------

class Opener:
    """Decrypt a verified envelope's payload for one reader and prove it complete."""

    def __init__(self, header: EnvelopeHeader, *, node_id: str,
                 encryption_keys: Mapping[str, nacl.public.PrivateKey],
                 plaintext_digest: Digest | None = None) -> None:
        """``plaintext_digest``: the SHA-256 object to hash the plaintext with (default
        ``hashlib.sha256()``; the node's hashes on another thread, node/core/hashing.py).
        A v3 ``header`` is opened here if it was not yet (:attr:`header`)."""
        file_key = _reader_file_key(header, node_id, encryption_keys)
        if header.contents is None:
            header = replace(header, contents=_open_contents(header, file_key))
        self._header = header
        self._payload = PayloadDecryptor(file_key, ad=bytes.fromhex(header.message_id),
                                         size=header.size, chunk_size=header.chunk_size,
                                         ciphertext_digest=header.ciphertext_sha256 is not None,
                                         plaintext_digest=plaintext_digest,
                                         trailer=header.trailer_bytes)

    @property
    def header(self) -> EnvelopeHeader:
        """The header, its contents opened (its v3 digest only from :meth:`finish`)."""
        return self._header

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take the next ciphertext piece; return plaintext to STAGE (not publish) until
        :meth:`finish` returns."""
        return self._payload.feed(data)

    def feed_chunks(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """:meth:`feed` as one plaintext piece per chunk (no joining copy); same rules."""
        return self._payload.feed_chunks(data)

    def finish(self) -> EnvelopeHeader:
        """Prove the stream ended at its final chunk and matches the signed sizes and digests
        (v3: the signed trailer, checked against this header and the sender's key); return
        the header with its proven digest.

        A failure is final: calling again raises again (the payload codec latches, and its
        summary does not change).
        """
        summary = self._payload.finish()
        mismatch = self._compare(summary)
        if mismatch is not None:
            raise mismatch
        return self._header if self._header.digest is not None else \
            self._header.with_digest(summary.sha256)

    def _compare(self, summary: PayloadSummary) -> EnvelopeError | None:
        h = self._header
        if summary.ciphertext_size != h.ciphertext_size:
            return DigestMismatch(f"ciphertext is {summary.ciphertext_size} bytes; the header "
                                  f"says {h.ciphertext_size}")
        if h.ciphertext_sha256 is not None and summary.ciphertext_sha256 != h.ciphertext_sha256:
            return DigestMismatch("the ciphertext's SHA-256 differs from the signed header's")
        if summary.size != h.size:
            return DigestMismatch(f"plaintext is {summary.size} bytes; the header says {h.size}")
        if h.version >= 3:
            try:
                size, sha256 = check_trailer(h, summary.trailer)
            except BadTrailer as exc:
                return exc
            if size != summary.size:
                return DigestMismatch(f"plaintext is {summary.size} bytes; the signed trailer "
                                      f"says {size}")
            if sha256 != summary.sha256:
                return DigestMismatch("the document's SHA-256 differs from the one the sender "
                                      "signed in its trailer")
            return None
        if summary.sha256 != h.sha256:
            return DigestMismatch("the document's SHA-256 differs from the signed header's")
        return None


def seal_all(plaintext: bytes, **sealer_args: Any) -> tuple[SealedEnvelope, bytes]:
    """Seal a small document held in memory; return the envelope and the whole ciphertext."""
    sealer = Sealer(size=len(plaintext), **sealer_args)
    head = sealer.feed(plaintext)
    envelope = sealer.finish()
    return envelope, head + envelope.tail


def open_all(header: EnvelopeHeader, ciphertext: bytes, *, node_id: str,
             encryption_keys: Mapping[str, nacl.public.PrivateKey]) -> bytes:
    """Open a small verified envelope held in memory; return the plaintext."""
    opener = Opener(header, node_id=node_id, encryption_keys=encryption_keys)
    plaintext = opener.feed(ciphertext)
    opener.finish()
    return plaintext
