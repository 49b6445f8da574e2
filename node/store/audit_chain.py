"""The audit log's hash chain: how an entry's hash is computed, and how a chain is checked.

Theory of operation
-------------------
Every audit entry carries ``prev_hash`` (the hash of the entry before it; 64 zeros for the
first) and ``hash``::

    hash = sha256(prev_hash_hex + "\\n" + canonical_json(fields)).hexdigest()

where ``fields`` is the JSON object ``{seq, time, kind, peer, message_id, digest, detail}``
(``detail`` as a JSON object, not as a string) in the one canonical encoding we sign
(``keys.jws.canonical_json``: sorted keys, no spaces, UTF-8). An auditor can recompute it
with ``sha256sum`` and ``jq -cS``.

The chain alone shows that an entry was *edited* (its hash no longer matches), *deleted* (a gap
in ``seq``, or the next entry's ``prev_hash`` no longer matches) or *reordered* (``seq`` is part
of the hashed fields, and ``prev_hash`` links fix the order). It does not stop someone who can
write the database from recomputing every hash after an edit; that is what the periodically
signed heads are for: ``verify_chain(..., heads=...)`` checks that the chain still passes
through every signed head. Verifying the heads' signatures needs keys and is the caller's job;
this module is pure (no I/O, no clock) so it can run anywhere, including in ``audit verify``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.keys.errors import MalformedToken
from lienthong.keys.jws import canonical_json, strict_json_object
from lienthong.node.core.errors import NodeError

#: The ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64


class ChainBroken(NodeError):
    """The audit chain is not intact; ``seq`` names the first entry found wrong."""

    code = "audit-chain-broken"

    def __init__(self, seq: int, why: str) -> None:
        super().__init__(f"audit entry {seq}: {why}")
        self.seq = seq
        self.why = why


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry, as stored. ``detail_json`` is the canonical JSON text of ``detail``."""

    seq: int
    time: str
    kind: str
    peer: str | None
    message_id: str | None
    digest: str | None
    detail_json: str
    prev_hash: str
    hash: str

    @property
    def detail(self) -> dict[str, Any]:
        return strict_json_object(self.detail_json.encode("utf-8"))

    def hashed_fields(self) -> dict[str, Any]:
        """The fields covered by ``hash`` (raises ``MalformedToken`` if detail is not JSON)."""
        return hashed_fields(self.seq, self.time, self.kind, self.peer, self.message_id,
                             self.digest, self.detail)


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A head whose signature the caller has already verified: the chain must pass through it."""

    seq: int
    hash: str
    time: str


def hashed_fields(seq: int, time: str, kind: str, peer: str | None, message_id: str | None,
                  digest: str | None, detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "time": time, "kind": kind, "peer": peer, "message_id": message_id,
            "digest": digest, "detail": dict(detail)}


def canonical_detail(detail: Mapping[str, Any] | None) -> str:
    """The stored text of an entry's detail (canonical JSON; ``{}`` when there is none).

    Text that cannot be UTF-8 (a file name with undecodable bytes arrives from the OS as lone
    surrogates) is kept with those bytes escaped as ``\\xNN``: the event must never be lost.
    """
    return canonical_json(_encodable(dict(detail or {}))).decode("utf-8")


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:
                raw = value.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                return value.encode("utf-8", "backslashreplace").decode("utf-8")
            return raw.decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, Mapping):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable(item) for item in value]
    return value


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The hash of an entry whose predecessor's hash is ``prev_hash`` (64 lowercase hex)."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_json(fields)).hexdigest()


def entry_hash_of_stored(prev_hash: str, seq: int, time: str, kind: str, peer: str | None,
                         message_id: str | None, digest: str | None, detail_json: str) -> str:
    """``entry_hash`` of an entry whose detail is already in its stored, canonical text.

    The same bytes as ``entry_hash(prev_hash, hashed_fields(..., json.loads(detail_json)))``
    without parsing the detail back and encoding it again (an append did both, for every one
    of the seven entries per document): ``detail`` is the first key in sorted order, and the
    canonical encoding of a nested object is its own canonical encoding.
    """
    rest = canonical_json({"digest": digest, "kind": kind, "message_id": message_id,
                           "peer": peer, "seq": seq, "time": time})
    return hashlib.sha256(prev_hash.encode("ascii") + b'\n{"detail":' +
                          detail_json.encode("utf-8") + b"," + rest[1:]).hexdigest()


def verify_chain(entries: Iterable[AuditEntry], *, after: tuple[int, str] = (0, GENESIS_HASH),
                 heads: Iterable[SignedHead] = (), final: bool = True) -> tuple[int, str]:
    """Check ``entries`` (in the order given) form an unbroken chain; raise ``ChainBroken``.

    ``after`` is the (seq, hash) the first entry must follow; the default means "the chain
    starts at entry 1", so a deleted first entry is caught. Passing the result of one call as
    ``after`` of the next lets a caller verify a long log page by page in bounded memory.
    ``heads`` (signatures already verified) must each match the entry of the same seq; a head
    beyond the last entry means entries were cut off the end (checked only when ``final``, so a
    page-by-page caller passes ``final=False`` until the last page). Returns the last
    (seq, hash) seen.
    """
    want = {head.seq: head for head in heads}
    last_seq, last_hash = after
    for entry in entries:
        if entry.seq != last_seq + 1:
            if entry.seq > last_seq + 1:
                missing = (f"entry {last_seq + 1} is missing" if entry.seq == last_seq + 2
                           else f"entries {last_seq + 1}..{entry.seq - 1} are missing")
                raise ChainBroken(entry.seq, f"{missing} (deleted?)")
            raise ChainBroken(entry.seq, f"out of order: follows entry {last_seq}")
        if entry.prev_hash != last_hash:
            raise ChainBroken(entry.seq, "prev_hash does not match the entry before it "
                                         "(an entry was deleted, inserted or reordered)")
        try:
            detail = entry.detail
        except MalformedToken as exc:
            raise ChainBroken(entry.seq, f"detail is not valid JSON (edited): {exc}") from exc
        if canonical_detail(detail) != entry.detail_json:
            raise ChainBroken(entry.seq, "detail is not in canonical form (edited)")
        if entry_hash(entry.prev_hash, entry.hashed_fields()) != entry.hash:
            raise ChainBroken(entry.seq, "content does not match its hash (edited)")
        head = want.pop(entry.seq, None)
        if head is not None and head.hash != entry.hash:
            raise ChainBroken(entry.seq, f"does not match the head signed at {head.time} "
                                         "(the log was rewritten)")
        last_seq, last_hash = entry.seq, entry.hash
    beyond = sorted(seq for seq in want if seq > last_seq)
    if final and beyond:
        raise ChainBroken(last_seq + 1, f"entries after {last_seq} are missing: a head was "
                                        f"signed at entry {beyond[-1]} (the log was cut short)")
    return last_seq, last_hash
