"""Envelope headers, Sealer and Opener (protocol/envelope.py): round trips and every tamper."""
from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import nacl.public
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.keys import jws
from lienthong.protocol.envelope import ENVELOPE_TYP, EnvelopeHeader, decode_header, verify_header
from lienthong.protocol.errors import (
    BadSignature,
    DecryptError,
    DigestMismatch,
    EnvelopeError,
    HeaderWrongType,
    MalformedHeader,
    NotForUs,
    SenderMismatch,
    SizeMismatch,
    TrailingData,
    Truncated,
)
from lienthong.protocol.fields import new_message_id, rfc3339_utc
from lienthong.protocol.layout import CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE, HEADER_BYTES
from lienthong.protocol.receipt import issue_receipt
from lienthong.protocol.sealing import Opener, Sealer, open_all, seal_all
from tests.vectors.make_vectors import Party, party

CS = 4096
ALICE, BOB, CAROL, MALLORY = party("alice"), party("bob"), party("carol"), party("mallory")
CREATED = "2026-11-25T22:00:00Z"
SIZES = [0, 1, CS - 1, CS, CS + 1, 3 * CS + 5]


def _args(sender: Party = ALICE, readers: tuple[Party, ...] = (BOB, CAROL),
          **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        identity=sender.identity, sender=sender.node_id, sender_key=sender.sealing_key,
        recipients={p.node_id: p.sealing_key for p in readers}, name="Báo cáo.pdf",
        message_id=new_message_id(), created=CREATED, chunk_size=CS)
    args.update(overrides)
    return args


def _seal(plaintext: bytes, **overrides: Any) -> tuple[str, bytes]:
    envelope, ciphertext = seal_all(plaintext, **_args(**overrides))
    return envelope.header_token, ciphertext


def _verify(token: str, sender: Party = ALICE) -> EnvelopeHeader:
    return verify_header(token, sender.identity.verify_key, expected_sender=sender.node_id)


def _open(token: str, ciphertext: bytes, reader: Party = BOB) -> bytes:
    return open_all(_verify(token), ciphertext, node_id=reader.node_id,
                    encryption_keys={reader.kid: reader.encryption})


def resign(token: str, signer: Party, change: Callable[[dict[str, Any]], None],
           typ: str = ENVELOPE_TYP) -> str:
    """Decode a token's payload, change it, and sign it again with ``signer``."""
    payload = jws.decode(token, ENVELOPE_TYP).payload
    change(payload)
    return jws.sign(signer.identity, typ, payload, kid=payload["sender"])


def _chunks(ciphertext: bytes, size: int) -> list[bytes]:
    out, pos = [ciphertext[:HEADER_BYTES]], HEADER_BYTES
    while pos < len(ciphertext):
        out.append(ciphertext[pos:pos + CS + CHUNK_OVERHEAD])
        pos += CS + CHUNK_OVERHEAD
    return out


# -- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_round_trip_every_reader(size: int) -> None:
    """Both recipients and the sender itself open the envelope to the original bytes."""
    data = os.urandom(size)
    token, ciphertext = _seal(data)
    for reader in (BOB, CAROL, ALICE):
        assert _open(token, ciphertext, reader) == data


def test_round_trip_default_chunk_size() -> None:
    """With the default 256 KiB chunk a 600 KiB document round-trips."""
    data = os.urandom(600 * 1024)
    token, ciphertext = _seal(data, chunk_size=DEFAULT_CHUNK_SIZE)
    assert _verify(token).chunk_size == DEFAULT_CHUNK_SIZE
    assert _open(token, ciphertext) == data


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from(SIZES), data=st.data())
def test_streaming_in_random_pieces(size: int, data: st.DataObject) -> None:
    """Sealer and Opener fed in arbitrary pieces give the same bytes as whole-buffer calls."""
    plaintext = os.urandom(size)
    sealer = Sealer(size=size, **_args())
    cuts = sorted(data.draw(st.lists(st.integers(0, size), max_size=6)) + [0, size])
    ciphertext = b"".join(sealer.feed(plaintext[a:b]) for a, b in pairwise(cuts))
    envelope = sealer.finish()
    ciphertext += envelope.tail
    assert ciphertext[:HEADER_BYTES] and len(ciphertext) == envelope.header.ciphertext_size
    opener = Opener(_verify(envelope.header_token), node_id=CAROL.node_id,
                    encryption_keys={CAROL.kid: CAROL.encryption})
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ciphertext)), max_size=6))
                  + [0, len(ciphertext)])
    out = b"".join(opener.feed(ciphertext[a:b]) for a, b in pairwise(cuts))
    opener.finish()
    assert out == plaintext


def test_header_fields() -> None:
    """The signed (v2) header carries exactly what was sealed and the plaintext's digest."""
    data = "Nội dung công văn".encode() * 500
    message_id = new_message_id()
    envelope, ciphertext = seal_all(data, **_args(message_id=message_id, meta={"urgency": "flash"}))
    header = _verify(envelope.header_token)
    assert header == envelope.header
    assert (header.message_id, header.sender, header.recipients) == (
        message_id, ALICE.node_id, (BOB.node_id, CAROL.node_id))
    assert (header.name, header.size, header.created) == ("Báo cáo.pdf", len(data), CREATED)
    assert header.sha256 == hashlib.sha256(data).hexdigest()
    assert header.version == 2 and header.ciphertext_sha256 is None
    assert "ciphertext_sha256" not in jws.decode(envelope.header_token, ENVELOPE_TYP).payload
    assert header.ciphertext_size == len(ciphertext)
    assert {k.node_id for k in header.keys} == {ALICE.node_id, BOB.node_id, CAROL.node_id}
    assert header.key_for(BOB.node_id).kid == BOB.kid  # type: ignore[union-attr]
    assert dict(header.meta) == {"urgency": "flash"}
    assert header.header_sha256 == hashlib.sha256(envelope.header_token.encode()).hexdigest()


def test_sealed_keys_open_with_standard_sealed_box() -> None:
    """Each reader's sealed key opens with nacl.public.SealedBox and all hold the same key."""
    token, _ = _seal(b"x")
    header = _verify(token)
    sealed = {p: header.key_for(p.node_id) for p in (ALICE, BOB, CAROL)}
    keys = {nacl.public.SealedBox(p.encryption).decrypt(entry.sealed)  # type: ignore[union-attr]
            for p, entry in sealed.items()}
    assert len(keys) == 1 and len(keys.pop()) == 32


def test_name_is_normalised_to_nfc_when_sealing() -> None:
    """A name given in NFD is sealed in NFC (macOS and SMB clients write NFD)."""
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Hường.pdf")
    token, _ = _seal(b"x", name=nfd)
    assert _verify(token).name == unicodedata.normalize("NFC", nfd) != nfd


def test_rfc3339_utc() -> None:
    """rfc3339_utc renders POSIX time as UTC with a Z."""
    assert rfc3339_utc(1795730400.9) == "2026-11-26T22:00:00Z"


# -- sealer refusals ---------------------------------------------------------------------------

def test_sealer_refuses_more_than_declared() -> None:
    """Feeding past the declared size raises SizeMismatch immediately."""
    sealer = Sealer(size=3, **_args())
    with pytest.raises(SizeMismatch):
        sealer.feed(b"four")


def test_sealer_refuses_less_than_declared() -> None:
    """Finishing short of the declared size raises SizeMismatch and signs nothing."""
    sealer = Sealer(size=3, **_args())
    sealer.feed(b"ab")
    with pytest.raises(SizeMismatch):
        sealer.finish()


@pytest.mark.parametrize("overrides", [
    {"name": "a/b.pdf"}, {"name": "a\\b.pdf"}, {"name": "a\x00b"}, {"name": ""},
    {"name": "Ệ" * 100}, {"message_id": "ABC"}, {"created": "2026-11-25 22:00:00"},
    {"created": "2026-13-25T22:00:00Z"}, {"recipients": {}}, {"meta": {"x": float("nan")}},
    {"recipients": {"not-a-node-id": ("k", BOB.encryption.public_key)}},
    {"sender_key": ("", ALICE.encryption.public_key)},
])
def test_sealer_refuses_bad_fields(overrides: dict[str, Any]) -> None:
    """Invalid names, IDs, times, recipients, kids or meta are refused before any work."""
    with pytest.raises(MalformedHeader):
        Sealer(size=1, **_args(**overrides))


def test_sealer_refuses_foreign_identity() -> None:
    """The identity key must be the one the sender's node ID names."""
    with pytest.raises(ValueError):
        Sealer(size=1, **_args(identity=MALLORY.identity))


# -- header tampering --------------------------------------------------------------------------

def test_payload_part_changed_without_resigning() -> None:
    """A header whose payload was changed (still valid JSON) fails the signature check."""
    token, _ = _seal(b"hello")
    head, payload, sig = token.split(".")
    fields = jws.decode(token, ENVELOPE_TYP).payload
    fields["size"] = 6
    forged = ".".join([head, jws.b64url_encode(jws.canonical_json(fields)), sig])
    with pytest.raises(BadSignature):
        _verify(forged)


def test_any_flipped_character_is_refused() -> None:
    """Flipping any character of the token never yields a header that verifies."""
    token, _ = _seal(b"hello")
    for i in range(0, len(token), 7):
        if token[i] == ".":
            continue
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        with pytest.raises(EnvelopeError):
            _verify(flipped)


def test_signature_byte_flipped() -> None:
    """A header with one signature byte flipped raises BadSignature."""
    token, _ = _seal(b"hello")
    head, payload, sig = token.split(".")
    raw = bytearray(jws.b64url_decode(sig))
    raw[10] ^= 0x80
    with pytest.raises(BadSignature):
        _verify(".".join([head, payload, jws.b64url_encode(bytes(raw))]))


def _flip_sealed(node_id: str) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        raw = bytearray(jws.b64url_decode(payload["keys"][node_id]["sealed"]))
        raw[40] ^= 0x01
        payload["keys"][node_id]["sealed"] = jws.b64url_encode(bytes(raw))
    return change


def test_sealed_key_edited_and_resigned_by_another_key() -> None:
    """Editing a sealed key and re-signing with any key but the sender's fails the signature."""
    token, _ = _seal(b"hello")
    with pytest.raises(BadSignature):
        _verify(resign(token, MALLORY, _flip_sealed(BOB.node_id)))


def test_corrupt_sealed_key_in_a_correctly_signed_header() -> None:
    """A sealed key that does not open (header signed by the real sender) raises DecryptError."""
    token, ciphertext = _seal(b"hello")
    forged = resign(token, ALICE, _flip_sealed(BOB.node_id))
    with pytest.raises(DecryptError):
        _open(forged, ciphertext, BOB)


def test_header_claiming_another_sender_signed_by_non_sender() -> None:
    """Mallory's signature on a header naming Alice fails with Alice's key and with Mallory's."""
    token, _ = _seal(b"hello")
    forged = resign(token, MALLORY, lambda p: None)
    with pytest.raises(BadSignature):
        verify_header(forged, ALICE.identity.verify_key)
    with pytest.raises(BadSignature):
        verify_header(forged, MALLORY.identity.verify_key)


def test_sender_must_be_the_authenticated_peer() -> None:
    """A genuine header from Mallory, on a connection authenticated as Alice, is refused."""
    token, _ = _seal(b"hello", sender=MALLORY)
    with pytest.raises(SenderMismatch):
        verify_header(token, MALLORY.identity.verify_key, expected_sender=ALICE.node_id)


def test_receipt_given_as_header() -> None:
    """A receipt token offered as an envelope header raises HeaderWrongType."""
    token, _ = _seal(b"hello")
    receipt = issue_receipt(BOB.identity, recipient=BOB.node_id, header=_verify(token),
                            time=CREATED)
    with pytest.raises(HeaderWrongType):
        verify_header(receipt, BOB.identity.verify_key)
    with pytest.raises(HeaderWrongType):
        decode_header(receipt)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda p: p.__setitem__(key, value)


@pytest.mark.parametrize("change", [
    _set("v", 1), _set("v", 3), _set("v", 0), _set("v", 2.0), _set("v", True),
    _set("ciphertext_sha256", "ab" * 32), _set("size", 5.0), _set("size", -1),
    _set("size", True), _set("name", "../../etc/passwd"),
    _set("name", unicodedata.normalize("NFD", "Hường")), _set("extra", 1),
    lambda p: p.pop("meta"), _set("meta", []), _set("recipients", []),
    lambda p: p.__setitem__("recipients", p["recipients"] * 2),
    _set("ciphertext_size", 1), _set("chunk_size", 1024), _set("created", "yesterday"),
    _set("sha256", "00" * 31), _set("message_id", "G" * 32),
    _set("recipients", ["fm7b4h3-rsiy5mz-fzqpnwm-5rzmauv-qtd3zsb-s3ncago-azmb532-o4yqcqe"]),
    lambda p: p["keys"].pop(next(iter(p["keys"]))),
    lambda p: p["keys"].__setitem__(MALLORY.node_id, {"kid": "m", "sealed": "AA"}),
    lambda p: next(iter(p["keys"].values())).__setitem__("kid", ""),
])
def test_schema_violations_in_signed_headers(change: Callable[[dict[str, Any]], None]) -> None:
    """A correctly signed header that breaks the v2 schema raises MalformedHeader (a v2 header
    with v1's ciphertext_sha256 too)."""
    token, _ = _seal(b"hello")
    with pytest.raises(MalformedHeader):
        _verify(resign(token, ALICE, change))


def test_kid_must_be_the_sender() -> None:
    """A header whose JWS kid is not its sender's node ID is refused."""
    token, _ = _seal(b"hello")
    payload = jws.decode(token, ENVELOPE_TYP).payload
    forged = jws.sign(ALICE.identity, ENVELOPE_TYP, payload, kid=BOB.node_id)
    with pytest.raises(MalformedHeader):
        _verify(forged)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_tokens_only_raise_envelope_errors(junk: str | bytes) -> None:
    """Arbitrary text or bytes as a header only ever raise EnvelopeError subclasses."""
    with pytest.raises(EnvelopeError):
        decode_header(junk)


# -- payload tampering through the Opener --------------------------------------------------------

def _opener(token: str, reader: Party = BOB) -> Opener:
    return Opener(_verify(token), node_id=reader.node_id,
                  encryption_keys={reader.kid: reader.encryption})


@pytest.mark.parametrize("index", range(5))
def test_flipped_byte_in_each_chunk(index: int) -> None:
    """A flipped byte in the stream header or any chunk raises DecryptError."""
    size = 3 * CS + 5
    token, ciphertext = _seal(os.urandom(size))
    parts = _chunks(ciphertext, size)
    damaged = bytearray(parts[index])
    damaged[-1] ^= 0x01
    parts[index] = bytes(damaged)
    with pytest.raises(DecryptError):
        _open(token, b"".join(parts))


def test_dropped_last_chunk() -> None:
    """Without its final chunk the envelope raises Truncated at finish."""
    size = 3 * CS + 5
    token, ciphertext = _seal(os.urandom(size))
    opener = _opener(token)
    opener.feed(b"".join(_chunks(ciphertext, size)[:-1]))
    with pytest.raises(Truncated):
        opener.finish()


def test_reordered_and_duplicated_chunks() -> None:
    """Swapped chunks and a repeated chunk both raise DecryptError."""
    size = 3 * CS + 5
    token, ciphertext = _seal(os.urandom(size))
    parts = _chunks(ciphertext, size)
    swapped = parts[:1] + [parts[2], parts[1]] + parts[3:]
    repeated = parts[:2] + [parts[1]] + parts[3:]
    for stream in (swapped, repeated):
        with pytest.raises(DecryptError):
            _open(token, b"".join(stream))


def test_bytes_after_final() -> None:
    """Bytes after the final chunk raise TrailingData."""
    token, ciphertext = _seal(b"hello")
    with pytest.raises(TrailingData):
        _open(token, ciphertext + b"\x00")


def test_payload_of_another_envelope() -> None:
    """Another envelope's ciphertext under this header does not decrypt."""
    token, _ = _seal(b"hello")
    _, other = _seal(b"hello")
    with pytest.raises(DecryptError):
        _open(token, other)


def test_not_for_us() -> None:
    """A node with no sealed key, or without the key ID it names, gets NotForUs."""
    token, _ = _seal(b"hello")
    header = _verify(token)
    with pytest.raises(NotForUs):
        Opener(header, node_id=MALLORY.node_id, encryption_keys={MALLORY.kid: MALLORY.encryption})
    with pytest.raises(NotForUs):
        Opener(header, node_id=BOB.node_id, encryption_keys={"bob-x25519-0": BOB.encryption})


def test_wrong_private_key_under_the_right_kid() -> None:
    """A key ID mapped to the wrong private key raises DecryptError, not a crash."""
    token, _ = _seal(b"hello")
    with pytest.raises(DecryptError):
        Opener(_verify(token), node_id=BOB.node_id, encryption_keys={BOB.kid: CAROL.encryption})


@pytest.mark.parametrize(("field", "version"), [("sha256", 2), ("sha256", 1),
                                                 ("ciphertext_sha256", 1)])
def test_signed_digest_that_does_not_match(field: str, version: int) -> None:
    """A signed header promising another plaintext or (v1) ciphertext digest raises
    DigestMismatch, and keeps raising if the caller tries finish() again."""
    token, ciphertext = _seal(b"hello", version=version)
    opener = _opener(resign(token, ALICE, _set(field, "ab" * 32)))
    assert opener.feed(ciphertext) == b"hello"
    for _ in range(2):
        with pytest.raises(DigestMismatch):
            opener.finish()


@pytest.mark.parametrize("size", SIZES)
def test_v1_envelopes_still_seal_verify_and_open(size: int) -> None:
    """A v1 header (with ciphertext_sha256) is still read: queued and stored envelopes, and
    peers not yet upgraded."""
    data = os.urandom(size)
    token, ciphertext = _seal(data, version=1)
    header = _verify(token)
    assert header.version == 1
    assert header.ciphertext_sha256 == hashlib.sha256(ciphertext).hexdigest()
    assert _open(token, ciphertext) == data


@pytest.mark.parametrize("size", SIZES)
def test_digest_only_sealing_matches_encrypting_it_later(size: int) -> None:
    """Sealer.digest() (hash now, encrypt while sending) signs the same header as feeding,
    and the stream made later from the same key and stream header opens under it."""
    data = os.urandom(size)
    draws: list[bytes] = []

    def recorded(n: int) -> bytes:
        draws.append(os.urandom(n))
        return draws[-1]

    def replay() -> Callable[[int], bytes]:
        queue = list(draws)
        return lambda n: queue.pop(0)

    args = _args(random_bytes=recorded)
    sealer = Sealer(size=size, **args)
    sealer.digest(b"")
    for i in range(0, size, 1000):
        sealer.digest(data[i:i + 1000])
    hashed = sealer.finish()
    fed, ciphertext = seal_all(data, **dict(args, random_bytes=replay()))
    assert hashed.header_token == fed.header_token and hashed.tail == b""
    assert ciphertext[:HEADER_BYTES] == sealer.stream_header
    assert _open(hashed.header_token, ciphertext) == data


def test_digest_only_refuses_v1_mixing_and_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        Sealer(size=5, **_args(version=1)).digest(b"hello")
    sealer = Sealer(size=5, **_args())
    sealer.feed(b"he")
    with pytest.raises(ValueError):
        sealer.digest(b"llo")
    sealer = Sealer(size=5, **_args())
    sealer.digest(b"hel")
    with pytest.raises(ValueError):
        sealer.feed(b"lo")
    with pytest.raises(SizeMismatch):
        sealer.finish()
    with pytest.raises(SizeMismatch):
        Sealer(size=5, **_args()).digest(b"hello!")
    with pytest.raises(ValueError):
        Sealer(size=5, **_args(version=4))


def test_opener_failure_is_final() -> None:
    """After TrailingData is caught, finish() still refuses: nothing can be published."""
    token, ciphertext = _seal(b"hello")
    opener = _opener(token)
    with pytest.raises(TrailingData):
        opener.feed(ciphertext + b"junk")
    with pytest.raises(TrailingData):
        opener.finish()


def test_finish_twice_after_success() -> None:
    """A successful finish() may be repeated; it does not change the outcome."""
    token, ciphertext = _seal(b"hello")
    opener = _opener(token)
    opener.feed(ciphertext)
    opener.finish()
    opener.finish()
    assert _open(token, ciphertext) == b"hello"
