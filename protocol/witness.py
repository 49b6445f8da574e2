"""Witnesses of audit heads: another office's signed word that it holds a head of our chain.

Theory of operation
-------------------
An office signs the head of its own audit chain (``lienthong-audit-head/1``, node/audit/heads.py)
and sends it to each peer. A peer that accepts it keeps the head token and answers with a
**witness**: a JWS compact token of type ``lienthong-audit-witness/1`` signed by the *witness*
office's identity key, ``kid`` its node ID, whose payload is::

    {"v": 1, "subject": <node ID whose chain>, "seq": N, "hash": <64 hex, entry N's hash>,
     "head_time": <when the subject signed the head>, "head_sha256": <SHA-256 of the head
     token>, "witness": <node ID of the witness>, "index": k, "prev_sha256": <SHA-256 of the
     witness token k - 1 for the same subject, or null when k = 1>, "time": <witness's clock>}

``index`` counts the heads this witness has accepted from this subject, and ``prev_sha256``
chains each witness to the one before: the subject keeps every witness, so a witness it no
longer holds (deleted to hide a rewritten history) leaves a gap in the indexes and a broken
link, and the witness office can always produce the head tokens themselves. The witness's
copy is the evidence a rewriting office cannot reach; the chain of witnesses makes a local
suppression visible even before anyone asks the witness.

Pure: no I/O; time is passed in. Verification raises :class:`protocol.errors.WitnessError`.
"""
from __future__ import annotations

from dataclasses import dataclass

import nacl.signing

from lienthong.keys import errors as key_errors
from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import WitnessError
from lienthong.protocol.fields import check_hex, check_node_id, check_time
from lienthong.protocol.status import token_sha256

WITNESS_TYP = "lienthong-audit-witness/1"
VERSION = 1
_FIELDS = frozenset({"v", "subject", "seq", "hash", "head_time", "head_sha256", "witness",
                     "index", "prev_sha256", "time"})


@dataclass(frozen=True, slots=True)
class WitnessInfo:
    """The fields of a witness token. Only trust one returned by :func:`verify_witness`."""

    subject: str
    seq: int
    hash: str
    head_time: str
    head_sha256: str
    witness: str
    index: int
    prev_sha256: str | None
    time: str
    token: str

    @property
    def token_sha256(self) -> str:
        return token_sha256(self.token)


def _check_position(seq: object, index: object, prev_sha256: object) -> None:
    if type(seq) is not int or seq < 1:
        raise WitnessError("seq must be a whole number of 1 or more")
    if type(index) is not int or index < 1:
        raise WitnessError("index must be a whole number of 1 or more")
    if (index == 1) != (prev_sha256 is None):
        raise WitnessError("the first witness has no prev_sha256; every later one names it")
    if prev_sha256 is not None:
        check_hex(prev_sha256, "prev_sha256", 64, WitnessError)


def issue_witness(identity: nacl.signing.SigningKey, *, subject: str, seq: int, hash: str,
                  head_time: str, head_sha256: str, index: int, prev_sha256: str | None,
                  time: str) -> str:
    """Sign, as the office whose identity key is ``identity``, that it holds ``subject``'s head
    (``seq``, ``hash``) signed at ``head_time``; the ``index``-th head it holds from it."""
    witness = node_id_from_public_key(identity.verify_key.encode())
    check_node_id(subject, "subject", WitnessError)
    if subject == witness:
        raise ValueError("an office does not witness its own chain")
    check_hex(hash, "hash", 64, WitnessError)
    check_hex(head_sha256, "head_sha256", 64, WitnessError)
    check_time(head_time, "head_time", WitnessError)
    check_time(time, "time", WitnessError)
    _check_position(seq, index, prev_sha256)
    payload = {"v": VERSION, "subject": subject, "seq": seq, "hash": hash,
               "head_time": head_time, "head_sha256": head_sha256, "witness": witness,
               "index": index, "prev_sha256": prev_sha256, "time": time}
    return jws.sign(identity, WITNESS_TYP, payload, kid=witness)


def _parse(decoded: jws.Decoded) -> WitnessInfo:
    p = decoded.payload
    if type(p.get("v")) is not int or p["v"] != VERSION:
        raise WitnessError(f"unsupported witness version {p.get('v')!r}; this node reads v1")
    if set(p) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(p)), sorted(set(p) - _FIELDS)
        raise WitnessError(f"witness fields wrong: missing {missing}, unknown {extra}")
    witness = check_node_id(p["witness"], "witness", WitnessError)
    if decoded.kid != witness:
        raise WitnessError("the witness's kid must be the witnessing office's node ID")
    _check_position(p["seq"], p["index"], p["prev_sha256"])
    return WitnessInfo(
        subject=check_node_id(p["subject"], "subject", WitnessError), seq=p["seq"],
        hash=check_hex(p["hash"], "hash", 64, WitnessError),
        head_time=check_time(p["head_time"], "head_time", WitnessError),
        head_sha256=check_hex(p["head_sha256"], "head_sha256", 64, WitnessError),
        witness=witness, index=p["index"], prev_sha256=p["prev_sha256"],
        time=check_time(p["time"], "time", WitnessError), token=decoded.token)


def _decode(token: str | bytes) -> jws.Decoded:
    try:
        return jws.decode(token, WITNESS_TYP)
    except key_errors.KeysError as exc:
        raise WitnessError(f"not an audit-head witness: {exc}") from exc


def decode_witness(token: str | bytes) -> WitnessInfo:
    """Parse a witness for display WITHOUT checking its signature; act on nothing in it."""
    return _parse(_decode(token))


def verify_witness(token: str | bytes, witness_verify_key: nacl.signing.VerifyKey, *,
                   subject: str | None = None) -> WitnessInfo:
    """Check a witness's type, signature and schema; with ``subject``, that it is about that
    office's chain. ``witness_verify_key`` is the identity key of the witnessing office."""
    decoded = _decode(token)
    try:
        jws.verify_decoded(decoded, witness_verify_key)
    except key_errors.BadSignature as exc:
        raise WitnessError("the witness's signature does not verify") from exc
    info = _parse(decoded)
    if node_id_from_public_key(witness_verify_key.encode()) != info.witness:
        raise WitnessError(f"the key that signed the witness is not the identity of "
                           f"{info.witness}")
    if subject is not None and info.subject != subject:
        raise WitnessError(f"the witness is about the chain of {info.subject}, not {subject}")
    return info
