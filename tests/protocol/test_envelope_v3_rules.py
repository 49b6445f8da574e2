"""Envelope v3 (and the sealing paths v2 shares) pinned word for word: every refusal the
audit log records, each limit at its boundary, the sealed contents and the signed trailer
computed independently from docs/protocol.md Part A §8, and the plaintext digest object the
node injects (node/core/hashing.py) used on every path.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import replace
from typing import Any

import nacl.bindings as sodium
import nacl.signing
import pytest

from lienthong.keys import jws
from lienthong.protocol.envelope import (
    CONTENTS_PERSON,
    ENVELOPE_TYP,
    NONCE_BYTES,
    TRAILER_BYTES,
    TRAILER_CONTEXT,
    SealedContents,
    check_trailer,
    contents_key,
    decode_header,
    open_header,
    sign_trailer,
    size_class,
    trailer_message,
)
from lienthong.protocol.errors import (
    BadTrailer,
    DecryptError,
    DigestMismatch,
    MalformedHeader,
    SizeMismatch,
)
from lienthong.protocol.payload import PayloadSummary
from lienthong.protocol.sealing import Opener, Sealer, open_all
from tests.protocol.test_envelope_v3 import (
    ALICE,
    BOB,
    CHUNK,
    MALLORY,
    _args,
    _resign,
    _seal,
    _stream,
    _verified,
)
from tests.vectors.make_vectors import FixedRandom

MID = "0123456789abcdef0123456789abcdef"
CREATED = "2026-12-01T08:00:00Z"


def refused(error: type[Exception], call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kw)
    assert type(caught.value) is error
    return str(caught.value)


class Fixed:
    """A digest object that reports a fixed digest and records what it was given."""

    def __init__(self, value: bytes = b"\x05" * 32) -> None:
        self.value, self.fed = value, bytearray()

    def update(self, data: Any) -> None:
        self.fed += bytes(data)

    def digest(self) -> bytes:
        return self.value


def bob_keys() -> dict[str, Any]:
    return {BOB.kid: BOB.encryption}


# -- size classes ------------------------------------------------------------------------------

def test_size_classes_at_each_boundary() -> None:
    base = 64 * 1024
    for cls in range(6):
        limit = base * 16 ** cls
        assert size_class(limit) == cls
        assert size_class(limit + 1) == cls + 1
    assert size_class(0) == 0
    assert size_class(base * 16 ** 6) == 6 and size_class(2 ** 52) == 6


# -- the header before and after opening -------------------------------------------------------

def test_a_v3_header_keeps_its_contents_sealed_until_opened() -> None:
    token, _, _ = _seal(b"abc", message_id=MID)
    header = decode_header(token)
    assert (header.opened, header.trailer_bytes, header.version) == (False, TRAILER_BYTES, 3)
    for name in ("name", "created", "size", "chunk_size", "meta", "ciphertext_size"):
        assert refused(SealedContents, getattr, header, name) == \
            f"envelope {MID}'s contents are still sealed"
    assert refused(SealedContents, getattr, header, "sha256") == \
        f"envelope {MID}'s digest is only known from its trailer"
    opened = open_header(header, node_id=BOB.node_id, encryption_keys=bob_keys())
    assert opened.opened and opened.size == 3 and opened.chunk_size == CHUNK
    assert opened.ciphertext_size == 24 + 3 + 17 + TRAILER_BYTES + 17
    assert open_header(opened, node_id="ignored", encryption_keys={}) is opened
    assert refused(MalformedHeader, opened.with_digest, "A" * 64) == \
        "sha256 must be 64 lowercase hex digits"
    assert opened.with_digest("a" * 64).sha256 == "a" * 64
    v2, _, _ = _seal(b"abc", version=2)
    plain = decode_header(v2)
    assert plain.trailer_bytes == 0 and plain.opened
    assert open_header(plain, node_id="ignored", encryption_keys={}) is plain
    assert refused(MalformedHeader, open_header, replace(header, sealed=None),
                   node_id=BOB.node_id, encryption_keys=bob_keys()) == \
        "the header has no sealed contents"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("size_class", -1, "size_class must be an integer from 0 to 6"),
    ("size_class", 7, "size_class must be an integer from 0 to 6"),
    ("size_class", True, "size_class must be an integer from 0 to 6"),
    ("priority", -1, "priority must be an integer from 0 to 3"),
    ("priority", 4, "priority must be an integer from 0 to 3"),
    ("priority", False, "priority must be an integer from 0 to 3"),
    ("sealed", "AA==", "sealed: base64url text must be unpadded"),
    ("sealed", jws.b64url_encode(bytes(NONCE_BYTES + 15)),
     "sealed is too short to hold a nonce and a tag"),
])
def test_routing_field_refusals_word_for_word(field: str, value: Any, message: str) -> None:
    token, _, _ = _seal(b"abc")
    assert refused(MalformedHeader, _verified, _resign(token, lambda p: p.update({field: value}))) \
        == message


def test_a_sealed_field_that_is_not_text_is_refused() -> None:
    token, _, _ = _seal(b"abc")
    message = refused(MalformedHeader, _verified, _resign(token, lambda p: p.update(sealed=5)))
    assert message.startswith("sealed: ")


def test_the_routing_limits_themselves_are_accepted() -> None:
    token, _, _ = _seal(b"abc")
    for change in ({"size_class": 6}, {"priority": 0}, {"priority": 3},
                   {"sealed": jws.b64url_encode(bytes(NONCE_BYTES + 16))}):
        header = _verified(_resign(token, lambda p, c=change: p.update(c)))
        assert header.version == 3
    assert _verified(_resign(token, lambda p: p.update(size_class=0))).size_class == 0


# -- the sealed contents -----------------------------------------------------------------------

def test_the_contents_box_is_as_docs_protocol_describes() -> None:
    random = FixedRandom("v3-rules-contents")
    token, _, _ = _seal(b"abc", random_bytes=random, message_id=MID, name="a.txt",
                        meta={"k": "v"}, created=CREATED)
    file_key = random.draws[0]
    assert contents_key(file_key) == hashlib.blake2b(
        b"", key=file_key, digest_size=32, person=CONTENTS_PERSON).digest()
    assert CONTENTS_PERSON == b"lienthong-v3-ctt"
    sealed = jws.b64url_decode(jws.decode(token, ENVELOPE_TYP).payload["sealed"])
    assert sealed[:NONCE_BYTES] == random.draws[-1]            # the last draw: the nonce
    plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        sealed[NONCE_BYTES:], bytes.fromhex(MID), sealed[:NONCE_BYTES], contents_key(file_key))
    assert plain == jws.canonical_json({"name": "a.txt", "created": CREATED, "size": 3,
                                        "chunk_size": CHUNK, "meta": {"k": "v"}})


def test_contents_refusals_word_for_word() -> None:
    random = FixedRandom("v3-rules-refusals")
    data = b"abc"
    token, _, _ = _seal(data, random_bytes=random, message_id=MID)
    key = contents_key(random.draws[0])

    def open_with(plain: bytes) -> EnvelopeHeaderLike:
        nonce = b"\x02" * NONCE_BYTES
        box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, bytes.fromhex(MID),
                                                                nonce, key)
        resealed = _resign(token, lambda p: p.update(sealed=jws.b64url_encode(nonce + box)))
        return open_header(_verified(resealed), node_id=BOB.node_id, encryption_keys=bob_keys())

    good = {"name": "a.txt", "created": CREATED, "size": 3, "chunk_size": CHUNK, "meta": {}}

    def refusal(contents: dict[str, Any] | bytes) -> str:
        plain = contents if isinstance(contents, bytes) else jws.canonical_json(contents)
        return refused(MalformedHeader, open_with, plain)

    assert open_with(jws.canonical_json(good)).name == "a.txt"
    assert refusal(b"[1]") == "sealed contents: JSON value must be an object"
    assert refusal(dict(good, extra=1)) == "sealed contents wrong: missing [], unknown ['extra']"
    assert refusal({k: v for k, v in good.items() if k != "meta"}) == \
        "sealed contents wrong: missing ['meta'], unknown []"
    assert refusal(dict(good, size=-1)).startswith("size: ")
    assert refusal(dict(good, chunk_size=10)) == \
        "chunk_size must be an integer from 4096 to 4194304, not 10"
    assert refusal(dict(good, meta=[])) == "meta must be a JSON object"
    assert refusal(dict(good, size=70_000)) == \
        "size_class 0 does not fit the sealed size (1 would)"
    assert refusal(dict(good, created="x")).startswith("created must be RFC 3339 UTC text")
    assert refusal(dict(good, name="")).startswith("file name")
    wrong_key = _resign(token, lambda p: p.update(sealed=jws.b64url_encode(bytes(60))))
    assert refused(DecryptError, open_header, _verified(wrong_key), node_id=BOB.node_id,
                   encryption_keys=bob_keys()) == \
        "the header's sealed contents do not open with its file key"


EnvelopeHeaderLike = Any


# -- the trailer -------------------------------------------------------------------------------

def test_the_trailer_is_size_digest_and_signature_over_the_header() -> None:
    header_sha = "ab" * 32
    sha = "cd" * 32
    message = trailer_message(header_sha, 5, sha)
    assert message == (b"lienthong-trailer/1\x00" + bytes.fromhex(header_sha)
                       + struct.pack(">Q", 5) + bytes.fromhex(sha))
    assert TRAILER_CONTEXT == b"lienthong-trailer/1\x00"
    trailer = sign_trailer(ALICE.identity, header_sha, 5, sha)
    assert len(trailer) == TRAILER_BYTES == 104
    assert trailer[:8] == struct.pack(">Q", 5) and trailer[8:40] == bytes.fromhex(sha)
    ALICE.identity.verify_key.verify(message, trailer[40:])


def test_trailer_refusals_word_for_word() -> None:
    token, _, envelope = _seal(b"abc", message_id=MID)
    header = _verified(token)
    trailer = envelope.trailer
    assert check_trailer(header, trailer) == (3, hashlib.sha256(b"abc").hexdigest())
    missing = f"the stream of {MID} ends without a signed trailer"
    assert refused(BadTrailer, check_trailer, header, None) == missing
    assert refused(BadTrailer, check_trailer, header, trailer[:-1]) == missing
    assert refused(BadTrailer, check_trailer, header, trailer + b"\x00") == missing
    assert refused(BadTrailer, check_trailer, decode_header(token), trailer) == \
        "the header was not verified, so its trailer cannot be"
    forged = sign_trailer(MALLORY.identity, header.header_sha256, 3,
                          hashlib.sha256(b"abc").hexdigest())
    assert refused(BadTrailer, check_trailer, header, forged) == \
        f"the trailer of {MID} is not the sender's signature over this envelope header " \
        "(altered, or from another document)"


def test_finish_refusals_word_for_word() -> None:
    """What the opener compares, each named (some only a forged summary can reach)."""
    data = b"abc"
    random = FixedRandom("v3-rules-finish")
    token, ciphertext, _ = _seal(data, random_bytes=random, message_id=MID)
    opener = Opener(_verified(token), node_id=BOB.node_id, encryption_keys=bob_keys())
    proper = dict(size=3, sha256=hashlib.sha256(data).hexdigest(),
                  ciphertext_size=opener.header.ciphertext_size, ciphertext_sha256=None,
                  trailer=None)

    def compare(**change: Any) -> str:
        mismatch = opener._compare(PayloadSummary(**{**proper, **change}))
        assert mismatch is not None
        return f"{type(mismatch).__name__}: {mismatch}"

    assert compare(ciphertext_size=1) == \
        f"DigestMismatch: ciphertext is 1 bytes; the header says {proper['ciphertext_size']}"
    assert compare(size=4) == "DigestMismatch: plaintext is 4 bytes; the header says 3"
    assert compare() == f"BadTrailer: the stream of {MID} ends without a signed trailer"
    header = _verified(token)
    lying_size = sign_trailer(ALICE.identity, header.header_sha256, 4, proper["sha256"])
    assert compare(trailer=lying_size) == \
        "DigestMismatch: plaintext is 3 bytes; the signed trailer says 4"
    lying_sha = sign_trailer(ALICE.identity, header.header_sha256, 3, "0" * 64)
    assert compare(trailer=lying_sha) == \
        "DigestMismatch: the document's SHA-256 differs from the one the sender signed in " \
        "its trailer"
    honest = sign_trailer(ALICE.identity, header.header_sha256, 3, proper["sha256"])
    assert opener._compare(PayloadSummary(**{**proper, "trailer": honest})) is None
    # v1: the signed ciphertext digest; v2: the signed plaintext digest.
    v1, _, _ = _seal(data, version=1)
    v1_opener = Opener(_verified(v1), node_id=BOB.node_id, encryption_keys=bob_keys())
    v1_summary = dict(proper, ciphertext_size=v1_opener.header.ciphertext_size,
                      ciphertext_sha256="0" * 64)
    assert str(v1_opener._compare(PayloadSummary(**v1_summary))) == \
        "the ciphertext's SHA-256 differs from the signed header's"
    v2, _, _ = _seal(data, version=2)
    v2_opener = Opener(_verified(v2), node_id=BOB.node_id, encryption_keys=bob_keys())
    v2_summary = dict(proper, ciphertext_size=v2_opener.header.ciphertext_size, sha256="0" * 64)
    assert str(v2_opener._compare(PayloadSummary(**v2_summary))) == \
        "the document's SHA-256 differs from the signed header's"
    assert v2_opener._compare(PayloadSummary(**dict(v2_summary, sha256=proper["sha256"]))) \
        is None


def test_an_opener_returns_the_proven_header() -> None:
    data = b"x" * (CHUNK + 7)
    token, ciphertext, envelope = _seal(data, message_id=MID)
    opener = Opener(_verified(token), node_id=BOB.node_id, encryption_keys=bob_keys())
    assert opener.header.opened and opener.header.name == envelope.header.name
    pieces = opener.feed_chunks(ciphertext)
    assert [len(p) for p in pieces] == [CHUNK, 7]
    proven = opener.finish()
    assert proven.sha256 == hashlib.sha256(data).hexdigest() and proven.opened
    v2, v2_cipher, _ = _seal(data, version=2)
    v2_opener = Opener(_verified(v2), node_id=BOB.node_id, encryption_keys=bob_keys())
    assert v2_opener.feed(v2_cipher) == data
    assert v2_opener.finish() is v2_opener.header


# -- sealing -----------------------------------------------------------------------------------

def test_sealer_v3_refusals_word_for_word() -> None:
    for priority in (-1, 4, True, "1"):
        assert refused(MalformedHeader, Sealer, size=1, **_args(priority=priority)) == \
            "priority must be an integer from 0 to 3"
    assert refused(MalformedHeader, Sealer, size=1,
                   **_args(sender_key=("", ALICE.sealing_key[1]))) == \
        f"keys[{ALICE.node_id}].kid must be 1..128 characters"
    assert refused(MalformedHeader, Sealer, size=1,
                   **_args(recipients={BOB.node_id: ("k" * 129, BOB.sealing_key[1])})) == \
        f"keys[{BOB.node_id}].kid must be 1..128 characters"
    assert refused(MalformedHeader, Sealer, size=1,
                   **_args(recipients={"nobody": BOB.sealing_key})).startswith("recipient: ")
    assert refused(MalformedHeader, Sealer, size=1, **_args(sender="nobody")).startswith(
        "sender: ")
    assert refused(MalformedHeader, Sealer, size=1, **_args(chunk_size=10)) == \
        "chunk_size must be an integer from 4096 to 4194304, not 10"
    draws = iter([32, 24, 32, 32, 32])

    def short_nonce(n: int) -> bytes:
        expected = next(draws, None)
        return bytes(n if expected is not None else n - 1)

    with pytest.raises(ValueError) as caught:
        Sealer(size=1, **_args(random_bytes=short_nonce))
    assert str(caught.value) == "random_bytes(24) returned the wrong length"


def test_the_sender_may_also_be_a_recipient_with_the_same_key() -> None:
    sealer = Sealer(size=1, **_args(recipients={BOB.node_id: BOB.sealing_key,
                                                ALICE.node_id: ALICE.sealing_key}))
    assert sealer.header is not None
    assert {k.node_id for k in sealer.header.keys} == {ALICE.node_id, BOB.node_id}


def test_the_v3_header_is_ready_before_the_first_byte() -> None:
    sealer = Sealer(size=3, **_args(message_id=MID, name="Thu\u031b.pdf", meta={"a": [1]}))
    header = sealer.header
    assert header is not None and header.token == sealer.header_token
    assert header.verified_key == ALICE.identity.verify_key.encode()
    assert (header.name, header.size, header.chunk_size, header.created) == \
        ("Thư.pdf", 3, CHUNK, "2026-12-01T08:00:00Z")
    assert dict(header.meta) == {"a": [1]} and header.priority == 1
    assert header.size_class == 0
    assert header.digest is None
    v2 = Sealer(size=3, **_args(version=2))
    assert v2.header is None and v2.header_token is None


def test_meta_is_copied_when_sealing() -> None:
    meta: dict[str, Any] = {"list": [1]}
    for version in (2, 3):
        sealer = Sealer(size=1, **_args(meta=meta, version=version))
        meta["list"].append(2)
        meta["new"] = True
        sealer.feed(b"x")
        envelope = sealer.finish()
        opened = open_header(envelope.header, node_id=BOB.node_id, encryption_keys=bob_keys())
        assert dict(opened.meta) == {"list": [1]}
        meta = {"list": [1]}


@pytest.mark.parametrize("version", [2, 3])
def test_the_injected_digest_is_what_is_signed_when_feeding(version: int) -> None:
    digest = Fixed()
    sealer = Sealer(size=3, **_args(version=version, plaintext_digest=digest))
    sealer.feed(b"abc")
    envelope = sealer.finish()
    assert bytes(digest.fed) == b"abc"
    assert envelope.header.sha256 == "05" * 32
    if version == 3:
        assert check_trailer(envelope.header, envelope.trailer)[1] == "05" * 32


@pytest.mark.parametrize("version", [2, 3])
def test_digest_only_sealing_hashes_with_the_injected_digest(version: int) -> None:
    digest = Fixed(b"\x06" * 32)
    sealer = Sealer(size=4, **_args(version=version, plaintext_digest=digest))
    sealer.digest(b"ab")
    sealer.digest(memoryview(b"cd"))
    envelope = sealer.finish()
    assert bytes(digest.fed) == b"abcd"
    assert envelope.header.sha256 == "06" * 32
    assert envelope.tail == b""
    assert (envelope.trailer is not None) == (version == 3)


@pytest.mark.parametrize("version", [2, 3])
def test_digest_only_sealing_signs_the_sha256_of_what_was_read(version: int) -> None:
    random = FixedRandom(f"digest-only-{version}")
    sealer = Sealer(size=5, **_args(version=version, random_bytes=random, message_id=MID))
    sealer.digest(b"hel")
    sealer.digest(b"lo")
    envelope = sealer.finish()
    assert envelope.header.sha256 == hashlib.sha256(b"hello").hexdigest()
    stream_header = sealer.stream_header
    assert stream_header == random.draws[1]
    if version == 3:
        ciphertext = _stream(envelope.header_token, random, b"hello", envelope.trailer)
        header = _verified(envelope.header_token)
        assert open_all(header, ciphertext, node_id=BOB.node_id,
                        encryption_keys=bob_keys()) == b"hello"


def test_digest_and_feed_do_not_mix() -> None:
    sealer = Sealer(size=4, **_args())
    sealer.digest(b"ab")
    assert refused(ValueError, sealer.feed, b"cd") == \
        "this Sealer is hashing only (digest() was called)"
    assert refused(SizeMismatch, sealer.digest, b"abc") == \
        "more plaintext than the declared 4 bytes (did the file grow while it was being sealed?)"
    sealer.digest(b"c")
    assert refused(SizeMismatch, sealer.finish) == \
        "only 3 of the declared 4 plaintext bytes were read (did the file shrink while it was " \
        "being sealed?)"
    sealer.digest(b"d")
    assert sealer.finish().header.sha256 == hashlib.sha256(b"abcd").hexdigest()
    feeding = Sealer(size=4, **_args())
    feeding.feed(b"ab")
    assert refused(ValueError, feeding.digest, b"cd") == \
        "this Sealer is already encrypting (feed() was called)"
    v1 = Sealer(size=4, **_args(version=1))
    assert refused(ValueError, v1.digest, b"ab") == \
        "a v1 header signs the ciphertext's digest: feed() it"


def test_a_v3_envelope_s_parts() -> None:
    data = b"y" * (CHUNK + 1)
    sealer = Sealer(size=len(data), **_args(message_id=MID))
    head = sealer.feed(data)
    envelope = sealer.finish()
    assert envelope.header_token == sealer.header_token
    assert len(envelope.tail) == TRAILER_BYTES + 17                 # the trailer chunk
    assert envelope.header.sha256 == hashlib.sha256(data).hexdigest()
    assert len(head + envelope.tail) == envelope.header.ciphertext_size
    assert check_trailer(_verified(envelope.header_token), envelope.trailer) == \
        (len(data), hashlib.sha256(data).hexdigest())
    v2 = Sealer(size=1, **_args(version=2))
    v2.feed(b"z")
    v2_envelope = v2.finish()
    assert v2_envelope.trailer is None and v2_envelope.tail == b""
    assert v2_envelope.header.verified_key == ALICE.identity.verify_key.encode()
    assert jws.decode(v2_envelope.header_token, ENVELOPE_TYP).kid == ALICE.node_id


def test_a_v1_envelope_signs_its_ciphertext_digest() -> None:
    sealer = Sealer(size=3, **_args(version=1))
    ciphertext = sealer.feed(b"abc")
    envelope = sealer.finish()
    assert envelope.header.ciphertext_sha256 == \
        hashlib.sha256(ciphertext + envelope.tail).hexdigest()
    assert "ciphertext_sha256" in jws.decode(envelope.header_token, ENVELOPE_TYP).payload


def test_nothing_of_another_key_signs() -> None:
    other = nacl.signing.SigningKey(b"\x09" * 32)
    assert refused(ValueError, Sealer, size=1, **_args(identity=other)) == \
        "identity is not the signing key of node ID sender"


# -- found by mutation testing: each field named in its refusal --------------------------------

def test_sealer_field_refusals_name_the_field() -> None:
    assert refused(MalformedHeader, Sealer, size=1, **_args(message_id="X" * 32)) == \
        "message_id must be 32 lowercase hex digits"
    assert refused(MalformedHeader, Sealer, size=1, **_args(created="x")) == \
        "created must be RFC 3339 UTC text like 2026-11-25T22:00:00Z, not 'x'"
    assert refused(MalformedHeader, Sealer, size=-1, **_args()) == \
        "size: size must be an integer from 0 to 4503599627370496, not -1"
    assert refused(MalformedHeader, Sealer, size=1, **_args(name=5)).startswith("file name")
    assert refused(MalformedHeader, Sealer, size=1, **_args(version=2, priority=True)) == \
        "priority must be an integer from 0 to 3"


def test_header_refusals_name_the_field() -> None:
    token, _, _ = _seal(b"abc")
    sender = refused(MalformedHeader, _verified, _resign(token, lambda p: p.update(sender="x")))
    assert sender.startswith("sender: ")
    recipient = refused(MalformedHeader, _verified,
                        _resign(token, lambda p: p.update(recipients=["x"])))
    assert recipient.startswith("recipient: ")
    v1, _, _ = _seal(b"abc", version=1)
    for bad in ("x", "A" * 64, 5):
        assert refused(MalformedHeader, decode_header,
                       _resign(v1, lambda p, b=bad: p.update(ciphertext_sha256=b))) == \
            "ciphertext_sha256 must be 64 lowercase hex digits"


@pytest.mark.parametrize("version", [2, 3])
def test_the_opener_hashes_with_the_injected_digest(version: int) -> None:
    data = b"opened"
    token, ciphertext, _ = _seal(data, version=version)
    digest = Fixed(hashlib.sha256(data).digest())
    opener = Opener(_verified(token), node_id=BOB.node_id, encryption_keys=bob_keys(),
                    plaintext_digest=digest)
    assert opener.feed(ciphertext) == data
    opener.finish()
    assert bytes(digest.fed) == data
    lying = Opener(_verified(token), node_id=BOB.node_id, encryption_keys=bob_keys(),
                   plaintext_digest=Fixed(b"\x00" * 32))
    lying.feed(ciphertext)
    with pytest.raises(DigestMismatch):
        lying.finish()
