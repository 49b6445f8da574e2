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
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import nacl.public
import nacl.signing
import nacl.utils

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import (
    BadSignature,
    DigestMismatch,
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
#: The version this node writes. v2 (2026-11) dropped ``ciphertext_sha256`` from the header;
#: v1 headers are still read (queued and stored envelopes, older peers).
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_KID_CHARS = 128
_FIELDS_V2 = frozenset({"v", "message_id", "sender", "recipients", "created", "name", "size",
                        "sha256", "chunk_size", "ciphertext_size", "keys", "meta"})
_FIELDS = {1: _FIELDS_V2 | {"ciphertext_sha256"}, 2: _FIELDS_V2}


# -- the header --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SealedKey:
    """The file key sealed to one reader's X25519 key ``kid``."""

    node_id: str
    kid: str
    sealed: bytes


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The parsed fields of a header token. Only trust one returned by :func:`verify_header`."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    created: str
    name: str
    size: int
    sha256: str
    chunk_size: int
    ciphertext_size: int
    ciphertext_sha256: str | None   # v1 only
    keys: tuple[SealedKey, ...]
    meta: Mapping[str, Any]
    token: str
    version: int = VERSION

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
    """Check every field of a decoded header token against the v1 schema."""
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] not in READABLE_VERSIONS:
        raise MalformedHeader(f"unsupported envelope version {p.get('v')!r}; this node reads "
                              "v1 and v2")
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
        message_id=check_hex(p["message_id"], "message_id", 32),
        sender=sender, recipients=recipients,
        created=check_time(p["created"], "created"),
        name=check_name(p["name"]), size=size,
        sha256=check_hex(p["sha256"], "sha256", 64),
        chunk_size=chunk_size, ciphertext_size=p["ciphertext_size"],
        ciphertext_sha256=(check_hex(p["ciphertext_sha256"], "ciphertext_sha256", 64)
                           if version == 1 else None),
        keys=_parse_keys(p["keys"], set(recipients) | {sender}),
        meta=MappingProxyType(p["meta"]), token=decoded.token, version=version)


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
    return header


# -- sealing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """A finished envelope. ``tail`` is ciphertext ``feed`` had not yet returned (usually b"";
    for an empty document never fed, the whole stream): append it to the ciphertext."""

    header_token: str
    header: EnvelopeHeader
    tail: bytes


class Sealer:
    """Encrypt one document as it is read and sign its header at the end.

    ``plaintext_digest`` is the SHA-256 object the document is hashed with (default
    ``hashlib.sha256()``); the node passes one that hashes on another thread (node/core/hashing.py).
    """

    def __init__(self, *, identity: nacl.signing.SigningKey, sender: str,
                 sender_key: tuple[str, nacl.public.PublicKey],
                 recipients: Mapping[str, tuple[str, nacl.public.PublicKey]],
                 name: str, size: int, message_id: str, created: str,
                 meta: Mapping[str, Any] | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 random_bytes: Callable[[int], bytes] = nacl.utils.random,
                 version: int = VERSION, plaintext_digest: Digest | None = None) -> None:
        if version not in READABLE_VERSIONS:
            raise ValueError(f"cannot write envelope version {version!r}")
        check_node_id(sender, "sender")
        if node_id_from_public_key(identity.verify_key.encode()) != sender:
            raise ValueError("identity is not the signing key of node ID sender")
        if not recipients:
            raise MalformedHeader("an envelope needs at least one recipient")
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
        self._fields: dict[str, Any] = {
            "v": version, "message_id": check_hex(message_id, "message_id", 32),
            "sender": sender, "recipients": list(recipients),
            "created": check_time(created, "created"),
            "name": check_name(unicodedata.normalize("NFC", name) if isinstance(name, str)
                               else name),
            "size": check_size_field(size, "size"), "chunk_size": chunk_size,
            "ciphertext_size": ciphertext_size(size, chunk_size), "meta": meta}
        # Order of random draws (fixed, for known-answer vectors): file key, stream header,
        # then one 32-byte ephemeral seed per reader in sorted node-ID order.
        file_key = random_bytes(KEY_BYTES)
        if len(file_key) != KEY_BYTES:
            raise ValueError("random_bytes(32) returned the wrong length")
        self._payload = PayloadEncryptor(file_key, ad=bytes.fromhex(message_id), size=size,
                                         chunk_size=chunk_size, random_bytes=random_bytes,
                                         ciphertext_digest=version == 1,
                                         plaintext_digest=plaintext_digest)
        self._injected_digest = plaintext_digest
        self._digest_only: Digest | None = None   # the SHA-256 once digest() replaces feed()
        self._digested = 0
        self._fields["keys"] = {
            node_id: {"kid": kid, "sealed": jws.b64url_encode(
                seal_file_key(file_key, public.encode(), random_bytes=random_bytes))}
            for node_id, (kid, public) in sorted(readers.items())}

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take the next plaintext piece; return the ciphertext now available (the first
        output starts with the 24-byte stream header). Pieces of exactly ``chunk_size`` bytes
        are cheapest: no copy, no join (bench/protocol_bench.py --piece-kib)."""
        if self._digest_only is not None:
            raise ValueError("this Sealer is hashing only (digest() was called)")
        return self._payload.feed(data)

    def digest(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next plaintext piece without encrypting it (v2 only): for a sender that
        encrypts later, while sending, from the same key and :attr:`stream_header`
        (node.sealing.EnvelopeSource). Do not mix with :meth:`feed`."""
        if self._fields["v"] == 1:
            raise ValueError("a v1 header signs the ciphertext's digest: feed() it")
        if self._digest_only is None:
            if self._payload.started:
                raise ValueError("this Sealer is already encrypting (feed() was called)")
            self._digest_only = (hashlib.sha256() if self._injected_digest is None
                                 else self._injected_digest)
        view = memoryview(data).cast("B")
        if len(view) > self._fields["size"] - self._digested:
            raise SizeMismatch(f"more plaintext than the declared {self._fields['size']} bytes "
                               "(did the file grow while it was being sealed?)")
        self._digest_only.update(view)
        self._digested += len(view)

    @property
    def stream_header(self) -> bytes:
        """The 24-byte secretstream header: the first bytes of the ciphertext stream."""
        return self._payload.stream_header

    def finish(self) -> SealedEnvelope:
        """Close the stream (SizeMismatch if the plaintext was short) and sign the header."""
        if self._digest_only is not None:
            if self._digested != self._fields["size"]:
                raise SizeMismatch(f"only {self._digested} of the declared "
                                   f"{self._fields['size']} plaintext bytes were read (did "
                                   "the file shrink while it was being sealed?)")
            fields = dict(self._fields, sha256=self._digest_only.digest().hex())
            tail = b""
        else:
            tail, summary = self._payload.finish()
            fields = dict(self._fields, sha256=summary.sha256)
            if self._fields["v"] == 1:
                fields["ciphertext_sha256"] = summary.ciphertext_sha256
        token = jws.sign(self._identity, ENVELOPE_TYP, fields, kid=fields["sender"])
        return SealedEnvelope(header_token=token, header=decode_header(token), tail=tail)


# -- opening -----------------------------------------------------------------------------------

class Opener:
    """Decrypt a verified envelope's payload for one reader and prove it complete."""

    def __init__(self, header: EnvelopeHeader, *, node_id: str,
                 encryption_keys: Mapping[str, nacl.public.PrivateKey],
                 plaintext_digest: Digest | None = None) -> None:
        """``plaintext_digest``: the SHA-256 object to hash the plaintext with (default
        ``hashlib.sha256()``; the node's hashes on another thread, node/core/hashing.py)."""
        entry = header.key_for(node_id)
        if entry is None:
            raise NotForUs(f"message {header.message_id} holds no sealed key for {node_id}")
        private = encryption_keys.get(entry.kid)
        if private is None:
            raise NotForUs(f"message {header.message_id} is sealed to our encryption key "
                           f"{entry.kid!r}, which this node does not hold")
        file_key = open_file_key(entry.sealed, private.public_key.encode(), private.encode())
        self._header = header
        self._payload = PayloadDecryptor(file_key, ad=bytes.fromhex(header.message_id),
                                         size=header.size, chunk_size=header.chunk_size,
                                         ciphertext_digest=header.ciphertext_sha256 is not None,
                                         plaintext_digest=plaintext_digest)

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take the next ciphertext piece; return plaintext to STAGE (not publish) until
        :meth:`finish` returns."""
        return self._payload.feed(data)

    def feed_chunks(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """:meth:`feed` as one plaintext piece per chunk (no joining copy); same rules."""
        return self._payload.feed_chunks(data)

    def finish(self) -> None:
        """Prove the stream ended at its final chunk and matches the signed sizes and digests.

        A failure is final: calling again raises again (the payload codec latches, and its
        summary does not change).
        """
        mismatch = self._compare(self._payload.finish())
        if mismatch is not None:
            raise mismatch

    def _compare(self, summary: PayloadSummary) -> DigestMismatch | None:
        h = self._header
        if summary.ciphertext_size != h.ciphertext_size:
            return DigestMismatch(f"ciphertext is {summary.ciphertext_size} bytes; the header "
                                  f"says {h.ciphertext_size}")
        if h.ciphertext_sha256 is not None and summary.ciphertext_sha256 != h.ciphertext_sha256:
            return DigestMismatch("the ciphertext's SHA-256 differs from the signed header's")
        if summary.size != h.size:
            return DigestMismatch(f"plaintext is {summary.size} bytes; the header says {h.size}")
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
