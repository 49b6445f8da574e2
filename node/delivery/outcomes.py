"""What happens to each document a ``PeerLink`` offers: accepted (start or resume the
transfer), progress, sent, receipted (verified, then recorded in batches), or rejected (retried,
held back or failed for good).

A mixin of ``PeerLink`` (delivery/links.py), kept apart so the link's connection state
machine (dial, back off, connect, idle) reads on its own; these methods are the
``SenderProtocol``'s callbacks about one document each, and touch only the link's
per-document tables.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import nacl.signing
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from lienthong.keys.directory import PeerKey
from lienthong.keys.errors import KeysError
from lienthong.node.core.background import in_background
from lienthong.node.delivery.connection import SenderProtocol
from lienthong.node.delivery.notes import TransferNotes
from lienthong.node.delivery.openings import EnvelopeOpenings, Opening
from lienthong.node.delivery.readahead import CiphertextSource
from lienthong.node.delivery.receipts import (
    ReceiptBatch,
    Recorded,
    VerifiedReceipt,
    late_receipt_reason,
)
from lienthong.node.delivery.unrecorded import UnrecordedOffers
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.spool.kept_keys import KeptFileKeys
from lienthong.node.spool.sealing import read_signed_digest
from lienthong.node.store.records import DispatchRow, PeerRevoked, QueuedDelivery
from lienthong.protocol.envelope import EnvelopeHeader, decode_header
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import verify_receipt

log = Logger(namespace="lienthong.links")

#: Refusals that no retry can cure; anything else is retried with backoff.
PERMANENT_REJECTIONS = frozenset({"not-addressed-to-us", "sender-mismatch", "bad-signature",
                                  "too-large", "unknown-sender", "bad-envelope",
                                  "confidentiality-refused",
                                  # the receiver's own petition policy (docs/petitions.md §3)
                                  "petition-not-allowed", "petition-not-sealed",
                                  "bad-petition"})
#: Refusals that say "not now" (full disk, busy, a fault at the receiver): retried forever,
#: with backoff, because they cure themselves or need an operator, never a resend from zero.
TRANSIENT_REJECTIONS = frozenset({"storage-unavailable", "busy", "internal-error"})
#: Any other failure means the bytes did not verify; it is retried from zero this many times
#: (a receiver's damaged partial file after a crash looks the same as a damaged envelope),
#: then the delivery fails.
MAX_VERIFY_RETRIES = 3

#: What the clerk (or the IT officer) can do next, by the peer's refusal code: written into the
#: document's ``failed/`` reason after the refusal itself.
NEXT_STEPS = {
    "too-large": "The file is over {peer}'s size limit: split it, or ask {peer}'s IT officer "
                 "to raise max_document_bytes, then drop it into the outbox again.",
    "not-addressed-to-us": "{peer} has another identity than the one it was sealed for: ask "
                           "your IT officer to check {peer}'s card (lienthong peers show "
                           "{peer}), then drop the file into the outbox again.",
    "unknown-sender": "{peer} does not know this office (it has not enrolled it, or removed "
                      "it): ask your IT officer to call {peer}'s, then drop the file into the "
                      "outbox again.",
    "petition-not-allowed": "{peer} does not accept citizens' petitions from this office: "
                            "its signed refusal is kept with the document (lienthong "
                            "petitions). Send the petition to an office that handles it.",
    "petition-not-sealed": "{peer} accepts citizens' petitions only sealed: wait until {peer} "
                           "runs protocol 2, then drop the petition into the outbox again.",
    "revoked": "{peer} has revoked this office's key: the IT officers must enrol the offices "
               "again before anything can be sent.",
    "peer-revoked": "{peer} has revoked this office's key: the IT officers must enrol the "
                    "offices again before anything can be sent.",
}
DEFAULT_NEXT_STEP = ("Tell your IT officer: {peer} gave the reason above. Once it is fixed, "
                     "drop the file into the outbox again.")


def refusal_reason(peer: str, code: str, reason: str) -> str:
    """A peer's final refusal as written into ``failed/``: what it said, then what to do."""
    step = NEXT_STEPS.get(code, DEFAULT_NEXT_STEP).format(peer=peer)
    return f"{peer} refused it: {reason} ({code}). {step}"


@dataclass
class Progress:
    """An in-flight transfer, for the status console."""

    message_id: str
    name: str
    size: int
    offset: int
    #: On the timer clock (``rt.monotonic()``): only ever subtracted from a later reading.
    started_monotonic: float
    started_offset: int


class DocumentOutcomes:
    """Per-document callbacks of a ``PeerLink``, which sets every attribute declared here and
    defines the methods declared under ``TYPE_CHECKING``."""

    rt: NodeRuntime
    node_id: str
    proto: SenderProtocol | None
    #: The documents offered on this connection and not yet receipted or rejected.
    offered: dict[str, QueuedDelivery]
    progress: dict[str, Progress]
    last_error: str | None
    #: Why the link closes the connection itself, so that it backs off before redialling.
    _retry_reason: str | None
    #: Retries from zero per document (``MAX_VERIFY_RETRIES``).
    _verify_failures: dict[str, int]
    #: Not offered again on this connection (a transient refusal).
    _held_back: set[str]
    _receipts: ReceiptBatch
    _openings: EnvelopeOpenings
    #: The file keys the outbox kept from sealing, if it shares them (node/spool/kept_keys.py).
    _kept_keys: KeptFileKeys | None
    #: ``offered`` and ``sent``, written in shared units of work (delivery/notes.py).
    _notes: TransferNotes
    _headers: dict[str, EnvelopeHeader]
    #: Offered before their dispatch was committed (delivery/unrecorded.py).
    _unrecorded: UnrecordedOffers
    _on_all_delivered: Callable[[str, DispatchRow | None], object]
    _on_delivery_failed: Callable[[str, str], object]

    if TYPE_CHECKING:
        # The link's own (delivery/links.py); declared here only for the type checker, so
        # that a PeerLink is still the one place that defines them.
        @property
        def name(self) -> str: ...

        def peer_identities(self) -> tuple[PeerKey, ...]: ...

        def _cancel_timer(self) -> None: ...

        def _fill(self) -> object: ...

    def accepted(self, proto: SenderProtocol, message_id: str, offset: int) -> None:
        row = self.offered.get(message_id)
        if row is None:
            return
        self._cancel_timer()
        # Opening the envelope reads the spool (files, the sealed file key) and a resume
        # re-creates the ciphertext up to ``offset`` (about a second per GiB): on the worker
        # pool, so the reactor never waits on the disk and keeps serving other transfers;
        # the envelopes of documents accepted together share one hop, and a small one's was
        # begun at its OFFER (delivery/openings.py).
        d = self._openings.take_early(message_id, offset)
        if d is None:
            d = self._openings.open(self._opening(row, offset), priority=row.priority,
                                    size=row.ciphertext_size)
        d.addCallbacks(lambda source: self._start(proto, row, offset, source),
                       lambda failure: self._unreadable(proto, message_id, failure.value))
        in_background(d, "open an envelope", log)

    def _opening(self, row: QueuedDelivery, offset: int) -> Opening:
        message_id = row.message_id
        kept = (self._kept_keys.get(message_id, row.header_token)
                if self._kept_keys is not None else None)
        return Opening(row.spool_dir, row.header_token, offset, signers=self._identities(),
                       on_trailer=lambda size, sha256: self.rt.reactor.callFromThread(
                           self._trailer_signed, message_id, size, sha256), kept=kept)

    def offering(self, row: QueuedDelivery) -> None:
        """``row`` is being offered: begin opening its envelope now if it is small, so that
        its ACCEPT finds it open (delivery/openings.py)."""
        self._openings.open_early(row.message_id, self._opening(row, 0), priority=row.priority,
                                  size=row.ciphertext_size)

    def _unreadable(self, proto: SenderProtocol, message_id: str, exc: BaseException) -> None:
        if not isinstance(exc, OSError):
            raise exc
        proto.local_failure(f"envelope of {message_id} is missing: {exc}")

    def _start(self, proto: SenderProtocol, row: QueuedDelivery, offset: int,
               source: CiphertextSource) -> None:
        message_id = row.message_id
        if proto is not self.proto or message_id not in self.offered:
            source.close()  # the connection went away while the envelope was being prepared
            return
        # Offered before its dispatch was committed: no DATA until it is (delivery/unrecorded.py).
        if self._unrecorded.after_commit(message_id,
                                         lambda: self._start(proto, row, offset, source),
                                         source.close):
            return
        self.progress[message_id] = Progress(message_id, row.name, row.ciphertext_size, offset,
                                             self.rt.monotonic(), offset)
        self._notes.offered(message_id, self.node_id, offset)
        if offset:
            log.info("resuming {name!r} to {peer} at byte {offset}", name=row.name,
                     peer=self.name, offset=offset)
        proto.start_transfer(message_id, priority=row.priority, size=row.ciphertext_size,
                             offset=offset, source=source)

    def transfer_progress(self, message_id: str, offset: int) -> None:
        entry = self.progress.get(message_id)
        if entry is not None:
            entry.offset = offset

    def sent_all(self, message_id: str, sent_bytes: int) -> None:
        self._notes.sent(message_id, self.node_id, sent_bytes)

    def _identities(self) -> dict[str, nacl.signing.SigningKey]:
        """Our identity keys by node ID, current and former: a streamed seal's trailer is
        signed by the identity that signed its header."""
        return {keys.node_id: keys.identity
                for keys in (self.rt.keys, *self.rt.former_keys.values())}

    def _trailer_signed(self, message_id: str, size: int, sha256: str) -> None:
        """A streamed seal's trailer is signed and kept (worker thread, then here): record its
        digest in the dispatch row. Nothing waits for it: the kept trailer is the durable
        record, and a receipt that arrives first records the digest itself."""
        in_background(self.rt.db_audited(
            self.rt.store.record_digest, message_id, sha256,
            events=[("trailer-signed", {"message_id": message_id, "digest": sha256,
                                        "size": size})]), "record a signed digest", log)

    def receipt(self, proto: SenderProtocol, message_id: str, token: str, *,
                already: bool) -> None:
        """Verify a receipt at once; store it with the others that arrive meanwhile.

        Only a verified receipt is queued, and the document counts as delivered only once the
        transaction that records it has committed (``lienthong.node.delivery.receipts``).
        A streamed seal offered before its digest was recorded is checked against the trailer
        kept in its spool folder, whose digest is recorded first (the database thread commits
        in order, so no delivery is ever recorded without its dispatch's digest)."""
        row = self.offered.get(message_id)
        if row is None or message_id in self._receipts:
            return
        if row.sha256 is None:
            verify_keys = {node_id: key.verify_key.encode()
                           for node_id, key in self._identities().items()}
            sender = self._header(row).sender
            d = self.rt.io(read_signed_digest, row.spool_dir, row.header_token,
                           verify_keys.get(sender, b""))
            d.addCallback(self._digest_for_receipt, proto, message_id, token, already)
            in_background(d, "read a kept trailer", log)
            return
        try:
            header = self._header(row)
            signer = self._receipt_signer(header)
            info = verify_receipt(token, self.rt.directory.verify_key_for(self.node_id,
                                                                         kid=signer),
                                  expected=header, recipient=signer, sha256=row.sha256,
                                  size=row.size)
        except (ProtocolError, KeysError) as exc:
            code = getattr(exc, "code", "bad-receipt")
            self.rt.audit("receipt-refused", peer=self.node_id, message_id=message_id,
                          code=code, reason=str(exc))
            proto.abort(code, f"receipt for {message_id} does not verify: {exc}",
                        peer_fault=True)
            return
        started = self._receipts.add(VerifiedReceipt(message_id, token, info.sha256,
                                                     info.time, already))
        if started is not None:
            in_background(started, "record receipts", log)

    def _digest_for_receipt(self, signed: tuple[int, str] | None, proto: SenderProtocol,
                            message_id: str, token: str, already: bool) -> None:
        row = self.offered.get(message_id)
        if row is None or proto is not self.proto:
            return
        if signed is None:   # no trailer ever left this node: the receipt cannot be for it
            self.rt.audit("receipt-refused", peer=self.node_id, message_id=message_id,
                          code="bad-receipt", reason="a receipt arrived for a document "
                          "whose trailer this node never signed")
            proto.abort("bad-receipt", f"receipt for {message_id} answers a stream this node "
                        "never finished", peer_fault=True)
            return
        in_background(self.rt.db(self.rt.store.record_digest, message_id, signed[1]),
                      "record a signed digest", log)
        self.offered[message_id] = replace(row, sha256=signed[1])
        self.receipt(proto, message_id, token, already=already)

    def _receipts_recorded(self, batch: list[Recorded]) -> None:
        """A batch of receipts is committed: those documents are delivered to this peer.
        The batch is logged in one line (a line per document was a tenth of the reactor's
        CPU in a burst: docs/benchmarks.md, History 55); the audit keeps one entry each."""
        receipted: list[str] = []
        for item in batch:
            mid = item.receipt.message_id
            if isinstance(item.error, PeerRevoked):
                # Refused and failed in the store (delivery/receipts.py): file it in failed/.
                self.offered.pop(mid, None)
                self.progress.pop(mid, None)
                self._headers.pop(mid, None)
                self._openings.forget(mid)
                log.warn("refused the receipt of {message_id} from {peer}: {error}",
                         message_id=mid, peer=self.name, error=str(item.error))
                self._on_delivery_failed(mid, late_receipt_reason(item.error))
                continue
            if item.error is not None:
                log.error("could not record the receipt of {message_id} from {peer}: "
                          "{error}", message_id=mid, peer=self.name, error=str(item.error))
                continue
            self.offered.pop(mid, None)
            self.progress.pop(mid, None)
            self._verify_failures.pop(mid, None)
            self._headers.pop(mid, None)
            self._openings.forget(mid)   # a HAVE: the ACCEPT never came
            receipted.append(f"{mid} (it already had it)" if item.receipt.already else mid)
            if item.all_done:
                self._on_all_delivered(mid, item.dispatch)
        if len(receipted) == 1:
            log.info("{peer} receipted {message_id}", peer=self.name, message_id=receipted[0])
        elif receipted:
            log.info("{peer} receipted {count} documents: {message_ids}", peer=self.name,
                     count=len(receipted), message_ids=", ".join(receipted))
        self._fill()

    def _header(self, row: QueuedDelivery) -> EnvelopeHeader:
        """The decoded header of a document we offered (decoded once, not per use; the one
        the sealing opened when the outbox kept it, node/spool/kept_keys.py)."""
        header = self._headers.get(row.message_id)
        if header is None:
            kept = (self._kept_keys.get(row.message_id, row.header_token)
                    if self._kept_keys is not None else None)
            header = kept[0] if kept is not None else decode_header(row.header_token)
            self._headers[row.message_id] = header
        return header

    def _receipt_signer(self, header: EnvelopeHeader) -> str:
        """Which identity of this peer must sign the receipt: the one our envelope names as
        recipient (a former one if we sealed it before the peer rotated its identity)."""
        for key in self.peer_identities():
            if key.kid in header.recipients:
                return key.kid
        return self.node_id

    @inlineCallbacks
    def rejected(self, proto: SenderProtocol, message_id: str, code: str, reason: str):
        row = self.offered.pop(message_id, None)
        self.progress.pop(message_id, None)
        self._headers.pop(message_id, None)
        self._openings.forget(message_id)
        if row is None:
            return
        yield self.rt.audit("rejected-by-peer", peer=self.node_id, message_id=message_id,
                            code=code, reason=reason)
        failures = self._verify_failures.get(message_id, 0)
        if code not in TRANSIENT_REJECTIONS:
            failures += 1
            self._verify_failures[message_id] = failures
        if code in PERMANENT_REJECTIONS or failures > MAX_VERIFY_RETRIES:
            why = refusal_reason(self.name, code, reason)
            yield self.rt.db(self.rt.store.fail_delivery, message_id, self.node_id, why,
                             self.rt.now_text())
            self._on_delivery_failed(message_id, why)
            log.warn("{peer} refused {message_id}: {reason}", peer=self.name,
                     message_id=message_id, reason=reason)
        else:
            # Not on this connection again; the next connection retries it, after a backoff
            # if nothing else is moving (a full disk at the peer must not be hammered).
            self._held_back.add(message_id)
            self.last_error = f"{code}: {reason}"
            if not self.offered and self.proto is not None:
                self._retry_reason = self.last_error
                self.proto.close()
                return
        self._fill()
