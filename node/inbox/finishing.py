"""Finishing a received document after END: prove it, reserve its inbox name, publish and commit
it, and only then sign its receipt; then what follows the ``stored`` commit (a control
document applied, a petition registered, the edXML copies written).

The order and the crash argument are node/inbox/layout.py's; the batched publication is
node/inbox/publication.py's. Split out of node/inbox/offers.py, which decides about offers and
stores what arrives.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.core.errors import NodeError
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.hops import CallBatches
from lienthong.node.core.names import safe_file_name
from lienthong.node.core.restricted import restrict
from lienthong.node.documents.petitions import PETITION_TYPE, petition_reference, read_petition
from lienthong.node.edxml.export import copies_wanted, write_received_extras
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.layout import (
    META_SUFFIX,
    RECEIPT_SUFFIX,
    Sidecars,
    document_kind,
    document_metadata,
)
from lienthong.node.inbox.offer_checks import refuse
from lienthong.node.inbox.publication import Publication, Publisher, record_stored
from lienthong.node.inbox.stream import IncomingStream
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.records import PeerRevoked
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Receipt
from lienthong.protocol.receipt import issue_receipt

log = Logger(namespace="lienthong.offers")


#: Documents up to this many ciphertext bytes finish in batches (``finish_batch``).
BATCHED_FINISH_MAX = IncomingStream.RESUMABLE_ABOVE

#: What a control document's handler gets: (sender node ID, verified header, stored file).
ControlHandler = Callable[[str, EnvelopeHeader, Path], Any]


class Finishing:
    """Finishes the documents whose END came, and applies what they are once stored.
    ``control``: the handlers by ``kind`` (``Offers.control``, the same dict)."""

    def __init__(self, runtime: NodeRuntime, names: InboxNames,
                 control: Mapping[str, ControlHandler]) -> None:
        self.rt = runtime
        self.names = names
        self.control = control
        #: (sender, message ID) of documents whose edXML copies are being written.
        self.copying: set[tuple[str, str]] = set()
        self.publisher = Publisher(runtime, names, stored=self._batch_stored)
        # ENDs come in bursts too: their proofs, one fsync pass and their name reservations
        # share a worker hop (``finish_batch``).
        self._finishes = CallBatches(runtime.io, _finish_and_reserve, each=finish_batch)

    def inbox_folder(self, peer: str, header: EnvelopeHeader | None = None) -> Path:
        if header is not None and document_kind(header) in self.control:
            return self.rt.config.home / "state" / "control" / peer.split("-", 1)[0]
        if header is not None and document_kind(header) == PETITION_TYPE:
            return (self.rt.config.petitions_folder / "inbox"
                    / safe_file_name(self.rt.peer_name(peer)))
        return self.rt.config.inbox / safe_file_name(self.rt.peer_name(peer))

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
        # Kept under the identity that signed it (see ``Offers.offer``).
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
            return refuse(rt, peer, mid, exc.code, str(exc))
        except _CannotPublish as exc:
            return refuse(rt, peer, mid, "storage-unavailable",
                          f"cannot publish the document: {exc.error.strerror}")
        except OSError as exc:
            yield rt.io(stream.close)
            return refuse(rt, peer, mid, "storage-unavailable",
                          f"cannot write the document: {exc.strerror}")
        now = rt.now_text()
        receiving, header, now, meta = self.receipt_inputs(signer, header, final, now)
        try:
            receipt = yield self.publisher.add(Publication(
                signer=signer, header=header, staging=stream.staging,
                resume_record=stream.resume_record, final=final, receiving=receiving,
                meta=meta, now=now, peer=peer, sidecar_group=self.sidecar_group(header)))
        except OSError as exc:
            return refuse(rt, peer, mid, "storage-unavailable",
                          f"cannot publish the document: {exc.strerror}")
        except PeerRevoked as exc:
            yield rt.io(stream.discard)
            return refuse(rt, peer, mid, exc.code, f"not accepted: {exc}")
        # Logged with its batch (``_batch_stored``); most documents need nothing more here.
        if self.applies_on_store(header):
            yield self._apply_stored(signer, header, final)
        failpoint("receiver-after-commit-before-receipt")
        return Receipt(message_id=mid, receipt=receipt)

    def receipt_inputs(self, peer: str, header: EnvelopeHeader, final: Path,
                       now: str) -> tuple[Any, EnvelopeHeader, str, dict[str, Any]]:
        # Signed by the identity the envelope was addressed to (a former one during its grace
        # period), so the receipt verifies for the sender under the key it sealed for.
        receiving = self.rt.receiving_keys(header.recipients) or self.rt.keys
        meta = document_metadata(header, sender_name=self.rt.peer_name(peer), received_at=now,
                                 original_name=header.name)
        meta["stored_as"] = final.name
        return receiving, header, now, meta

    def sidecar_group(self, header: EnvelopeHeader) -> str | None:
        """A petition's sidecars are the petition staff's alone, like the petition."""
        return (self.rt.config.petitions.group if document_kind(header) == PETITION_TYPE
                else None)

    @inlineCallbacks
    def sign_and_commit(self, peer: str, header: EnvelopeHeader, final: Path, now: str):
        """For a document already in the inbox (a recovery): sign, commit, write the sidecars
        (after the commit, as for any document: node/inbox/publication.py)."""
        receiving, header, now, meta = self.receipt_inputs(peer, header, final, now)
        receipt = issue_receipt(receiving.identity, recipient=receiving.node_id, header=header,
                                time=now)
        yield self._commit(peer, header, final, now, receipt)
        yield self.publisher.place_sidecars([(peer, header.message_id, Sidecars(
            final, meta, receipt, self.sidecar_group(header)))], flush_at_once=True)
        return receipt

    @inlineCallbacks
    def _commit(self, peer: str, header: EnvelopeHeader, final: Path, now: str,
                receipt: str):
        failpoint("receiver-after-fsync-before-commit")
        yield record_stored(self.rt, peer, header, final, now, receipt)
        yield self._stored(peer, header, final)

    def _stored(self, peer: str, header: EnvelopeHeader, final: Path) -> Deferred:
        """After the ``stored`` commit of one document (a recovery): log it, and apply it."""
        self._log_stored([(peer, header.name, final)])
        return self._apply_stored(peer, header, final)

    def _batch_stored(self, items: list[Publication]) -> None:
        """``Publisher``'s hook: a publication batch's documents were committed ``stored``."""
        self._log_stored([(item.signer, item.header.name, item.final) for item in items])

    def _log_stored(self, documents: list[tuple[str, str, Path]]) -> None:
        """Stored documents, ``(sender, name, inbox path)``: a lone one's line, or one line per
        sender for several (as the sending node logs a batch's receipts), with the same
        fields for each document. One line per document was 7 % of the reactor in a burst."""
        by_peer: dict[str, list[tuple[str, Path]]] = {}
        for peer, name, final in documents:
            by_peer.setdefault(peer, []).append((name, final))
        for peer, stored in by_peer.items():
            if len(stored) == 1:
                log.info("received {name!r} from {peer} into {path}", name=stored[0][0],
                         peer=self.rt.peer_name(peer), path=str(stored[0][1]))
            else:
                log.info("received {count} documents from {peer}: {documents}",
                         count=len(stored), peer=self.rt.peer_name(peer),
                         documents=", ".join(f"{name!r} into {final}" for name, final in stored))

    def applies_on_store(self, header: EnvelopeHeader) -> bool:
        """Whether a stored document has anything more to it: a petition to register, a
        control document to apply, or edXML copies to write."""
        kind = document_kind(header)
        return (kind == PETITION_TYPE or kind in self.control
                or copies_wanted(self.rt.config, header.meta))

    @inlineCallbacks
    def _apply_stored(self, peer: str, header: EnvelopeHeader, final: Path):
        """After the ``stored`` commit: register a petition, apply a control document, or
        write the edXML copies."""
        rt = self.rt
        if document_kind(header) == PETITION_TYPE:
            yield self._file_petition(peer, header, final)
        handler = self.control.get(document_kind(header))
        if handler is None:
            self.edxml_extras(peer, header.message_id, header.meta, final)
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

    def edxml_extras(self, peer: str, message_id: str, meta: Mapping[str, Any], final: Path,
                     *, recovering: bool = False) -> Deferred:
        """What ``[edxml]`` asks for beside a stored document (its attachments unpacked, or an
        .edxml beside it): copies, made without delaying the receipt. Its ``edxml_copies_due``
        row goes once they are written, or once a failure is logged and audited (``lienthong
        export --edxml`` makes them then); a crash before leaves the row for
        ``Recovery.recover_copies``."""
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
