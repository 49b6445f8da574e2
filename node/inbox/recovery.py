"""The receiver's start-up recovery: what a crash left of received documents, completed or
forgotten, never stored twice (docs/design.md §6).

A publication cut short (a ``publishing`` row) is completed from whichever of its staging or
inbox file exists, or forgotten so the sender sends it again (``recover_row``; also run when a
peer offers such a document again); sidecars and edXML copies due after the ``stored`` commit
are written again from the store; the partials of older versions and staging files nobody
offered again for a week are removed.

Split out of node/inbox/offers.py, which decides about offers and stores what arrives.
"""
from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from lienthong.node.inbox.finishing import Finishing
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.layout import Sidecars, finish_interrupted
from lienthong.node.inbox.staging import (
    STALE_STAGING_SECONDS,
    discard_legacy_partials,
    discard_stale_staging,
    staging_path,
    unlink_quietly,
)
from lienthong.node.inbox.stream import RESUME_SUFFIX
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.records import ReceivedRow
from lienthong.protocol.envelope import EnvelopeHeader, decode_header, open_header

log = Logger(namespace="lienthong.offers")


class Recovery:
    """Completes at start what a crash cut short. ``active``: the (peer, message ID) of the
    documents being received right now (``Offers.active``, the same set)."""

    def __init__(self, runtime: NodeRuntime, names: InboxNames, finishing: Finishing,
                 active: set[tuple[str, str]]) -> None:
        self.rt = runtime
        self.names = names
        self.finishing = finishing
        self.active = active
        #: (sender, message ID) -> the recovery of that interrupted publication under way.
        self.recovering: dict[tuple[str, str], Deferred] = {}

    def legacy_partials(self) -> Path:
        """Where older versions kept ciphertext partials (see ``discard_legacy_partials``)."""
        return self.rt.config.tmp / "receiving"

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
            yield self.finishing.edxml_extras(sender, message_id, row.meta,
                                              rt.config.home / row.stored_path, recovering=True)

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
            _, header, _, meta = self.finishing.receipt_inputs(row.sender_node_id, header,
                                                               final, row.received_at)
            items.append((row.sender_node_id, row.message_id, Sidecars(
                final, meta, row.receipt, self.finishing.sidecar_group(header))))
        yield self.finishing.publisher.place_sidecars(items, flush_at_once=True)

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
        staging = staging_path(rt.config.tmp, row.sender_node_id, row.message_id)
        done = yield rt.io(finish_interrupted, staging, final, row.sha256, self.names.access)
        if done:
            header = self._stored_header(row)
            log.info("completing interrupted reception of {mid}", mid=row.message_id)
            yield self.finishing.sign_and_commit(row.sender_node_id, header, final, rt.now_text())
            yield rt.io(unlink_quietly, staging.with_name(staging.name + RESUME_SUFFIX))
        else:
            log.warn("forgetting interrupted reception of {mid}; the sender will resend",
                     mid=row.message_id)
            yield rt.db(rt.store.abandon_publish, row.sender_node_id, row.message_id,
                        rt.now_text())
            yield rt.io(unlink_quietly, staging)
            yield rt.io(unlink_quietly, staging.with_name(staging.name + RESUME_SUFFIX))

    def _reader_of(self, header: EnvelopeHeader) -> str:
        """Which of our identities (current or former) an envelope was sealed to."""
        receiving = self.rt.receiving_keys(header.recipients)
        if receiving is not None:
            return receiving.node_id
        # A former identity past its grace period: its sealed key opens with our keys still
        # (encryption keys are never dropped).
        return next((r for r in header.recipients if header.key_for(r) is not None
                     and r in self.rt.retired_ids), self.rt.node_id)
