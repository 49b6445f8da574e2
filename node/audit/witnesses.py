"""Cross-witnessed audit heads: our signed heads sent to every peer, theirs witnessed here.

Theory of operation
-------------------
A signed head (node/audit/heads.py) only proves the log was not rewritten *by someone without
this office's key*. The office itself could rewrite its history and sign new heads. So every
``witness_interval`` seconds (``[review]`` in lienthong.toml; and once more when the node
stops) :class:`HeadWitnessing` sends the latest signed head to every trusted peer as a control
document of kind ``audit-head``, over the sealed, queued, receipted path statuses take::

    A: head (lienthong-audit-head/1, signed by A) --------------------------> B
    B: verify with A's key; keep it (peer_heads), numbered per A: index k, chained to k - 1
       sign lienthong-audit-witness/1 {subject A, seq, hash, head_sha256, index k, prev} ---> A
    A: verify with B's key; it must name a head A signed and A's chain as it is now;
       keep it (head_witnesses)

``lienthong audit verify`` at A then checks A's chain against every witness A holds, and an
auditor can check it against the heads B holds (``lienthong audit witnesses --held-for A
--json`` at B, ``lienthong audit verify --peer-heads FILE`` at A): a history rewritten after a
head went out disagrees with B's copy, which A cannot reach. Deleting witnesses at A to hide
that leaves a gap in B's numbering (each witness names the one before); keeping heads from
going out at all shows at B as a head that grows old (``audit witnesses``, status).

Bad input (docs/review.md): a head or witness that does not verify, goes back on the heads
held (an earlier entry signed after a later one) or contradicts one held is refused with a
``security-refused`` audit event (shown in status) and never stored over what is held; the
code names the case (``audit-head-invalid``, ``-older``, ``-contradiction``;
``audit-witness-invalid``, ``-unknown-head``, ``-contradiction``). A resent head gets the
witness already signed for it again; an earlier head that the sender's outbox delivered after
a later one is recorded as superseded (an audit entry, not a warning). Heads and witnesses are
checked with the key their ``kid`` names among the sender's identities, so one signed just
before the sender rotated its identity still verifies (node/identity/signers.py).

Crashes: every head or witness received ends with one audit entry naming its control document
(its outcome, :data:`OUTCOME_KINDS`); at start, :meth:`HeadWitnessing.recover` applies again
those a crash left without one (docs/design.md §6). Applying is idempotent: a head already held
gets the witness already signed for it, a witness already held is kept once.
"""
from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from lienthong.keys.errors import KeysError
from lienthong.node.audit.heads import HEAD_TYP, BadHead, verify_head
from lienthong.node.core.errors import NodeError
from lienthong.node.identity.signers import (
    check_signed_while_current,
    office_node_id,
    signer_key,
)
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.ports import ControlSender
from lienthong.node.store.witnesses import HeadOutcome
from lienthong.protocol.envelope import EnvelopeHeader, decode_header
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.status import token_sha256
from lienthong.protocol.witness import WITNESS_TYP, issue_witness, verify_witness

log = Logger(namespace="lienthong.audit")

HEAD_KIND = "audit-head"
WITNESS_KIND = "audit-witness"
#: A head or witness is a few hundred bytes; anything much larger is not one.
MAX_TOKEN_BYTES = 16 * 1024
#: The audit kinds that record what became of a received head or witness (each names the
#: control document's message ID); one without any is applied again at start.
OUTCOME_KINDS = ("audit-head-witnessed", "audit-head-superseded", "audit-witness-received",
                 "security-refused", "control-failed")


class HeadWitnessing:
    """Sends this node's latest signed head to its peers; witnesses the heads peers send;
    keeps the witnesses peers return."""

    def __init__(self, runtime: NodeRuntime, sender: ControlSender, *,
                 interval: float) -> None:
        self.rt = runtime
        self.sender = sender
        self.interval = interval
        self._loop: LoopingCall | None = None
        self._last_sent: int | None = None

    def start(self) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.rt.reactor
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _tick(self) -> Deferred:
        d = self.send_head()
        d.addErrback(lambda failure: log.failure("could not send the audit head", failure))
        return d

    @inlineCallbacks
    def send_head(self) -> Generator[Deferred[Any], Any, int | None]:
        """Send the latest signed head to every trusted peer, unless it went out already;
        return its seq (None when nothing was sent)."""
        rt = self.rt
        head = yield rt.db(rt.store.last_audit_head)
        peers = sorted(p.node_id for p in rt.directory.peers if p.state == "trusted")
        if head is None or not peers or head.seq == self._last_sent:
            return None
        self._last_sent = head.seq
        message_id = yield self.sender.send_control(
            peers, name=f"audit-head-{head.seq}.jws", data=head.signature.encode("ascii"),
            meta={"kind": HEAD_KIND, "seq": head.seq})
        yield rt.audit("audit-head-sent", seq=head.seq, hash=head.hash,
                       peers=[rt.peer_name(p) for p in peers], control_message_id=message_id)
        return head.seq

    # -- recovery ------------------------------------------------------------------------

    @inlineCallbacks
    def recover(self) -> Generator[Deferred[Any], Any, int]:
        """At start: apply the heads and witnesses a crash left between their receipt and
        their outcome (each outcome is an audit entry naming the control document); returns
        how many were applied."""
        rt = self.rt
        done = 0
        for kind, apply in ((HEAD_KIND, self.on_head), (WITNESS_KIND, self.on_witness)):
            rows = yield rt.db(rt.store.unsettled_control, kind, OUTCOME_KINDS)
            for row in rows:
                log.info("applying {kind} {mid} received before a restart", kind=kind,
                         mid=row.message_id)
                yield apply(row.sender_node_id, decode_header(row.header_token),
                            rt.config.home / row.stored_path, replay=True)
                done += 1
        return done

    # -- B: a peer's head arrives ----------------------------------------------------------

    @inlineCallbacks
    def on_head(self, peer: str, header: EnvelopeHeader, stored: Path, *,
                replay: bool = False) -> Generator[Deferred[Any], Any, None]:
        """Witness a peer's head: verify, keep (never over one held), answer with a witness.

        The outcome's audit entry (``audit-head-witnessed`` or ``security-refused``, naming
        the control document) is written last, after the witness is queued: a crash before it
        leaves the head to :meth:`recover`, which finds it held and sends the same witness.
        A head for an earlier entry than one held is no offence when it was signed in order
        with the heads held (it arrived late, or is applied again at start after a later one
        overtook it): the later head covers it (``audit-head-superseded``, nothing kept).
        Signed after a held head for a later entry, it says the log went backwards
        (``audit-head-older``)."""
        rt = self.rt
        # Kept and answered under the office's current node ID, whichever identity sealed it.
        peer = office_node_id(rt.directory, peer)
        try:
            token = yield rt.io(read_token, stored)
            # Signed just before the peer rotated its identity, a head names its former key.
            key, closed = signer_key(rt.directory, peer, token, HEAD_TYP)
            info = verify_head(token, key)
            check_signed_while_current(closed, info.time)
        except (BadHead, KeysError, NodeError, ValueError) as exc:
            yield self._refuse(peer, header, "audit-head-invalid", str(exc))
            return
        identity = rt.keys.identity

        def sign(index: int, prev: str | None) -> tuple[str, str]:
            witness = issue_witness(identity, subject=peer, seq=info.seq, hash=info.hash,
                                    head_time=info.time, head_sha256=token_sha256(token),
                                    index=index, prev_sha256=prev, time=rt.now_text())
            return witness, token_sha256(witness)

        outcome: HeadOutcome = yield rt.db(
            rt.store.witness_peer_head, node_id=peer, seq=info.seq, hash=info.hash,
            head_time=info.time, head=token, head_sha256=token_sha256(token), sign=sign,
            now=rt.now_text())
        held = outcome.row
        if outcome.verdict == "superseded":
            # Overtaken in delivery (two heads on the way, or one applied again after a
            # restart): the later head held covers its entry, so there is nothing to keep.
            yield rt.audit("audit-head-superseded", peer=peer, message_id=header.message_id,
                           seq=info.seq, hash=info.hash, head_time=info.time, by_seq=held.seq)
            return
        if outcome.verdict == "older":
            yield self._refuse(peer, header, "audit-head-older",
                               f"head at entry {info.seq} signed at {info.time} goes back on "
                               f"the head held at entry {held.seq} signed at "
                               f"{held.head_time} (witness {held.witness_index}): that "
                               "office's log went backwards")
            return
        if outcome.verdict == "contradicts":
            yield self._refuse(peer, header, "audit-head-contradiction",
                               f"entry {info.seq} now has hash {info.hash[:16]}..., but this "
                               f"office witnessed hash {held.hash[:16]}... at "
                               f"{held.received_at}: that office's history was rewritten")
            return
        witness_id = yield self.sender.send_control(
            [peer], name=f"audit-witness-{held.seq}.jws", data=held.witness.encode("ascii"),
            meta={"kind": WITNESS_KIND, "seq": held.seq})
        yield rt.audit("audit-head-witnessed", peer=peer, message_id=header.message_id,
                       seq=info.seq, hash=info.hash, head_time=info.time,
                       index=held.witness_index, again=outcome.verdict == "resend",
                       witness_message_id=witness_id)

    # -- A: a peer's witness of our head arrives -------------------------------------------

    @inlineCallbacks
    def on_witness(self, peer: str, header: EnvelopeHeader, stored: Path, *,
                   replay: bool = False) -> Generator[Deferred[Any], Any, None]:
        """Keep a peer's witness of one of our heads, once it names our chain as it is."""
        rt = self.rt
        own = {rt.node_id, *rt.former_keys, *rt.retired_ids}
        peer = office_node_id(rt.directory, peer)
        try:
            token = yield rt.io(read_token, stored)
            key, closed = signer_key(rt.directory, peer, token, WITNESS_TYP)
            info = verify_witness(token, key)
            check_signed_while_current(closed, info.time)
        except (ProtocolError, KeysError, NodeError, ValueError) as exc:
            yield self._refuse(peer, header, "audit-witness-invalid", str(exc))
            return
        try:
            if info.subject not in own:
                raise ValueError(f"it witnesses the chain of {info.subject}, not this office's")
            entries = yield rt.db(rt.store.audit_entries, after_seq=info.seq - 1, limit=1)
            heads = yield rt.db(rt.store.audit_heads)
            signed = {token_sha256(h.signature) for h in heads}
            if not entries or entries[0].seq != info.seq or entries[0].hash != info.hash \
                    or info.head_sha256 not in signed:
                raise ValueError(f"it names entry {info.seq} with hash {info.hash[:16]}..., "
                                 "which is not a head this office signed of its log as it is")
        except ValueError as exc:
            yield self._refuse(peer, header, "audit-witness-unknown-head", str(exc))
            return
        store, now = rt.store, rt.now_text()

        def keep() -> tuple[str, Any]:
            with store.transaction():
                verdict, held = store.record_head_witness(
                    witness_node_id=peer, seq=info.seq, hash=info.hash,
                    head_sha256=info.head_sha256, witness_index=info.index, token=info.token,
                    token_sha256=info.token_sha256, witnessed_at=info.time, now=now)
                if verdict != "contradicts":
                    # The witness kept (or already held) and its audit entry commit together.
                    store.append_audit("audit-witness-received", now, peer=peer,
                                       message_id=header.message_id, detail={
                                           "seq": info.seq, "hash": info.hash,
                                           "index": info.index, "witnessed_at": info.time,
                                           "again": verdict == "resend"})
            return verdict, held

        verdict, held = yield rt.db(keep)
        if verdict == "contradicts":
            yield self._refuse(peer, header, "audit-witness-contradiction",
                               f"witness {info.index} differs from the witness "
                               f"{held.witness_index} already held with that number")

    def _refuse(self, peer: str, header: EnvelopeHeader, code: str, reason: str) -> Deferred:
        log.warn("refused an audit {what} from {peer}: {reason}", peer=self.rt.peer_name(peer),
                 what="head" if code.startswith("audit-head") else "witness", reason=reason)
        return self.rt.audit("security-refused", peer=peer, message_id=header.message_id,
                             code=code, reason=reason[:500])


def read_token(path: Path) -> str:
    """A small signed token kept under state/control/ (ASCII), refused if too large."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_TOKEN_BYTES + 1)
    if len(data) > MAX_TOKEN_BYTES:
        raise ValueError(f"{path.name} is too large to be a signed audit head or witness")
    return data.decode("ascii", errors="replace").strip()
