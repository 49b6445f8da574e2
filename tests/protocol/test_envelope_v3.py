"""Envelope v3: only routing facts readable, contents sealed under the file key, size and
SHA-256 bound by a trailer the sender signs at the end of the stream; every new field
tampered with is refused with its own error and nothing opens as a finished document."""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import nacl.bindings as sodium
import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from lienthong.keys import jws
from lienthong.protocol.envelope import (
    ENVELOPE_TYP,
    TRAILER_BYTES,
    EnvelopeHeader,
    SealedContents,
    contents_key,
    decode_header,
    open_header,
    open_header_key,
    sign_trailer,
    size_class,
    verify_header,
)
from lienthong.protocol.errors import (
    BadSignature,
    BadTrailer,
    DecryptError,
    DigestMismatch,
    EarlyFinal,
    MalformedHeader,
    NotForUs,
    ReceiptMismatch,
    TrailingData,
    Truncated,
)
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.payload import PayloadEncryptor
from lienthong.protocol.receipt import issue_receipt, verify_receipt
from lienthong.protocol.sealing import Opener, Sealer, open_all, seal_all
from tests.vectors.make_vectors import FixedRandom, party

ALICE, BOB, CAROL, MALLORY = party("alice"), party("bob"), party("carol"), party("mallory")
CHUNK = 4096
NAME = "Tờ trình nhân sự - Lê Văn Tám.docx"
META = {"subject": "Đề nghị bổ nhiệm", "confidentiality": "Mật", "petition": {"citizen":
                                                                             "Nguyễn Thị Hoa"}}
SECRETS = ("Tờ trình", "Lê Văn Tám", "bổ nhiệm", "Mật", "Nguyễn Thị Hoa", "petition")


def _args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        identity=ALICE.identity, sender=ALICE.node_id, sender_key=ALICE.sealing_key,
        recipients={BOB.node_id: BOB.sealing_key, CAROL.node_id: CAROL.sealing_key},
        name=NAME, message_id=new_message_id(), created="2026-12-01T08:00:00Z", meta=META,
        chunk_size=CHUNK, version=3, priority=1)
    args.update(overrides)
    return args


def _seal(data: bytes, **overrides: Any) -> tuple[str, bytes, Any]:
    envelope, ciphertext = seal_all(data, **_args(**overrides))
    return envelope.header_token, ciphertext, envelope


def _verified(token: str) -> EnvelopeHeader:
    return verify_header(token, ALICE.identity.verify_key, expected_sender=ALICE.node_id)


def _open(token: str, ciphertext: bytes, reader: Any = BOB) -> bytes:
    return open_all(_verified(token), ciphertext, node_id=reader.node_id,
                    encryption_keys={reader.kid: reader.encryption})


def _resign(token: str, change: Any) -> str:
    """What a sender (holding its identity key) could sign: the header changed by ``change``."""
    payload = dict(jws.decode(token, ENVELOPE_TYP).payload)
    change(payload)
    return jws.sign(ALICE.identity, ENVELOPE_TYP, payload, kid=ALICE.node_id)


def _stream(token: str, random: FixedRandom, plaintext: bytes, trailer: bytes | None,
            *, trailer_chunk: bool = True) -> bytes:
    """Re-make the ciphertext of a sealed envelope from its recorded draws, with another
    trailer (or, ``trailer_chunk`` False, a v2-style stream with none)."""
    header = decode_header(token)
    encryptor = PayloadEncryptor(random.draws[0], ad=bytes.fromhex(header.message_id),
                                 size=len(plaintext), chunk_size=CHUNK,
                                 random_bytes=lambda n: random.draws[1],
                                 trailer=TRAILER_BYTES if trailer_chunk else 0)
    head = encryptor.feed(plaintext)
    return head + encryptor.finish(trailer)[0]


# -- what is readable ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK, 3 * CHUNK + 5])
def test_round_trip_for_every_reader(size: int) -> None:
    data = os.urandom(size)
    token, ciphertext, envelope = _seal(data)
    assert len(ciphertext) == envelope.header.ciphertext_size
    for reader in (ALICE, BOB, CAROL):
        assert _open(token, ciphertext, reader) == data
    assert envelope.header.sha256 == hashlib.sha256(data).hexdigest()


def test_the_header_holds_routing_facts_and_sealed_boxes_only() -> None:
    token, _, envelope = _seal(b"noi dung" * 1000)
    payload = jws.decode(token, ENVELOPE_TYP).payload
    assert set(payload) == {"v", "message_id", "sender", "recipients", "size_class",
                            "priority", "keys", "sealed"}
    assert (payload["v"], payload["priority"], payload["size_class"]) == (3, 1, 0)
    readable = token + str(payload)
    for secret in SECRETS:
        assert secret not in readable
    header = decode_header(token)
    with pytest.raises(SealedContents):
        _ = header.name
    with pytest.raises(SealedContents):
        _ = header.sha256
    opened = open_header(header, node_id=CAROL.node_id,
                         encryption_keys={CAROL.kid: CAROL.encryption})
    assert (opened.name, dict(opened.meta)) == (NAME, META)
    with pytest.raises(NotForUs):
        open_header(header, node_id=MALLORY.node_id,
                    encryption_keys={MALLORY.kid: MALLORY.encryption})
    assert envelope.header.name == NAME


def test_the_file_key_opened_with_the_header_opens_the_stream_without_the_reader_keys() -> None:
    """``open_header_key`` hands back the file key it opened the contents with, and an
    ``Opener`` given it decrypts without the reader's private keys: one X25519 operation per
    document at the receiver, not two. A v2 header (nothing sealed) and one already opened
    give no key; a wrong or short key opens nothing."""
    data = os.urandom(3 * CHUNK + 5)
    token, ciphertext, _ = _seal(data)
    header, file_key = open_header_key(_verified(token), node_id=BOB.node_id,
                                       encryption_keys={BOB.kid: BOB.encryption})
    assert file_key is not None and len(file_key) == 32
    assert (header.name, dict(header.meta)) == (NAME, META)
    opener = Opener(header, node_id=BOB.node_id, encryption_keys={}, file_key=file_key)
    assert opener.feed(ciphertext) == data
    assert opener.finish().sha256 == hashlib.sha256(data).hexdigest()
    # The same key also opens a header whose contents are still sealed.
    assert Opener(_verified(token), node_id=BOB.node_id, encryption_keys={},
                  file_key=file_key).header.name == NAME
    assert open_header_key(header, node_id=BOB.node_id, encryption_keys={}) == (header, None)
    v2_token, _, _ = _seal(data, version=2)
    v2 = _verified(v2_token)
    assert open_header_key(v2, node_id=BOB.node_id,
                           encryption_keys={BOB.kid: BOB.encryption}) == (v2, None)
    with pytest.raises(DecryptError):   # another document's key: the contents do not open
        Opener(_verified(_seal(data)[0]), node_id=BOB.node_id, encryption_keys={},
               file_key=file_key)
    with pytest.raises(ValueError):
        Opener(header, node_id=BOB.node_id, encryption_keys={}, file_key=file_key[:16])
    wrong = Opener(header, node_id=BOB.node_id, encryption_keys={}, file_key=bytes(32))
    with pytest.raises(DecryptError):   # opened contents, wrong key: the first chunk fails
        wrong.feed(ciphertext)


def test_size_classes_are_coarse() -> None:
    assert [size_class(n) for n in (0, 65536, 65537, 1 << 20, (1 << 20) + 1, 1 << 40)] == \
        [0, 0, 1, 1, 2, 6]


def test_the_header_is_signed_before_the_first_byte_and_digest_only_sealing_matches() -> None:
    """A v3 sender can offer at once: the header exists before any plaintext; hashing only
    and re-encrypting later (the node's way) gives the same stream as encrypting at once."""
    data = os.urandom(2 * CHUNK + 100)
    mid = new_message_id()
    first, second = FixedRandom("a"), FixedRandom("a")
    sealer = Sealer(size=len(data), **_args(message_id=mid, random_bytes=first))
    assert sealer.header_token is not None
    early = sealer.header_token
    ciphertext = sealer.feed(data)
    envelope = sealer.finish()
    ciphertext += envelope.tail
    assert envelope.header_token == early
    hasher = Sealer(size=len(data), **_args(message_id=mid, random_bytes=second))
    hasher.digest(data)
    digested = hasher.finish()
    assert digested.header_token == early and digested.trailer == envelope.trailer
    assert _stream(early, second, data, digested.trailer) == ciphertext
    assert _open(early, ciphertext) == data
    assert Sealer(size=1, **_args(version=2)).header_token is None


# -- tampering, field by field ---------------------------------------------------------------

def test_reordered_chunks_fail_authentication() -> None:
    data = os.urandom(3 * CHUNK)
    token, ciphertext, _ = _seal(data)
    c = 24
    chunk = CHUNK + 17
    swapped = ciphertext[:c] + ciphertext[c + chunk:c + 2 * chunk] + ciphertext[c:c + chunk] + \
        ciphertext[c + 2 * chunk:]
    with pytest.raises(DecryptError):
        _open(token, swapped)


@pytest.mark.parametrize("cut", [TRAILER_BYTES + 17, 50, 1])
def test_a_stream_cut_before_or_inside_its_trailer_is_truncated(cut: int) -> None:
    token, ciphertext, _ = _seal(os.urandom(2 * CHUNK))
    with pytest.raises(Truncated):
        _open(token, ciphertext[:-cut])


def test_a_stream_without_its_trailer_chunk_is_refused() -> None:
    """The plaintext's last chunk carrying the final tag (a v2-style stream under a v3 header):
    the trailer is missing."""
    random = FixedRandom("missing")
    data = os.urandom(CHUNK + 7)
    token, _, _ = _seal(data, random_bytes=random)
    with pytest.raises(EarlyFinal, match="signed trailer"):
        _open(token, _stream(token, random, data, None, trailer_chunk=False))


def test_bytes_after_the_trailer_are_refused() -> None:
    token, ciphertext, _ = _seal(b"x" * 100)
    with pytest.raises(TrailingData):
        _open(token, ciphertext + b"\x00")


def test_a_trailer_from_another_document_is_refused() -> None:
    """Same sender, same content, another envelope: its trailer signs another header."""
    data = os.urandom(CHUNK)
    random = FixedRandom("target")
    token, _, _ = _seal(data, random_bytes=random)
    _, _, other = _seal(data)
    assert other.trailer is not None and other.trailer[:40] == _seal(data)[2].trailer[:40]
    with pytest.raises(BadTrailer, match="another document"):
        _open(token, _stream(token, random, data, other.trailer))


def test_an_altered_trailer_is_refused() -> None:
    data = os.urandom(CHUNK)
    random = FixedRandom("altered")
    token, _, envelope = _seal(data, random_bytes=random)
    for index in (0, 20, TRAILER_BYTES - 1):
        trailer = bytearray(envelope.trailer)
        trailer[index] ^= 0x04
        with pytest.raises(BadTrailer):
            _open(token, _stream(token, random, data, bytes(trailer)))


def test_a_signed_wrong_digest_or_size_is_a_digest_mismatch_at_the_end() -> None:
    """The sender itself signed a trailer that does not fit the stream: refused at END."""
    data = os.urandom(CHUNK + 1)
    random = FixedRandom("wrong-digest")
    token, _, _ = _seal(data, random_bytes=random)
    header_sha256 = hashlib.sha256(token.encode()).hexdigest()
    wrong = sign_trailer(ALICE.identity, header_sha256, len(data), "ab" * 32)
    with pytest.raises(DigestMismatch, match="signed in its trailer"):
        _open(token, _stream(token, random, data, wrong))
    wrong_size = sign_trailer(ALICE.identity, header_sha256, len(data) + 1,
                              hashlib.sha256(data).hexdigest())
    with pytest.raises(DigestMismatch, match="trailer says"):
        _open(token, _stream(token, random, data, wrong_size))


def test_a_trailer_signed_by_someone_else_is_refused() -> None:
    data = os.urandom(100)
    random = FixedRandom("forged")
    token, _, _ = _seal(data, random_bytes=random)
    forged = sign_trailer(MALLORY.identity, hashlib.sha256(token.encode()).hexdigest(),
                          len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(BadTrailer):
        _open(token, _stream(token, random, data, forged))


def test_an_unverified_header_cannot_finish() -> None:
    """decode_header alone names no verified key: the trailer cannot be checked."""
    token, ciphertext, _ = _seal(b"abc")
    opener = Opener(decode_header(token), node_id=BOB.node_id,
                    encryption_keys={BOB.kid: BOB.encryption})
    opener.feed(ciphertext)
    with pytest.raises(BadTrailer, match="not verified"):
        opener.finish()


def test_the_routing_part_is_signed() -> None:
    token, _, _ = _seal(b"abc")
    head, payload, signature = token.split(".")
    decoded = dict(jws.decode(token, ENVELOPE_TYP).payload)
    for field, value in (("priority", 0), ("size_class", 3), ("recipients", [BOB.node_id])):
        forged = dict(decoded, **{field: value})
        forged_token = ".".join((head, jws.b64url_encode(jws.canonical_json(forged)),
                                 signature))
        with pytest.raises(BadSignature):
            _verified(forged_token)


@pytest.mark.parametrize(("change", "match"), [
    (lambda p: p.update(priority=4), "priority"),
    (lambda p: p.update(priority=True), "priority"),
    (lambda p: p.update(size_class=7), "size_class"),
    (lambda p: p.update(sealed="!!"), "sealed"),
    (lambda p: p.update(sealed=jws.b64url_encode(b"short")), "too short"),
    (lambda p: p.pop("sealed"), "missing"),
    (lambda p: p.update(name="lo.txt"), "unknown"),
    (lambda p: p.update(sha256="00" * 32), "unknown"),
])
def test_malformed_routing_fields_are_refused(change: Any, match: str) -> None:
    token, _, _ = _seal(b"abc")
    with pytest.raises(MalformedHeader, match=match):
        _verified(_resign(token, change))


def test_a_size_class_that_does_not_fit_the_sealed_size_is_refused() -> None:
    token, ciphertext, _ = _seal(b"abc")
    forged = _resign(token, lambda p: p.update(size_class=2))
    with pytest.raises(MalformedHeader, match="size_class"):
        _open(forged, ciphertext)


def test_altered_sealed_contents_do_not_open() -> None:
    token, ciphertext, _ = _seal(b"abc")

    def flip(p: dict[str, Any]) -> None:
        raw = bytearray(jws.b64url_decode(p["sealed"]))
        raw[-1] ^= 1
        p["sealed"] = jws.b64url_encode(bytes(raw))
    with pytest.raises(DecryptError, match="sealed contents"):
        _open(_resign(token, flip), ciphertext)


def test_contents_of_the_wrong_shape_are_refused() -> None:
    """A sender that seals contents outside the schema (the file key is its own)."""
    random = FixedRandom("contents")
    data = b"abc"
    token, _, _ = _seal(data, random_bytes=random)
    key = contents_key(random.draws[0])
    mid = decode_header(token).message_id

    def open_resealed(contents: dict[str, Any]) -> bytes:
        nonce = b"\x01" * 24
        box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            jws.canonical_json(contents), bytes.fromhex(mid), nonce, key)
        resealed = _resign(token, lambda p: p.update(sealed=jws.b64url_encode(nonce + box)))
        trailer = sign_trailer(ALICE.identity, hashlib.sha256(resealed.encode()).hexdigest(),
                               len(data), hashlib.sha256(data).hexdigest())
        return _open(resealed, _stream(resealed, random, data, trailer))

    good = {"name": "a.txt", "created": "2026-12-01T08:00:00Z", "size": 3, "chunk_size": CHUNK,
            "meta": {}}
    assert open_resealed(good) == data
    for bad, match in ((dict(good, extra=1), "unknown"), (dict(good, name="a/b"), "'/'"),
                       (dict(good, meta=[]), "meta"), (dict(good, chunk_size=10), "chunk_size")):
        with pytest.raises(MalformedHeader, match=match):
            open_resealed(bad)
    # A sealed size the stream does not have: its chunk boundaries fall elsewhere.
    with pytest.raises(DecryptError):
        open_resealed(dict(good, size=4))


# -- receipts --------------------------------------------------------------------------------

def test_a_receipt_binds_the_digest_the_trailer_proved_and_any_jose_library_checks_it() -> None:
    data = b"Quyet dinh\n" * 500
    token, ciphertext, envelope = _seal(data)
    opener = Opener(_verified(token), node_id=BOB.node_id,
                    encryption_keys={BOB.kid: BOB.encryption})
    opener.feed(ciphertext)
    proven = opener.finish()
    assert proven.sha256 == hashlib.sha256(data).hexdigest()
    receipt = issue_receipt(BOB.identity, recipient=BOB.node_id, header=proven,
                            time="2026-12-01T08:00:05Z")
    # The sender checks it against its stored token and its own record of what it sealed.
    stored = decode_header(token)
    info = verify_receipt(receipt, BOB.identity.verify_key, expected=stored,
                          recipient=BOB.node_id, sha256=envelope.header.sha256, size=len(data))
    assert (info.sha256, info.size) == (proven.sha256, len(data))
    with pytest.raises(ReceiptMismatch):
        verify_receipt(receipt, BOB.identity.verify_key, expected=stored,
                       recipient=BOB.node_id, sha256="00" * 32, size=len(data))
    with pytest.raises(ValueError, match="give it"):
        verify_receipt(receipt, BOB.identity.verify_key, expected=stored)
    jwk = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519",
                             "x": jws.b64url_encode(BOB.identity.verify_key.encode())})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = jose_jws.deserialize_compact(receipt, jwk, algorithms=["EdDSA"])
    assert b'"sha256":"' + proven.sha256.encode() in result.payload


def test_ciphertext_sizes_as_docs_protocol_lists_them() -> None:
    """docs/protocol.md Part A §8.3: the examples at chunk size 4096."""
    from lienthong.protocol.layout import ciphertext_size
    assert [ciphertext_size(n, CHUNK, TRAILER_BYTES) for n in (0, 1, 4096, 10240)] == \
        [162, 163, 4258, 10436]
