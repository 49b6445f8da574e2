"""``audit verify``, step 5: the local chain against every head another office witnessed.

Theory of operation
-------------------
The signed heads of steps 1 and 2 are this office's own word, which it could re-sign after
rewriting its log. A witness (protocol/witness.py) is a peer's word, which it cannot. For each
peer, the witnesses held here must

* verify under that peer's identity key (any it has had: the key history) and be about this
  office's chain; witnesses kept under a peer's former node ID and its current one are one
  sequence;
* be numbered 1, 2, 3... with each naming the one before (``prev_sha256``): a missing number
  is a witness deleted from this store, and is reported as such;
* name an entry whose hash in the log *now* is the hash the peer witnessed: a history
  rewritten after the head went out, even with its chain and own heads recomputed, fails here.

Witnesses deleted wholesale leave nothing here to compare; the peer still holds the heads. An
auditor exports them at the peer (``lienthong audit witnesses --held-for <office> --json``)
and passes the file here (``--peer-heads FILE``): each head must verify under this office's
own identity and match the log the same way.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing

from lienthong.keys import jws
from lienthong.keys.errors import KeysError
from lienthong.node.audit.heads import HEAD_TYP, BadHead, verify_head
from lienthong.node.audit.report import Problem, VerifyReport
from lienthong.node.store.database import Store
from lienthong.node.store.records import HeadWitnessRow
from lienthong.protocol.errors import WitnessError
from lienthong.protocol.witness import verify_witness


@dataclass(frozen=True, slots=True)
class HeldHeads:
    """Heads of this office's chain as a peer holds them (an export of ``audit witnesses
    --held-for``): the peer's name and the head tokens."""

    source: str
    heads: tuple[str, ...]


def read_held_heads(path: Path) -> HeldHeads:
    """Read an export of the heads a peer holds; ``ValueError`` when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        heads = tuple(str(item["head"]) for item in data["heads"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not an export of `lienthong audit witnesses --held-for "
                         f"... --json`: {exc}") from exc
    return HeldHeads(source=f"{data.get('witness_name') or path.name}", heads=heads)


def _entry_hash(store: Store, seq: int) -> str | None:
    entries = store.audit_entries(after_seq=seq - 1, limit=1)
    return entries[0].hash if entries and entries[0].seq == seq else None


def _against_log(store: Store, seq: int, digest: str, who: str, when: str) -> str | None:
    """Why the log disagrees with (seq, digest) as ``who`` holds it, or None when it agrees."""
    now = _entry_hash(store, seq)
    if now is None:
        return (f"{who} holds a head at entry {seq} (signed {when}), but the log has no entry "
                f"{seq}: the log was cut short after {who} witnessed it")
    if now != digest:
        return (f"{who} holds entry {seq} with hash {digest[:16]}... (signed {when}); the log "
                f"has {now[:16]}... there now: the history was rewritten after {who} "
                "witnessed it")
    return None


def check_witnesses(store: Store, own_ids: set[str], report: VerifyReport, *,
                    peer_name: Callable[[str], str], held: Sequence[HeldHeads] = (),
                    own_keys: Iterable[tuple[str, nacl.signing.VerifyKey]] = ()) -> None:
    """Step 5 of ``verify_store``: every witness held here, and every exported peer copy."""
    # A peer that rotated its identity numbers its witnesses on across the rotation: its
    # witnesses under its former and its current node ID are one sequence.
    office = {key.kid: record.peer.node_id for record in store.list_peers()
              for key in store.key_history(record.peer.node_id) if key.kind == "identity"}
    by_peer: dict[str, list[HeadWitnessRow]] = {}
    for row in store.head_witnesses():
        by_peer.setdefault(office.get(row.witness_node_id, row.witness_node_id), []).append(row)
    for peer, rows in by_peer.items():
        rows.sort(key=lambda row: row.witness_index)
        _check_peer(store, peer, rows, own_ids, report, peer_name(peer))
    keys = dict(own_keys)
    for copy in held:
        for token in copy.heads:
            _check_held(store, token, keys, report, copy.source)


def _check_peer(store: Store, peer: str, rows: list[HeadWitnessRow], own_ids: set[str],
                report: VerifyReport, name: str) -> None:
    keys = [nacl.signing.VerifyKey(k.public_bytes) for k in store.key_history(peer)
            if k.kind == "identity"]
    expected, before = 1, None
    for row in rows:
        where = f"witness {row.witness_index} by {name} (audit entry {row.seq})"
        info = None
        for key in keys:
            try:
                info = verify_witness(row.token, key)
                break
            except WitnessError:
                continue
        if info is None:
            report.problems.append(Problem("witnesses", where, "it does not verify under any "
                                           f"identity key {name} has had", seq=row.seq))
            continue
        if info.subject not in own_ids or (info.seq, info.hash, info.index) != \
                (row.seq, row.hash, row.witness_index):
            report.problems.append(Problem("witnesses", where, "its row says something other "
                                           "than its signature, or it is about another chain",
                                           seq=row.seq))
            continue
        if row.witness_index != expected:
            missing = (f"witness {expected}" if expected == row.witness_index - 1 else
                       f"witnesses {expected} to {row.witness_index - 1}")
            report.problems.append(Problem(
                "witnesses", where, f"{missing} by {name} are missing: deleted from this "
                f"store. Ask {name} for the heads it holds (lienthong audit witnesses "
                "--held-for) and verify with --peer-heads", seq=row.seq))
        elif before is not None and info.prev_sha256 != before:
            report.problems.append(Problem("witnesses", where, "it does not follow the witness "
                                           "before it (prev_sha256)", seq=row.seq))
        expected, before = row.witness_index + 1, info.token_sha256
        why = _against_log(store, info.seq, info.hash, name, info.head_time)
        if why is not None:
            report.problems.append(Problem("witnesses", where, why, seq=row.seq))
        report.witnesses += 1
        report.witnessed_by[name] = max(report.witnessed_by.get(name, 0), row.seq)


def _check_held(store: Store, token: str, keys: dict[str, Any], report: VerifyReport,
                source: str) -> None:
    where = f"head held by {source}"
    try:
        kid = jws.decode(token, HEAD_TYP).kid
        key = keys.get(kid or "")
        if key is None:
            raise BadHead(f"signed as {kid!r}, not by this office")
        info = verify_head(token, key)
    except (BadHead, KeysError) as exc:
        report.problems.append(Problem("witnesses", where, f"does not verify: {exc}"))
        return
    where = f"head at audit entry {info.seq} held by {source}"
    why = _against_log(store, info.seq, info.hash, source, info.time)
    if why is not None:
        report.problems.append(Problem("witnesses", where, why, seq=info.seq))
    report.witnesses += 1
    report.witnessed_by[source] = max(report.witnessed_by.get(source, 0), info.seq)
