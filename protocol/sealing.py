"""Sealing and opening an envelope's stream: :class:`Sealer` encrypts a document as it is
read and signs at the end (v1, v2: the whole header; v3: the trailer), :class:`Opener`
decrypts a verified envelope for one reader and proves it complete (protocol/envelope.py has
the header, its sealed contents and the trailer; docs/protocol.md, part A).

Everything here is pure: no I/O, time and randomness come from the caller. Every failure on
data from outside raises a :class:`protocol.errors.EnvelopeError` subclass.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.envelope import (
    ENVELOPE_TYP,
    NONCE_BYTES,
    PRIORITIES,
    READABLE_VERSIONS,
    TRAILER_BYTES,
    Contents,
    EnvelopeHeader,
    check_kid,
    check_trailer,
    decode_header,
    open_contents,
    reader_file_key,
    seal_contents,
    sign_trailer,
    size_class,
)
from lienthong.protocol.errors import (
    BadTrailer,
    DigestMismatch,
    EnvelopeError,
    MalformedHeader,
    SizeMismatch,
)
from lienthong.protocol.fields import (
    check_hex,
    check_name,
    check_node_id,
    check_size_field,
    check_time,
)
from lienthong.protocol.filekey import KEY_BYTES, seal_file_key
from lienthong.protocol.layout import DEFAULT_CHUNK_SIZE, check_chunk_size, ciphertext_size
from lienthong.protocol.payload import (
    Digest,
    PayloadDecryptor,
    PayloadEncryptor,
    PayloadSummary,
    Sink,
)

# -- sealing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """A finished envelope. ``tail`` is ciphertext ``feed`` had not yet returned (usually b"";
    v3: the trailer chunk; for an empty document never fed, the whole stream): append it to
    the ciphertext. ``trailer`` is the v3 signed trailer (None before v3), for a sender that
    re-creates the ciphertext later (node/spool/sealing.py). ``file_key`` is the document's
    key (b"" when not given): a sender that re-creates the ciphertext while sending keeps it
    in memory instead of opening its own sealed copy again (an X25519 operation); a secret,
    never shown (``repr``) nor written. ``stream_header``: the 24 bytes that begin the
    ciphertext (b"" when not given), public, for the same sender."""

    header_token: str
    header: EnvelopeHeader
    tail: bytes
    trailer: bytes | None = None
    file_key: bytes = field(default=b"", repr=False)
    stream_header: bytes = field(default=b"", repr=False)


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
            check_kid(kid, node_id)
        if sender in readers and readers[sender] != sender_key:
            raise ValueError("the sender is a recipient with a different encryption key")
        readers[sender] = sender_key
        check_kid(sender_key[0], sender)
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
        self._file_key = file_key
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
                                    seal_contents(contents, file_key, message_id, nonce)))
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
                                  trailer=trailer, file_key=self._file_key,
                                  stream_header=self.stream_header)
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
        return SealedEnvelope(header_token=token, header=header, tail=tail,
                              file_key=self._file_key, stream_header=self.stream_header)


# -- opening -----------------------------------------------------------------------------------

class Opener:
    """Decrypt a verified envelope's payload for one reader and prove it complete."""

    def __init__(self, header: EnvelopeHeader, *, node_id: str,
                 encryption_keys: Mapping[str, nacl.public.PrivateKey],
                 plaintext_digest: Digest | None = None,
                 file_key: bytes | None = None) -> None:
        """``plaintext_digest``: the SHA-256 object to hash the plaintext with (default
        ``hashlib.sha256()``; the node's hashes on another thread, node/core/hashing.py).
        A v3 ``header`` is opened here if it was not yet (:attr:`header`).

        ``file_key``: the document's file key, when the caller already opened it for this
        reader (``protocol.envelope.open_header_key``); then ``encryption_keys`` are not
        used. A wrong key opens nothing: the contents (v3) or the first chunk fail to
        authenticate."""
        if file_key is None:
            file_key = reader_file_key(header, node_id, encryption_keys)
        elif len(file_key) != KEY_BYTES:
            raise ValueError(f"a file key is {KEY_BYTES} bytes, not {len(file_key)}")
        if header.contents is None:
            header = replace(header, contents=open_contents(header, file_key))
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

    def feed_into(self, data: bytes | bytearray | memoryview, sink: Sink) -> None:
        """:meth:`feed` handing each chunk's plaintext to ``sink`` as a view valid only until
        it returns (no copy at all); same rules."""
        self._payload.feed_into(data, sink)

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
