"""Known-answer vectors for envelopes and receipts, and the fixed test keys they use.

    python -m tests.vectors.make_vectors      # rewrites the four JSON files

Run it only when the format changes on purpose (and then bump the version in the file names):
tests/protocol/test_vectors.py rebuilds every vector with this module and requires them to equal
the committed JSON byte for byte, then opens and verifies the committed files as they are, so
any drift in encoding, chunking, sealing or signing fails the suite.

Everything is deterministic: identity and encryption keys come from SHA-256 of public labels,
randomness from SHAKE-256 of a label (:class:`FixedRandom`), and the time is a constant. The
JSON lists every random draw in order, so another implementation can replay them without this
DRBG. These are THROWAWAY keys: never trust them anywhere.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.public
import nacl.signing

from lienthong.keys.jws import b64url_encode, canonical_json
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.envelope import contents_key, verify_header
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.receipt import issue_receipt
from lienthong.protocol.sealing import seal_all

HERE = Path(__file__).resolve().parent
ENVELOPE_FILE = HERE / "envelope-v1.json"
ENVELOPE_V2_FILE = HERE / "envelope-v2.json"
ENVELOPE_V3_FILE = HERE / "envelope-v3.json"
RECEIPT_FILE = HERE / "receipt-v1.json"

CHUNK_SIZE = 4096
PLAINTEXT_SIZE = 2 * CHUNK_SIZE + CHUNK_SIZE // 2          # two and a half chunks
CREATED = "2026-11-25T22:00:00Z"
RECEIPT_TIME = "2026-11-25T22:00:07Z"
NAME = "Công văn số 12 - Nguyễn Thị Hường.pdf"
META = {"confidentiality": "normal", "subject": "Kế hoạch năm 2027", "urgency": "urgent"}
#: v3 names the priority in its readable routing part (2: khẩn, urgent).
PRIORITY = 2


def _label_seed(label: str) -> bytes:
    return hashlib.sha256(f"lienthong-test-vector:{label}".encode()).digest()


@dataclass(frozen=True, slots=True)
class Party:
    """A throwaway node: identity (signing) key, node ID and one X25519 encryption key."""

    label: str
    identity: nacl.signing.SigningKey
    node_id: str
    kid: str
    encryption: nacl.public.PrivateKey

    @property
    def sealing_key(self) -> tuple[str, nacl.public.PublicKey]:
        return self.kid, self.encryption.public_key

    def describe(self) -> dict[str, str]:
        return {"identity_seed": bytes(self.identity).hex(),
                "identity_public": self.identity.verify_key.encode().hex(),
                "node_id": self.node_id, "encryption_kid": self.kid,
                "encryption_secret": self.encryption.encode().hex(),
                "encryption_public": self.encryption.public_key.encode().hex()}


def party(label: str) -> Party:
    """The fixed test party called ``label`` (same keys every run, on every machine)."""
    identity = nacl.signing.SigningKey(_label_seed(label + "/identity"))
    return Party(label=label, identity=identity,
                 node_id=node_id_from_public_key(identity.verify_key.encode()),
                 kid=f"{label}-x25519-1",
                 encryption=nacl.public.PrivateKey(_label_seed(label + "/x25519")))


class FixedRandom:
    """A deterministic ``random_bytes``: SHAKE-256(label) read in order; records each draw."""

    def __init__(self, label: str) -> None:
        self._label = f"lienthong-test-vector-random:{label}".encode()
        self._offset = 0
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(self._label).digest(self._offset + n)[self._offset:]
        self._offset += n
        self.draws.append(out)
        return out


class ReplayRandom:
    """A ``random_bytes`` that hands out recorded draws, checking each requested length."""

    def __init__(self, draws: list[bytes]) -> None:
        self._draws = list(draws)

    def __call__(self, n: int) -> bytes:
        if not self._draws or len(self._draws[0]) != n:
            raise AssertionError(f"unexpected random draw of {n} bytes")
        return self._draws.pop(0)


SENDER, RECIPIENTS = "alice", ("bob", "carol")


def build_envelope_vector(version: int = 1) -> dict[str, Any]:
    """The envelope vector: alice seals 2.5 chunks to bob and carol (header version 1 or 2:
    the same inputs and draws, so the same ciphertext; v2 leaves out ciphertext_sha256. v3:
    the same inputs and first draws, one more draw for the sealed contents' nonce, and a
    stream whose last chunk is the signed trailer)."""
    sender = party(SENDER)
    readers = [party(label) for label in RECIPIENTS]
    plaintext = FixedRandom("plaintext")(PLAINTEXT_SIZE)
    message_id = new_message_id(FixedRandom("message-id"))
    randomness = FixedRandom("envelope")
    envelope, ciphertext = seal_all(
        plaintext, identity=sender.identity, sender=sender.node_id,
        sender_key=sender.sealing_key, recipients={p.node_id: p.sealing_key for p in readers},
        name=NAME, message_id=message_id, created=CREATED, meta=META, chunk_size=CHUNK_SIZE,
        random_bytes=randomness, version=version,
        **({"priority": PRIORITY} if version >= 3 else {}))
    header = envelope.header
    order = ["file key (32)", "secretstream header (24)"] + [
        f"ephemeral X25519 seed for {node_id} (32)" for node_id in
        sorted([sender.node_id] + [p.node_id for p in readers])]
    if version >= 3:
        order.append("sealed contents nonce (24)")
    expected = {
        "header_token": envelope.header_token, "header_sha256": header.header_sha256,
        "sha256": header.sha256, "size": header.size,
        "ciphertext_size": header.ciphertext_size,
        "ciphertext_sha256": header.ciphertext_sha256,
        "sealed_keys": {k.node_id: b64url_encode(k.sealed) for k in header.keys},
        "ciphertext": ciphertext.hex()}
    if version != 1:
        del expected["ciphertext_sha256"]
    inputs: dict[str, Any] = {"message_id": message_id, "created": CREATED, "name": NAME,
                              "meta": META, "chunk_size": CHUNK_SIZE}
    if version >= 3:
        inputs["priority"] = PRIORITY
        contents = {"name": NAME, "created": CREATED, "size": PLAINTEXT_SIZE,
                    "chunk_size": CHUNK_SIZE, "meta": META}
        expected.update(
            size_class=header.size_class,
            contents_key=contents_key(randomness.draws[0]).hex(),
            contents=canonical_json(contents).decode("utf-8"),
            trailer=envelope.trailer.hex() if envelope.trailer else None)
    inputs["plaintext"] = plaintext.hex()
    return {
        "description": f"lienthong-envelope/1 known-answer vector, header v{version} "
                       "(docs/protocol.md, part A). Throwaway keys. Written by "
                       "tests/vectors/make_vectors.py."
                       if version != 1 else
                       "lienthong-envelope/1 known-answer vector (docs/protocol.md, part A). "
                       "Throwaway keys. Written by tests/vectors/make_vectors.py.",
        "typ": "lienthong-envelope/1",
        "parties": {p.label: p.describe() for p in [sender] + readers},
        "sender": SENDER, "recipients": list(RECIPIENTS),
        "inputs": inputs,
        "random_draws": [{"purpose": purpose, "hex": draw.hex()}
                         for purpose, draw in zip(order, randomness.draws, strict=True)],
        "expected": expected,
    }


def build_receipt_vector(envelope_vector: dict[str, Any]) -> dict[str, Any]:
    """The receipt vector: bob acknowledges the envelope vector's message."""
    bob = party("bob")
    sender = party(SENDER)
    header = verify_header(envelope_vector["expected"]["header_token"], sender.identity.verify_key,
                           expected_sender=sender.node_id)
    token = issue_receipt(bob.identity, recipient=bob.node_id, header=header, time=RECEIPT_TIME)
    return {
        "description": "lienthong-receipt/1 known-answer vector: bob's receipt for the message "
                       "of envelope-v1.json. Throwaway keys. Written by "
                       "tests/vectors/make_vectors.py.",
        "typ": "lienthong-receipt/1",
        "recipient": bob.describe(),
        "recipient_jwk": {"kty": "OKP", "crv": "Ed25519",
                          "x": b64url_encode(bob.identity.verify_key.encode())},
        "sender_node_id": sender.node_id,
        "header_token": header.token, "time": RECEIPT_TIME, "status": "delivered",
        "expected": {"receipt_token": token,
                     "payload": {"v": 1, "message_id": header.message_id,
                                 "sender": header.sender, "recipient": bob.node_id,
                                 "sha256": header.sha256, "size": header.size,
                                 "status": "delivered", "time": RECEIPT_TIME,
                                 "header_sha256": header.header_sha256}},
    }


def render(vector: dict[str, Any]) -> str:
    """The exact text written to disk (and compared byte for byte by the tests)."""
    return json.dumps(vector, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> int:
    envelope = build_envelope_vector(1)
    receipt = build_receipt_vector(envelope)
    ENVELOPE_FILE.write_text(render(envelope), encoding="utf-8")
    ENVELOPE_V2_FILE.write_text(render(build_envelope_vector(2)), encoding="utf-8")
    ENVELOPE_V3_FILE.write_text(render(build_envelope_vector(3)), encoding="utf-8")
    RECEIPT_FILE.write_text(render(receipt), encoding="utf-8")
    print(f"wrote {ENVELOPE_FILE}, {ENVELOPE_V2_FILE}, {ENVELOPE_V3_FILE} and {RECEIPT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
