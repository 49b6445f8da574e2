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

``Offers`` is what the receiving connection and the app use; each of its jobs is a module of
its own, composed here: the offer's checks (node/inbox/offer_checks.py), the staging opens
(node/inbox/staging_opens.py), finishing and publishing (node/inbox/finishing.py) and the
start-up recovery (node/inbox/recovery.py).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.keys.errors import KeysError
from lienthong.node.core.access import access_policy
from lienthong.node.core.background import in_background
from lienthong.node.core.errors import NodeError
from lienthong.node.core.hops import CallBatches
from lienthong.node.core.restricted import restricted_folder
from lienthong.node.documents.petitions import PETITION_TYPE
from lienthong.node.inbox.finishing import ControlHandler, Finishing
from lienthong.node.inbox.folder_names import InboxNames
from lienthong.node.inbox.layout import document_kind
from lienthong.node.inbox.offer_checks import OfferChecks, Refusal, refuse
from lienthong.node.inbox.recovery import Recovery
from lienthong.node.inbox.staging import staging_path, unlink_quietly
from lienthong.node.inbox.staging_opens import StagingOpens
from lienthong.node.inbox.stream import RESUME_SUFFIX, IncomingStream
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.records import ReceivedRow
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Have, Offer, Reject

log = Logger(namespace="lienthong.offers")


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
        self.finishing = Finishing(runtime, self.names, self.control)
        self.recovery = Recovery(runtime, self.names, self.finishing, self.active)
        # Offers come in bursts (a sender offers up to its window at once): their look-ups
        # share a database unit (node/core/hops.py), as their staging opens share a worker hop.
        self._lookups = CallBatches(runtime.db, self._get_received)
        self.opens = StagingOpens(runtime, self.release)
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
        """See ``Recovery.legacy_partials`` (node/inbox/recovery.py)."""
        return self.recovery.legacy_partials()

    def staging_path(self, signer: str, message_id: str) -> Path:
        """See ``staging_path`` (node/inbox/staging.py)."""
        return staging_path(self.rt.config.tmp, signer, message_id)

    def inbox_folder(self, peer: str, header: EnvelopeHeader | None = None) -> Path:
        """See ``Finishing.inbox_folder`` (node/inbox/finishing.py)."""
        return self.finishing.inbox_folder(peer, header)

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
            yield self.rt.io(unlink_quietly, staging.with_name(staging.name + RESUME_SUFFIX))
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

    def release(self, peer: str, message_id: str) -> None:
        self.active.discard((peer, message_id))

    def finish(self, peer: str, header: EnvelopeHeader, stream: IncomingStream,
               last: bytes | memoryview | None = None) -> Deferred:
        """See ``Finishing.finish`` (node/inbox/finishing.py)."""
        return self.finishing.finish(peer, header, stream, last)

    def recover(self) -> Deferred:
        """See ``Recovery.recover`` (node/inbox/recovery.py)."""
        return self.recovery.recover()

    def recover_sidecars(self) -> Deferred:
        """See ``Recovery.recover_sidecars`` (node/inbox/recovery.py)."""
        return self.recovery.recover_sidecars()

    def recover_copies(self) -> Deferred:
        """See ``Recovery.recover_copies`` (node/inbox/recovery.py)."""
        return self.recovery.recover_copies()

    def recover_row(self, row: ReceivedRow) -> Deferred:
        """See ``Recovery.recover_row`` (node/inbox/recovery.py)."""
        return self.recovery.recover_row(row)



def _call(work: Callable[..., Any], *args: Any) -> Any:
    """Worker pool: ``work(*args)`` (a batched call of any blocking step)."""
    return work(*args)
