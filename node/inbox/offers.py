"""Deciding about offers and storing what arrives: the receiving node's logic.

``offer`` answers an OFFER with ACCEPT (and the offset to resume from), HAVE (the stored
receipt: a duplicate never writes anything), or REJECT with a specific code. The header is
verified first, before a single byte of payload is accepted (node/inbox/offer_checks.py): it
must be signed by the very peer the TLS handshake authenticated, and name this node as a
recipient.

DATA is decrypted into a staging file as it arrives (``IncomingStream``, node/inbox/stream.py,
driven in order by the receiving connection). ``finish`` runs after END: prove the document
complete, publish into ``inbox/<sender>/`` and commit, and only then sign the receipt (see
node/inbox/layout.py for the order and the crash argument). Every refusal is audited with its
code.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.keys.errors import KeysError
from lienthong.node.core.access import access_policy
from lienthong.node.core.background import in_background
from lienthong.node.core.errors import NodeError
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.hops import CallBatches
from lienthong.node.core.names import safe_file_name
from lienthong.node.core.restricted import restrict, restricted_folder
from lienthong.node.documents.petitions import PETITION_TYPE, petition_reference, read_petition
from lienthong.node.edxml.export import copies_wanted, write_received_extras
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.layout import (
    META_SUFFIX,
    RECEIPT_SUFFIX,
    Sidecars,
    document_kind,
    document_metadata,
    finish_interrupted,
)
from lienthong.node.inbox.offer_checks import OfferChecks, Refusal, refuse
from lienthong.node.inbox.publication import Publication, Publisher, record_stored
from lienthong.node.inbox.staging import (
    STALE_STAGING_SECONDS,
    discard_legacy_partials,
    discard_stale_staging,
    staging_path,
)
from lienthong.node.inbox.staging_opens import StagingOpens
from lienthong.node.inbox.stream import RESUME_SUFFIX, IncomingStream
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.records import PeerRevoked, ReceivedRow
from lienthong.protocol.envelope import EnvelopeHeader, decode_header, open_header
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Have, Offer, Receipt, Reject
from lienthong.protocol.receipt import issue_receipt

log = Logger(namespace="lienthong.offers")


#: Documents up to this many ciphertext bytes finish in batches (``finish_batch``).
BATCHED_FINISH_MAX = IncomingStream.RESUMABLE_ABOVE

#: What a control document's handler gets: (sender node ID, verified header, stored file).
ControlHandler = Callable[[str, EnvelopeHeader, Path], Any]


class Offers:
    """Decides each offer and stores what the accepted ones bring. ``control`` maps a ``kind``
    (status, recall, key-update...) to the handler that applies such a document once it is
    durably stored and receipted. Control documents are kept under ``state/control/`` rather
    than shown to clerks in the inbox."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.rt = runtime
        self.control: dict[str, ControlHandler] = {}
        self.active: set[tuple[str, str]] = set()
        self.checks = OfferChecks(runtime)
        self.names = InboxNames(runtime.monotonic,
                                access_policy(runtime.config.node.clerks_group))
        #: (sender, message ID) of documents whose edXML copies are being written.
        self.copying: set[tuple[str, str]] = set()
        #: (sender, message ID) -> the recovery of that interrupted publication under way.
        self.recovering: dict[tuple[str, str], Deferred] = {}
        self.publisher = Publisher(runtime, self.names)
        # Offers come in bursts (a sender offers up to its window at once): their look-ups
        # share a database unit (node/core/hops.py), as their staging opens share a worker hop.
        self._lookups = CallBatches(runtime.db, self._get_received)
        self.opens = StagingOpens(runtime, self.release)
        # ENDs come in bursts too: their proofs, one fsync pass and their name reservations
        # share a worker hop (``finish_batch``).
        self._finishes = CallBatches(runtime.io, _finish_and_reserve, each=finish_batch)
        #: Small DATA frames of different transfers share a worker hop
        #: (node/inbox/connection.py ``SMALL_FRAME``); each transfer's own frames stay in order.
        self.small_writes = CallBatches(runtime.io, _call)
        #: Signs and sends back the refusal of a petition this office's policy does not
        #: allow: (peer, header, code, reason) -> Deferred; wired by the app.
        self.on_petition_refused: Callable[[str, EnvelopeHeader, str, str], Deferred] | None \
            = None

    def offers_of_one_read(self) -> AbstractContextManager[None]:
        """Around the events of one socket read (node/inbox/connection.py): the look-ups of
        its OFFERs go to the database thread together when it ends, in one hop rather than
        one for the first OFFER and one for the rest."""
        return self._lookups.held()

    def legacy_partials(self) -> Path:
        """Where older versions kept ciphertext partials (see ``discard_legacy_partials``)."""
        return self.rt.config.tmp / "receiving"

    def staging_path(self, signer: str, message_id: str) -> Path:
        """See ``staging_path`` (node/inbox/staging.py)."""
        return staging_path(self.rt.config.tmp, signer, message_id)

    def inbox_folder(self, peer: str, header: EnvelopeHeader | None = None) -> Path:
        if header is not None and document_kind(header) in self.control:
            return self.rt.config.home / "state" / "control" / peer.split("-", 1)[0]
        if header is not None and document_kind(header) == PETITION_TYPE:
            return (self.rt.config.petitions_folder / "inbox"
                    / safe_file_name(self.rt.peer_name(peer)))
        return self.rt.config.inbox / safe_file_name(self.rt.peer_name(peer))

    def opening_refused(self, peer: str, message_id: str, failure: Failure) -> Reject | None:
        """See ``StagingOpens.opening_refused`` (node/inbox/staging_opens.py)."""
        return self.opens.opening_refused(peer, message_id, failure)

    def refuse(self, peer: str, message_id: str, code: str, reason: str, *,
                security: bool = False) -> Reject:
        """See ``refuse`` (node/inbox/offer_checks.py)."""
        return refuse(self.rt, peer, message_id, code, reason, security=security)

    # -- OFFER -----------------------------------------------------------------------------

    @inlineCallbacks
    def offer(self, peer: str, event: Offer):
        mid = event.message_id
        try:
            header, receiving, file_key = self.checks.verified(peer, event)
            # Bound before this office's own policy is checked: a petition refused by it is
            # sent back signed, naming the opened header.
            self.checks.allowed(peer, header)
        except Refusal as refusal:
            if refusal.petition and self.on_petition_refused is not None:
                # Signed and sent back in the background; the REJECT answers the offer now.
                in_background(self.on_petition_refused(peer, header, refusal.code,
                                                       refusal.reason),
                              f"sign and send the refusal of {mid}", log)
            return self.refuse(peer, mid, refusal.code, refusal.reason,
                                security=refusal.security)
        except ProtocolError as exc:
            return self.refuse(peer, mid, exc.code, str(exc), security=True)
        except KeysError as exc:
            return self.refuse(peer, mid, "unknown-sender", str(exc), security=True)
        # Received documents are kept under the identity that signed them: a document signed
        # by a peer's former identity and offered again after the peer rotated is still the
        # same document (HAVE), never a second copy.
        signer = header.sender
        # Read beside the look-up, when a small document's acceptance waits for it.
        space = self.opens.space(header, file_key)
        row = yield self._lookups.call(signer, mid)
        if row is not None and row.state == "publishing":
            if (peer, mid) in self.active:
                # Being published right now (node/inbox/publication.py), not cut short by a crash.
                return Reject(message_id=mid, code="busy",
                              reason="this document is already being received")
            yield self.recover_row(row)
            row = yield self.rt.db(self.rt.store.get_received, signer, mid)
        if row is not None and row.header_token != event.envelope:
            # A message ID names one envelope forever: a different one under a delivered ID is
            # a replay or a forgery attempt by an enrolled peer, never a retry.
            return self.refuse(peer, mid, "message-id-reused", "this message ID was already "
                                "delivered with a different envelope", security=True)
        if row is not None and row.state == "stored":
            self.rt.audit("duplicate", peer=signer, message_id=mid, digest=row.sha256)
            # A crash after the commit can leave the resume record behind.
            staging = self.staging_path(signer, mid)
            yield self.rt.io(_unlink_quietly, staging.with_name(staging.name + RESUME_SUFFIX))
            return Have(message_id=mid, receipt=row.receipt)
        if (peer, mid) in self.active:
            return Reject(message_id=mid, code="busy",
                               reason="this document is already being received")
        # Held from here, with no yield between the check and the hold: a second offer of
        # the same document (a redial) can never open the same staging file.
        self.active.add((peer, mid))
        if document_kind(header) == PETITION_TYPE:
            try:
                yield self.rt.io(restricted_folder, self.inbox_folder(signer, header),
                                 self.rt.config.petitions.group,
                                 below=self.rt.config.petitions_folder)
            except (OSError, NodeError) as exc:
                self.release(peer, mid)
                return self.refuse(peer, mid, "storage-unavailable",
                                   f"cannot prepare the restricted petition folder: {exc}")
        return (yield self.opens.accept(peer, header, receiving.node_id, file_key, space))

    def _get_received(self, signer: str, mid: str) -> ReceivedRow | None:
        """On the database thread (a read): the document as received so far, if at all."""
        return self.rt.store.get_received(signer, mid)

    def _reader_of(self, header: EnvelopeHeader) -> str:
        """Which of our identities (current or former) an envelope was sealed to."""
        receiving = self.rt.receiving_keys(header.recipients)
        if receiving is not None:
            return receiving.node_id
        # A former identity past its grace period: its sealed key opens with our keys still
        # (encryption keys are never dropped).
        return next((r for r in header.recipients if header.key_for(r) is not None
                     and r in self.rt.retired_ids), self.rt.node_id)

    def release(self, peer: str, message_id: str) -> None:
        self.active.discard((peer, message_id))

    # -- END -------------------------------------------------------------------------------

    @inlineCallbacks
    def finish(self, peer: str, header: EnvelopeHeader, stream: IncomingStream,
               last: bytes | memoryview | None = None):
        """After END and after every DATA frame went through ``stream`` (the caller orders
        them), except ``last``, the final DATA frame if it had not been written yet (a small
        document's whole ciphertext, arriving with its END): write it, prove the document and
        reserve its inbox name (one worker hop), publish and commit it with whatever else
        finished meanwhile (node/inbox/publication.py), and return the RECEIPT (or a
        REJECT)."""
        rt = self.rt
        mid = header.message_id
        # Kept under the identity that signed it (see ``offer``).
        signer = header.sender
        try:
            # The header comes back with its digest proven (v3: by the signed trailer).
            # A large document's proof and fsync take long: it keeps a hop of its own, so
            # the small documents finishing meanwhile do not wait behind it.
            args = (stream, self.names, self.inbox_folder(signer, header), header.name, last)
            final, header = yield (self._finishes.call(*args)
                                   if header.ciphertext_size <= BATCHED_FINISH_MAX
                                   else rt.io(_finish_and_reserve, *args))
        except ProtocolError as exc:
            yield rt.io(stream.discard)
            return self.refuse(peer, mid, exc.code, str(exc))
        except _CannotPublish as exc:
            return self.refuse(peer, mid, "storage-unavailable",
                                f"cannot publish the document: {exc.error.strerror}")
        except OSError as exc:
            yield rt.io(stream.close)
            return self.refuse(peer, mid, "storage-unavailable",
                                f"cannot write the document: {exc.strerror}")
        now = rt.now_text()
        receiving, header, now, meta = self._receipt_inputs(signer, header, final, now)
        try:
            receipt = yield self.publisher.add(Publication(
                signer=signer, header=header, staging=stream.staging,
                resume_record=stream.resume_record, final=final, receiving=receiving,
                meta=meta, now=now, peer=peer, sidecar_group=self._sidecar_group(header)))
        except OSError as exc:
            return self.refuse(peer, mid, "storage-unavailable",
                                f"cannot publish the document: {exc.strerror}")
        except PeerRevoked as exc:
            yield rt.io(stream.discard)
            return self.refuse(peer, mid, exc.code, f"not accepted: {exc}")
        yield self._stored(signer, header, final)
        failpoint("receiver-after-commit-before-receipt")
        return Receipt(message_id=mid, receipt=receipt)

    def _receipt_inputs(self, peer: str, header: EnvelopeHeader, final: Path,
                        now: str) -> tuple[Any, EnvelopeHeader, str, dict[str, Any]]:
        # Signed by the identity the envelope was addressed to (a former one during its grace
        # period), so the receipt verifies for the sender under the key it sealed for.
        receiving = self.rt.receiving_keys(header.recipients) or self.rt.keys
        meta = document_metadata(header, sender_name=self.rt.peer_name(peer), received_at=now,
                                 original_name=header.name)
        meta["stored_as"] = final.name
        return receiving, header, now, meta

    def _sidecar_group(self, header: EnvelopeHeader) -> str | None:
        """A petition's sidecars are the petition staff's alone, like the petition."""
        return (self.rt.config.petitions.group if document_kind(header) == PETITION_TYPE
                else None)

    @inlineCallbacks
    def _sign_and_commit(self, peer: str, header: EnvelopeHeader, final: Path, now: str):
        """For a document already in the inbox (a recovery): sign, commit, write the sidecars
        (after the commit, as for any document: node/inbox/publication.py)."""
        receiving, header, now, meta = self._receipt_inputs(peer, header, final, now)
        receipt = issue_receipt(receiving.identity, recipient=receiving.node_id, header=header,
                                time=now)
        yield self._commit(peer, header, final, now, receipt)
        yield self.publisher.place_sidecars([(peer, header.message_id, Sidecars(
            final, meta, receipt, self._sidecar_group(header)))])
        return receipt

    @inlineCallbacks
    def _commit(self, peer: str, header: EnvelopeHeader, final: Path, now: str,
                receipt: str):
        failpoint("receiver-after-fsync-before-commit")
        yield record_stored(self.rt, peer, header, final, now, receipt)
        yield self._stored(peer, header, final)

    @inlineCallbacks
    def _stored(self, peer: str, header: EnvelopeHeader, final: Path):
        """After the ``stored`` commit: log it, and apply a control document."""
        rt = self.rt
        log.info("received {name!r} from {peer} into {path}", name=header.name,
                 peer=rt.peer_name(peer), path=str(final))
        if document_kind(header) == PETITION_TYPE:
            yield self._file_petition(peer, header, final)
        handler = self.control.get(document_kind(header))
        if handler is None:
            self._edxml_extras(peer, header.message_id, header.meta, final)
        if handler is not None:
            failpoint("receiver-before-control-applied")
            try:
                yield handler(peer, header, final)
            except Exception as exc:  # noqa: BLE001 - a bad control document must not stop us
                log.failure("could not apply {kind} {mid} from {peer}", kind=document_kind(header),
                            mid=header.message_id, peer=rt.peer_name(peer))
                yield rt.audit("control-failed", peer=peer, message_id=header.message_id,
                               control_kind=document_kind(header), reason=str(exc)[:500])

    @inlineCallbacks
    def _file_petition(self, peer: str, header: EnvelopeHeader, final: Path):
        """A stored petition: readable by the petition staff only, and in the register."""
        rt = self.rt
        try:
            yield rt.io(_restrict_published, final, rt.config.petitions.group)
            yield rt.db(rt.store.record_petition, "received", peer, header.message_id,
                        read_petition(header.meta), rt.now_text())
        except Exception as exc:  # noqa: BLE001 - the document is stored and receipted
            log.error("could not register petition {ref}: {error}",
                      ref=petition_reference(header.message_id), error=type(exc).__name__)
            yield rt.audit("petition-register-failed", peer=peer,
                           message_id=header.message_id, reason=type(exc).__name__)

    def _edxml_extras(self, peer: str, message_id: str, meta: Mapping[str, Any], final: Path,
                      *, recovering: bool = False) -> Deferred:
        """What ``[edxml]`` asks for beside a stored document (its attachments unpacked, or an
        .edxml beside it): copies, made without delaying the receipt. Its ``edxml_copies_due``
        row goes once they are written, or once a failure is logged and audited (``lienthong
        export --edxml`` makes them then); a crash before leaves the row for ``recover``."""
        rt = self.rt
        key = (peer, message_id)
        if not copies_wanted(rt.config, meta) or key in self.copying:
            return succeed(None)
        self.copying.add(key)
        failpoint("receiver-after-commit-before-copies")
        d = rt.io(write_received_extras, rt.config, final, message_id=message_id,
                  sender=rt.peer_name(peer), meta=meta, recovering=recovering)

        def failed(failure: Failure) -> Deferred:
            log.warn("could not write the edXML copies of {mid}: {error}",
                     mid=message_id, error=failure.getErrorMessage())
            return rt.audit("edxml-extras-failed", peer=peer, message_id=message_id,
                            reason=failure.getErrorMessage()[:500])
        d.addErrback(failed)
        d.addCallback(lambda _: rt.db(rt.store.edxml_copies_done, peer, message_id))
        d.addErrback(lambda f: log.failure("could not record the edXML copies of {mid}", f,
                                           mid=message_id))
        d.addBoth(lambda _: self.copying.discard(key))
        return d

    @inlineCallbacks
    def recover_copies(self):
        """Write the edXML copies a crash interrupted (after the ``stored`` commit, before the
        copies): idempotent, a finished copy is not made twice."""
        rt = self.rt
        due = yield rt.db(rt.store.edxml_copies_due)
        for sender, message_id in due:
            rows = yield rt.db(rt.store.stored_received, message_id)
            row = next((r for r in rows if r.sender_node_id == sender), None)
            if row is None:  # still publishing (recover_row handles it) or gone
                continue
            log.info("writing the edXML copies of {mid}, interrupted", mid=message_id)
            yield self._edxml_extras(sender, message_id, row.meta,
                                     rt.config.home / row.stored_path, recovering=True)

    # -- recovery --------------------------------------------------------------------------

    @inlineCallbacks
    def recover(self):
        removed = yield self.rt.io(discard_legacy_partials, self.legacy_partials())
        if removed:
            log.info("removed {n} partial transfer(s) kept by an older version; they will be "
                     "received again from the start", n=removed)
        rows = yield self.rt.db(self.rt.store.publishing_rows)
        for row in rows:
            yield self.recover_row(row)
        yield self.recover_sidecars()
        yield self.recover_copies()
        stale = yield self.rt.io(discard_stale_staging, self.rt.config.tmp / "staging",
                                 self.rt.now(), frozenset(mid for _, mid in self.active))
        if stale:
            log.info("removed {n} partly received document(s) no peer offered again for "
                     "{days} days", n=stale, days=STALE_STAGING_SECONDS // 86400)

    @inlineCallbacks
    def recover_sidecars(self):
        """Write again the sidecars a crash cut short after the ``stored`` commit (a
        ``sidecars_due`` row left): from the store, each under a temporary name renamed into
        place, so a partial one is replaced whole. Idempotent."""
        rt = self.rt
        rows = yield rt.db(rt.store.sidecars_due_rows)
        if not rows:
            return
        log.info("writing the sidecars of {n} stored document(s), interrupted", n=len(rows))
        items = []
        for row in rows:
            if row.receipt is None:  # a stored row always has one (Store.mark_stored)
                continue
            try:
                header = self._stored_header(row)
            except Exception as exc:  # noqa: BLE001 - one row must not stop the start
                log.warn("cannot write the sidecars of {mid}: its stored header does not "
                         "open ({error})", mid=row.message_id, error=type(exc).__name__)
                continue
            final = rt.config.home / row.stored_path
            _, header, _, meta = self._receipt_inputs(row.sender_node_id, header, final,
                                                      row.received_at)
            items.append((row.sender_node_id, row.message_id, Sidecars(
                final, meta, row.receipt, self._sidecar_group(header))))
        yield self.publisher.place_sidecars(items)

    def _stored_header(self, row: ReceivedRow) -> EnvelopeHeader:
        """A received row's header, opened again. A v3 header names neither the name nor the
        digest in the clear: reopen it with our keys, and take the digest this node proved
        and recorded."""
        stored = decode_header(row.header_token)
        header = open_header(stored, node_id=self._reader_of(stored),
                             encryption_keys=self.rt.keys.encryption_private_by_kid())
        return header if header.digest is not None else header.with_digest(row.sha256)

    def recover_row(self, row: ReceivedRow) -> Deferred:
        """Complete (or forget) a publication a crash interrupted; never makes a second copy.

        One at a time per document: the start-up recovery and a peer that offers the same
        document again at once (it redials as soon as the node listens, as after a standby's
        takeover) both come here; the second waits for the first, then finds it done."""
        key = (row.sender_node_id, row.message_id)
        running = self.recovering.get(key)
        if running is not None:
            waited: Deferred = Deferred()

            def wake(result: object) -> object:
                waited.callback(None)
                return result
            running.addBoth(wake)
            return waited
        started = self._recover_row(row)
        self.recovering[key] = started

        def finished(result: object) -> object:
            self.recovering.pop(key, None)
            return result
        return started.addBoth(finished)

    @inlineCallbacks
    def _recover_row(self, row: ReceivedRow):
        rt = self.rt
        current = yield rt.db(rt.store.get_received, row.sender_node_id, row.message_id)
        if current is None or current.state != "publishing":
            return  # completed (or forgotten) since the row was read
        final = rt.config.home / row.stored_path
        staging = self.staging_path(row.sender_node_id, row.message_id)
        done = yield rt.io(finish_interrupted, staging, final, row.sha256, self.names.access)
        if done:
            header = self._stored_header(row)
            log.info("completing interrupted reception of {mid}", mid=row.message_id)
            yield self._sign_and_commit(row.sender_node_id, header, final, rt.now_text())
            yield rt.io(_unlink_quietly, staging.with_name(staging.name + RESUME_SUFFIX))
        else:
            log.warn("forgetting interrupted reception of {mid}; the sender will resend",
                     mid=row.message_id)
            yield rt.db(rt.store.abandon_publish, row.sender_node_id, row.message_id,
                        rt.now_text())
            yield rt.io(_unlink_quietly, staging)
            yield rt.io(_unlink_quietly, staging.with_name(staging.name + RESUME_SUFFIX))


def _call(work: Callable[..., Any], *args: Any) -> Any:
    """Worker pool: ``work(*args)`` (a batched call of any blocking step)."""
    return work(*args)


def _finish_and_reserve(stream: IncomingStream, names: InboxNames, folder: Path,
                        name: str, last: bytes | memoryview | None,
                        ) -> tuple[Path, EnvelopeHeader]:
    """Worker pool: write ``last`` (see ``_write_last``), prove the document (fsyncing its
    staging file), then reserve its inbox name; one hop instead of two or three per
    document. Returns the name and the proven header."""
    _write_last(stream, last)
    header = stream.finish()
    return _reserve(names, folder, name), header


def _write_last(stream: IncomingStream, last: bytes | memoryview | None) -> None:
    """The document's final DATA frame, when it came with its END and was not written yet: the
    same decryption into the staging file as any frame (node/inbox/stream.py), in the END's
    hop rather than a hop of its own. Nothing is durable before the proof and fsync that
    follow, so a crash here is a crash mid-transfer (docs/design.md §6)."""
    if last is not None:
        stream.write(last)
        failpoint("receiver-last-data-at-end")


def finish_batch(_: object, calls: list[tuple[Any, ...]]) -> list[Any]:
    """Worker pool: ``_finish_and_reserve`` for the ENDs of a burst, with one fsync pass:
    every final DATA frame that came with its END written, every staging file proven and its
    writeback started, then each fsynced (the first fsync commits the journal for all:
    node/core/writeback.py ``start_writeback``) and its name reserved. Each call's result, or
    the Failure that stopped it alone."""
    proven: list[Any] = []
    for stream, _names, _folder, _name, last in calls:
        try:
            _write_last(stream, last)
            proven.append(stream.prove())
        except Exception:  # noqa: BLE001 - this document's own failure, handed back
            proven.append(Failure())
    results: list[Any] = []
    for (stream, names, folder, name, _last), header in zip(calls, proven, strict=True):
        if isinstance(header, Failure):
            results.append(header)
            continue
        try:
            stream.sync()
            results.append((_reserve(names, folder, name), header))
        except Exception:  # noqa: BLE001 - this document's own failure, handed back
            results.append(Failure())
    return results


def _reserve(names: InboxNames, folder: Path, name: str) -> Path:
    try:
        return names.reserve(folder, name)
    except OSError as exc:
        raise _CannotPublish(exc) from exc


class _CannotPublish(NodeError):
    """No inbox name could be reserved (the inbox folder is unusable): not a write error of
    the staging file, which stays proven for the next attempt."""

    code = "cannot-publish"

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _restrict_published(final: Path, group: str) -> None:
    """The document and its sidecars: the petition staff's group may read them."""
    for path in (final, final.with_name(final.name + META_SUFFIX),
                 final.with_name(final.name + RECEIPT_SUFFIX)):
        if path.exists():
            restrict(path, group)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
