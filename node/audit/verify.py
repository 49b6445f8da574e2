"""``audit verify``: prove the store still says what happened, or say exactly where it does not.

Theory of operation
-------------------
Five independent checks, each naming every row or file it finds wrong:

1. **Signed heads.** Each row of ``audit_heads`` must carry a valid signature by one of this
   node's identities (public keys from its own card and, after an identity rotation, from
   ``state/identity-history.json``, so no passphrase is needed), signed while that identity was
   current, and the row's seq and hash must be what was signed. The report counts heads per
   signing identity. Former identities are trusted only through the chain of continuations
   each signed to hand over to the next, ending at the current card (node.identity_history).
   Only heads that pass are trusted in step 2.
2. **Hash chain.** The log is read page by page (bounded memory) through
   ``audit_chain.verify_chain``: an edited, deleted, inserted or reordered entry breaks it at a
   named seq, and the chain must pass through every trusted head (a rewritten log does not; a
   log cut short leaves a head pointing past its end).
3. **Receipts.** Every receipt kept in the store - each peer's receipt for a document we sent,
   and our own receipt for each document we received - must verify under the signer's identity
   key from the key history (ours: the current identity, or a former one up to the end of its
   grace period) and answer exactly the envelope recorded beside it (message ID, parties,
   digest, size, header hash). A copy of a receipt kept as a
   file beside the document must be byte-identical to the stored one.
4. **Witnesses.** Every head a peer witnessed (and every head in a peer's export given with
   ``--peer-heads``) must match the log as it is now (node/audit/witness_check.py): this is
   what catches a history rewritten with its own chain and heads recomputed.
5. **Kept files.** Each document kept in ``sent/`` and ``inbox/`` must still have the SHA-256
   recorded for it. A document no longer there is *not* a failure (clerks move delivered
   documents into their own systems); it is listed as a note. A file that is there and differs
   is a failure.

``verify_store`` raises ``AuditFailed`` (carrying the full report) when anything is wrong, and
returns the report otherwise: fail closed, never a bare bool.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing

from lienthong.keys import jws
from lienthong.keys.card import PeerCard
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import parse_time
from lienthong.node.audit.files import check_files
from lienthong.node.audit.heads import HEAD_TYP, BadHead, verify_head_row
from lienthong.node.audit.report import AuditFailed, Problem, VerifyReport
from lienthong.node.audit.witness_check import HeldHeads, check_witnesses
from lienthong.node.identity.history import IdentityHistoryError, read_identity_history
from lienthong.node.store.audit_chain import GENESIS_HASH, ChainBroken, SignedHead, verify_chain
from lienthong.node.store.database import Store
from lienthong.node.store.reports import StoredReceipt
from lienthong.protocol.envelope import decode_header
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import decode_receipt, verify_receipt

PAGE = 500

__all__ = ["AuditFailed", "Problem", "VerifyReport", "verify_store"]


@dataclass(frozen=True, slots=True)
class OwnIdentity:
    """One identity of this node: the current one (``valid_until`` None) or a former one."""

    node_id: str
    key: nacl.signing.VerifyKey
    valid_from: str | None = None
    valid_until: str | None = None
    grace_until: str | None = None

    def was_current_at(self, time: str) -> bool:
        when = parse_time(time)
        return ((self.valid_from is None or parse_time(self.valid_from) <= when) and
                (self.valid_until is None or when <= parse_time(self.valid_until)))

    def signed_receipts_at(self, time: str) -> bool:
        """A former identity signs receipts (for envelopes addressed to it) until its grace
        period ends; the current one always."""
        return self.valid_until is None or (self.grace_until is not None and
                                            parse_time(time) <= parse_time(self.grace_until))


def verify_store(store: Store, *, home: Path, own_card: PeerCard,
                 peer_name: Callable[[str], str] = lambda node_id: node_id,
                 page: int = PAGE, held: Sequence[HeldHeads] = ()) -> VerifyReport:
    """Run every check; raise ``AuditFailed`` if any problem was found, else return the report.

    ``held``: heads of this chain as peers hold them (exports given with ``--peer-heads``)."""
    report = VerifyReport()
    identities = own_identities(home, own_card, report)
    trusted = check_heads(store, identities, report)
    check_chain(store, trusted, report, page=page)
    check_receipts(store, identities, report, peer_name=peer_name, page=page)
    check_witnesses(store, {i.node_id for i in identities}, report, peer_name=peer_name,
                    held=held, own_keys=[(i.node_id, i.key) for i in identities])
    check_files(store, home, report, peer_name=peer_name, page=page)
    if report.problems:
        raise AuditFailed(report)
    return report


# -- 0. this node's identities -----------------------------------------------------------------

def own_identities(home: Path, own_card: PeerCard, report: VerifyReport) -> list[OwnIdentity]:
    """The current identity (from the card) and each former one whose continuation, signed by
    it, hands over to the next identity in line. A broken link is a problem, and the identity
    it would vouch for is not used (so what it signed is reported as unverifiable)."""
    from lienthong.node.identity.rotation import (
        verify_identity_rotation,  # identity/rotation.py imports config
    )
    where = "state/identity-history.json"
    try:
        history = read_identity_history(home)
    except IdentityHistoryError as exc:
        report.problems.append(Problem("identities", where, str(exc)))
        history = []
    successors = [entry.node_id for entry in history[1:]] + [own_card.node_id]
    identities = []
    # Without a former identity, successors holds only our own card and there is nothing to pair.
    for entry, successor in zip(history, successors, strict=False):
        label = f"former identity {entry.node_id} in {where}"
        try:
            if entry.continuation is None:
                raise KeysError("it has no continuation handing over to the next identity")
            rotation = verify_identity_rotation(entry.continuation, entry.identity_public)
            if rotation.new_node_id != successor:
                raise KeysError(f"its continuation hands over to {rotation.new_node_id}, but "
                                f"the next identity is {successor}")
        except KeysError as exc:
            report.problems.append(Problem("identities", label, str(exc)))
            continue
        identities.append(OwnIdentity(entry.node_id, entry.verify_key, entry.valid_from,
                                      entry.valid_until, entry.grace_until))
    identities.append(OwnIdentity(own_card.node_id,
                                  nacl.signing.VerifyKey(own_card.identity_public),
                                  valid_from=history[-1].valid_until if history else None))
    return identities


# -- 1. heads ------------------------------------------------------------------------------------

def check_heads(store: Store, identities: list[OwnIdentity],
                report: VerifyReport) -> list[SignedHead]:
    by_id = {identity.node_id: identity for identity in identities}
    trusted = []
    for row in store.audit_heads():
        where = f"signed head at audit entry {row.seq}"
        try:
            kid = jws.decode(row.signature, HEAD_TYP).kid
        except KeysError as exc:
            report.problems.append(Problem("heads", where, f"not a signed head: {exc}",
                                           seq=row.seq))
            continue
        identity = by_id.get(kid) if isinstance(kid, str) else None
        if identity is None:
            report.problems.append(Problem(
                "heads", where, f"signed as {kid!r}, which is not this node's identity nor a "
                "former one with a valid continuation", seq=row.seq))
            continue
        try:
            info = verify_head_row(row, identity.key)
        except BadHead as exc:
            report.problems.append(Problem("heads", where, f"{exc} (identity {kid})",
                                           seq=row.seq))
            continue
        if not identity.was_current_at(info.time):
            report.problems.append(Problem(
                "heads", where, f"signed by {kid} at {info.time}, outside the period it was "
                f"this node's identity ({identity.valid_from or 'start'} to "
                f"{identity.valid_until or 'now'})", seq=row.seq))
            continue
        trusted.append(SignedHead(info.seq, info.hash, info.time))
        report.head_signers[identity.node_id] = report.head_signers.get(identity.node_id, 0) + 1
    report.heads = len(trusted)
    report.last_signed_seq = max((head.seq for head in trusted), default=0)
    # Oldest identity first, as the history lists them.
    order = [identity.node_id for identity in identities]
    report.head_signers = {node_id: report.head_signers[node_id] for node_id in order
                           if node_id in report.head_signers}
    return trusted


# -- 2. chain ------------------------------------------------------------------------------------

def check_chain(store: Store, heads: list[SignedHead], report: VerifyReport, *,
                page: int = PAGE) -> None:
    after = (0, GENESIS_HASH)
    try:
        while True:
            entries = store.audit_entries(after_seq=after[0], limit=page)
            if not entries:
                break
            # Counted as read before they are checked: a failing verify says how many entries
            # it read, not "0 entries" because the break was in the first page.
            report.entries += len(entries)
            after = verify_chain(entries, after=after, heads=heads, final=False)
        verify_chain([], after=after, heads=heads, final=True)
    except ChainBroken as exc:
        report.problems.append(Problem("chain", f"audit entry {exc.seq}", exc.why, seq=exc.seq))
        return
    report.last_seq = after[0]
    if after[0] > report.last_signed_seq:
        first = report.last_signed_seq + 1
        span = f"entry {first}" if first == after[0] else f"entries {first}..{after[0]}"
        report.notes.append(f"audit {span} not yet covered by a signed head (the running node "
                            "signs every minute and at shutdown; after a crash the next start "
                            "signs them)")


# -- 3. receipts ---------------------------------------------------------------------------------

def _identity_keys(store: Store, node_id: str, cache: dict[str, list[Any]]) -> list[Any]:
    if node_id not in cache:
        cache[node_id] = [key for key in store.key_history(node_id) if key.kind == "identity"]
    return cache[node_id]


def check_receipts(store: Store, identities: list[OwnIdentity], report: VerifyReport, *,
                   peer_name: Callable[[str], str], page: int = PAGE) -> None:
    cache: dict[str, list[Any]] = {}
    revocations: dict[str, tuple[str, str] | None] = {}
    own_ids = {identity.node_id for identity in identities}
    after: tuple[str, str] = ("", "")
    while rows := store.delivery_receipts(after=after, limit=page):
        for row in rows:
            report.receipts += 1
            keys = _identity_keys(store, row.signer, cache)
            where = (f"receipt from {peer_name(row.signer)} for message {row.message_id} "
                     f"({row.name!r})")
            if not keys:
                report.problems.append(Problem("receipts", where, "no identity key of "
                                               f"{row.signer} is on record to check it with"))
                continue
            # The peer may have rotated its identity: any identity in its history may have
            # signed (as the recipient our envelope named).
            info = _check_one(row, [(k.kid, nacl.signing.VerifyKey(k.public_bytes))
                                    for k in keys], senders=own_ids, where=where, report=report)
            revoked = _revocation(store, row.signer, revocations)
            if info is not None and revoked is not None:
                report.notes.append(f"{where}: verifies; signed at {info.time} by a peer "
                                    f"revoked at {revoked[0]} ({revoked[1]}), so it was "
                                    "accepted before the revocation")
        after = (rows[-1].message_id, rows[-1].signer)
    after = ("", "")
    while rows := store.own_receipts(after=after, limit=page):
        for row in rows:
            report.receipts += 1
            where = (f"our receipt to {peer_name(row.counterpart)} for message "
                     f"{row.message_id} ({row.name!r})")
            senders = {row.counterpart} | {k.kid for k in
                                           _identity_keys(store, row.counterpart, cache)}
            info = _check_one(row, [(i.node_id, i.key) for i in identities], senders=senders,
                              where=where, report=report)
            if info is None:
                continue
            signer = next(i for i in identities if i.node_id == info.recipient)
            if not signer.signed_receipts_at(info.time):
                report.problems.append(Problem(
                    "receipts", where, f"signed by our former identity {signer.node_id} at "
                    f"{info.time}, after its grace period ended ({signer.grace_until})"))
        after = (rows[-1].message_id, rows[-1].counterpart)


def _revocation(store: Store, node_id: str,
                cache: dict[str, tuple[str, str] | None]) -> tuple[str, str] | None:
    """(revoked_at, reason) when ``node_id`` is a revoked peer, else None."""
    if node_id not in cache:
        record = store.peer_by_node_id(node_id)
        peer = record.peer if record is not None else None
        # A peer has revoked_at exactly when its state is "revoked" (keys.directory.Peer).
        cache[node_id] = ((peer.revoked_at, peer.reason or "no reason given")
                          if peer is not None and peer.revoked_at is not None else None)
    return cache[node_id]


def _check_one(row: StoredReceipt, keys: list[tuple[str, nacl.signing.VerifyKey]], *,
               senders: set[str], where: str, report: VerifyReport) -> Any:
    """Verify one receipt under the first of ``keys`` (node ID, key) it verifies with, as that
    node ID, and check it names one of ``senders`` and the digest recorded."""
    try:
        header = decode_header(row.header_token)
    except ProtocolError as exc:
        report.problems.append(Problem("receipts", where, f"the envelope header recorded with "
                                       f"it cannot be read: {exc}"))
        return
    error: Exception | None = None
    for recipient, key in keys:
        try:
            # A v3 header seals the size and leaves the digest to its trailer: the digest
            # recorded is what the receipt must name; its size is checked below as recorded
            # in the receipt itself (bound to the header by header_sha256).
            info = verify_receipt(row.receipt, key, expected=header, recipient=recipient,
                                  sha256=row.sha256, size=None if header.opened else
                                  decode_receipt(row.receipt).size)
        except (ProtocolError, KeysError) as exc:
            error = exc
            continue
        if info.sender not in senders or info.sha256 != row.sha256:
            report.problems.append(Problem("receipts", where, "it names another sender or "
                                           "digest than the one recorded for the document"))
            return None
        return info
    report.problems.append(Problem("receipts", where, f"does not verify: {error}"))
    return None
