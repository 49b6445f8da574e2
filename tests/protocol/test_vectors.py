"""Frozen known-answer vectors (tests/vectors/*.json): rebuilt byte for byte, and opened as-is."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.public
import nacl.signing
import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.envelope import contents_key, decode_header, verify_header
from lienthong.protocol.errors import DecryptError
from lienthong.protocol.receipt import decode_receipt, verify_receipt
from lienthong.protocol.sealing import open_all, seal_all
from tests.vectors import make_vectors

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _signing(p: dict[str, str]) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes.fromhex(p["identity_seed"]))


def _encryption(p: dict[str, str]) -> nacl.public.PrivateKey:
    return nacl.public.PrivateKey(bytes.fromhex(p["encryption_secret"]))


ENVELOPES = pytest.mark.parametrize(("name", "version"), [("envelope-v1.json", 1),
                                                          ("envelope-v2.json", 2),
                                                          ("envelope-v3.json", 3)])


@ENVELOPES
def test_envelope_vector_is_reproduced_byte_for_byte(name: str, version: int) -> None:
    """Sealing with the vector's keys, inputs and randomness gives the committed file exactly."""
    frozen = (VECTORS / name).read_text(encoding="utf-8")
    assert make_vectors.render(make_vectors.build_envelope_vector(version)) == frozen


def test_v1_and_v2_vectors_share_the_ciphertext_and_differ_only_in_the_header() -> None:
    v1, v2 = _load("envelope-v1.json"), _load("envelope-v2.json")
    assert v1["expected"]["ciphertext"] == v2["expected"]["ciphertext"]
    assert v1["random_draws"] == v2["random_draws"]
    assert decode_header(v1["expected"]["header_token"]).version == 1
    assert decode_header(v2["expected"]["header_token"]).version == 2
    assert "ciphertext_sha256" not in v2["expected"]


def test_receipt_vector_is_reproduced_byte_for_byte() -> None:
    """Issuing the vector's receipt gives the committed file exactly."""
    frozen = (VECTORS / "receipt-v1.json").read_text(encoding="utf-8")
    envelope = _load("envelope-v1.json")
    assert make_vectors.render(make_vectors.build_receipt_vector(envelope)) == frozen


@ENVELOPES
def test_frozen_envelope_replays_from_listed_draws(name: str, version: int) -> None:
    """The listed random draws alone (no DRBG) reproduce the frozen header and ciphertext."""
    v = _load(name)
    parties = v["parties"]
    sender = parties[v["sender"]]
    draws = [bytes.fromhex(d["hex"]) for d in v["random_draws"]]
    envelope, ciphertext = seal_all(
        bytes.fromhex(v["inputs"]["plaintext"]), identity=_signing(sender),
        sender=sender["node_id"],
        sender_key=(sender["encryption_kid"], _encryption(sender).public_key),
        recipients={parties[r]["node_id"]: (parties[r]["encryption_kid"],
                                            _encryption(parties[r]).public_key)
                    for r in v["recipients"]},
        name=v["inputs"]["name"], message_id=v["inputs"]["message_id"],
        created=v["inputs"]["created"], meta=v["inputs"]["meta"],
        chunk_size=v["inputs"]["chunk_size"], random_bytes=make_vectors.ReplayRandom(draws),
        version=version, priority=v["inputs"].get("priority", 3))
    assert envelope.header_token == v["expected"]["header_token"]
    assert ciphertext.hex() == v["expected"]["ciphertext"]


@ENVELOPES
def test_frozen_envelope_verifies_and_opens_for_every_reader(name: str, version: int) -> None:
    """The committed header verifies with the sender's key and every reader opens the payload."""
    v = _load(name)
    sender = v["parties"][v["sender"]]
    verify_key = nacl.signing.VerifyKey(bytes.fromhex(sender["identity_public"]))
    assert node_id_from_public_key(verify_key.encode()) == sender["node_id"]
    header = verify_header(v["expected"]["header_token"], verify_key,
                           expected_sender=sender["node_id"])
    assert header.header_sha256 == v["expected"]["header_sha256"]
    assert header.version == version
    assert header.ciphertext_sha256 == v["expected"].get("ciphertext_sha256")
    ciphertext = bytes.fromhex(v["expected"]["ciphertext"])
    for label in [v["sender"], *v["recipients"]]:
        p = v["parties"][label]
        plaintext = open_all(header, ciphertext, node_id=p["node_id"],
                             encryption_keys={p["encryption_kid"]: _encryption(p)})
        assert plaintext.hex() == v["inputs"]["plaintext"]


def test_frozen_sealed_keys_open_with_standard_sealed_box() -> None:
    """Each frozen sealed key opens with nacl.public.SealedBox to the same 32-byte file key."""
    v = _load("envelope-v1.json")
    header = decode_header(v["expected"]["header_token"])
    file_key = bytes.fromhex(v["random_draws"][0]["hex"])
    for p in v["parties"].values():
        sealed = header.key_for(p["node_id"]).sealed  # type: ignore[union-attr]
        assert nacl.public.SealedBox(_encryption(p)).decrypt(sealed) == file_key


@ENVELOPES
def test_frozen_envelope_rejects_a_flipped_ciphertext_byte(name: str, version: int) -> None:
    """The frozen vector is a live check: one flipped byte in the last chunk fails to open."""
    v = _load(name)
    bob = v["parties"]["bob"]
    header = decode_header(v["expected"]["header_token"])
    ciphertext = bytearray.fromhex(v["expected"]["ciphertext"])
    ciphertext[-3] ^= 0x20
    with pytest.raises(DecryptError):
        open_all(header, bytes(ciphertext), node_id=bob["node_id"],
                 encryption_keys={bob["encryption_kid"]: _encryption(bob)})


def test_frozen_receipt_verifies() -> None:
    """The committed receipt verifies against the committed header and recipient key."""
    v, env = _load("receipt-v1.json"), _load("envelope-v1.json")
    header = decode_header(env["expected"]["header_token"])
    verify_key = nacl.signing.VerifyKey(bytes.fromhex(v["recipient"]["identity_public"]))
    info = verify_receipt(v["expected"]["receipt_token"], verify_key, expected=header,
                          recipient=v["recipient"]["node_id"])
    assert decode_receipt(info.token) == info
    assert {"v": info.version, "message_id": info.message_id, "sender": info.sender,
            "recipient": info.recipient, "sha256": info.sha256, "size": info.size,
            "status": info.status, "time": info.time,
            "header_sha256": info.header_sha256} == v["expected"]["payload"]


def test_frozen_receipt_verifies_with_joserfc_and_the_jwk_alone() -> None:
    """joserfc verifies the committed receipt from the JWK in the vector file only."""
    v = _load("receipt-v1.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc 1.8: "EdDSA is deprecated via RFC 9864"
        result = jose_jws.deserialize_compact(v["expected"]["receipt_token"],
                                              OKPKey.import_key(v["recipient_jwk"]),
                                              algorithms=["EdDSA"])
    assert json.loads(result.payload) == v["expected"]["payload"]


def test_v3_vector_seals_the_contents_and_signs_the_digest_in_a_trailer() -> None:
    """From the listed values alone: the header shows only routing facts; its sealed contents
    open with the listed contents key (BLAKE2b of the file key) to the listed JSON; the last
    chunk opens to the listed trailer, which is alice's signature over the header's SHA-256,
    the size and the plaintext's SHA-256."""
    v = _load("envelope-v3.json")
    expected = v["expected"]
    sender = v["parties"][v["sender"]]
    header = decode_header(expected["header_token"])
    payload = jws.decode(expected["header_token"], "lienthong-envelope/1").payload
    assert set(payload) == {"v", "message_id", "sender", "recipients", "size_class",
                            "priority", "keys", "sealed"}
    assert (payload["v"], payload["priority"], payload["size_class"]) == (3, 2, 0)
    for needle in ("Công văn", "Kế hoạch", "subject", "urgent"):
        assert needle not in json.dumps(payload, ensure_ascii=False)
    file_key = bytes.fromhex(v["random_draws"][0]["hex"])
    assert contents_key(file_key).hex() == expected["contents_key"]
    sealed = header.sealed
    assert sealed is not None and sealed[:24].hex() == v["random_draws"][-1]["hex"]
    opened = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        sealed[24:], bytes.fromhex(header.message_id), sealed[:24],
        bytes.fromhex(expected["contents_key"]))
    assert opened.decode("utf-8") == expected["contents"]
    trailer = bytes.fromhex(expected["trailer"])
    assert int.from_bytes(trailer[:8], "big") == expected["size"]
    assert trailer[8:40].hex() == expected["sha256"]
    nacl.signing.VerifyKey(bytes.fromhex(sender["identity_public"])).verify(
        b"lienthong-trailer/1\x00" + bytes.fromhex(expected["header_sha256"]) + trailer[:40],
        trailer[40:])
    plaintext = bytes.fromhex(v["inputs"]["plaintext"])
    assert hashlib.sha256(plaintext).hexdigest() == expected["sha256"]
    assert len(bytes.fromhex(expected["ciphertext"])) == expected["ciphertext_size"] == \
        24 + len(plaintext) + 17 * 3 + 104 + 17
