"""Opening the staging file of an accepted offer: the space check, the opening, and the ACCEPT
or the refusal they end in.

The opens of offers that come together share a worker hop (``CallBatches``,
node/core/hops.py). A small v3 document is accepted before its staging file is opened, against
a recent reading of the free space (``FreeSpace``), and opened on a worker behind its ACCEPT.
The blocking parts are node/inbox/staging.py.

Split out of node/inbox/offers.py, which decides about offers and stores what arrives.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure

from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.hops import CallBatches
from lienthong.node.documents.petitions import PETITION_TYPE
from lienthong.node.inbox.layout import document_kind
from lienthong.node.inbox.offer_checks import refuse
from lienthong.node.inbox.staging import (
    SPACE_RESERVE,
    FreeSpace,
    free_or_error,
    open_if_room,
    staging_path,
)
from lienthong.node.inbox.stream import IncomingStream
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Accept, Reject


class StagingOpens:
    """The staging files of accepted offers, opened. ``release(peer, message ID)`` ends the
    hold of a document as being received (``Offers.release``), when it is refused here."""

    def __init__(self, runtime: NodeRuntime, release: Callable[[str, str], None]) -> None:
        self.rt = runtime
        self.release = release
        self._staging_opens = CallBatches(runtime.io, _open_staging)
        # A small document's free space (a recent reading, node/inbox/staging.py) and its
        # staging file opened behind its ACCEPT (``_accept_fresh``).
        self._free_space = FreeSpace(lambda: runtime.io(free_or_error, runtime.config.tmp),
                                     runtime.monotonic)
        self._fresh_opens = CallBatches(runtime.io, _start_fresh)

    def space(self, header: EnvelopeHeader, file_key: bytes | None) -> Deferred | None:
        """The free bytes of ``tmp/`` for a document accepted before its staging file is
        opened, or None for one whose staging file is opened before its ACCEPT.

        A small v3 document never resumes (it keeps no resume record, so every offer of it
        starts at byte 0): it is accepted as soon as the look-up and the free space allow, and
        its staging file is opened behind the ACCEPT (``_accept_fresh``). The free space is a
        recent reading (``FreeSpace``), or is read beside the look-up."""
        fresh = (file_key is not None
                 and header.ciphertext_size <= IncomingStream.RESUMABLE_ABOVE
                 and document_kind(header) != PETITION_TYPE)
        return self._free_space.estimate() if fresh else None

    @inlineCallbacks
    def accept(self, peer: str, header: EnvelopeHeader, node_id: str, file_key: bytes | None,
               space: Deferred | None):
        """The ACCEPT of an offer that passed every check and is held as being received, with
        its staging file opened (or to be opened behind it: ``_accept_fresh``), or the
        refusal (the hold released). ``space``: what ``space`` returned for it."""
        mid = header.message_id
        if space is not None and file_key is not None:
            return (yield self._accept_fresh(peer, header, node_id, file_key, space))
        try:
            stream, free, need = yield self._staging_opens.call(
                staging_path(self.rt.config.tmp, header.sender, mid), self.rt.config.tmp, header,
                node_id,
                # Encryption keys are never dropped (an identity rotation keeps them), so the
                # current keystore opens envelopes addressed to a former identity too.
                self.rt.keys.encryption_private_by_kid(), file_key)
        except OSError as exc:
            self.release(peer, mid)
            return refuse(self.rt, peer, mid, "storage-unavailable",
                          f"cannot open the staging file: {exc.strerror or exc}")
        except ProtocolError as exc:
            self.release(peer, mid)
            return refuse(self.rt, peer, mid, exc.code, str(exc))
        except BaseException:
            self.release(peer, mid)
            raise
        if stream is None:
            return self._no_space(peer, mid, free, need)
        return (Accept(message_id=mid, offset=stream.offset), header, stream, None)

    def _no_space(self, peer: str, mid: str, free: int, need: int) -> Reject:
        """The refusal of a document ``tmp/`` has no room for (retried when space returns)."""
        self.release(peer, mid)
        return refuse(self.rt, peer, mid, "storage-unavailable",
                      f"not enough free disk space ({free} bytes free, {need} "
                      "needed); it will be retried when space returns")

    @inlineCallbacks
    def _accept_fresh(self, peer: str, header: EnvelopeHeader, node_id: str, file_key: bytes,
                      space: Deferred):
        """The ACCEPT (offset 0) of a document that never resumes, once its offer passed every
        check and ``space`` (the free bytes of ``tmp/``) says it fits; its staging file is
        opened on the worker pool behind the ACCEPT (a thread hop less before it: the DATA
        waits for the opening, node/inbox/connection.py). Nothing is written before the ACCEPT
        and nothing durable before END (docs/design.md §6). Returns ``(Accept, header, stream,
        open_staging)``, ``open_staging()`` to be called once the ACCEPT is written (so the
        worker it wakes does not compete with the writing), or the refusal."""
        mid = header.message_id
        free = yield space
        need = header.size + SPACE_RESERVE
        if isinstance(free, OSError):
            self.release(peer, mid)
            return refuse(self.rt, peer, mid, "storage-unavailable",
                          f"cannot open the staging file: {free.strerror or free}")
        if free < need:
            return self._no_space(peer, mid, free, need)
        self._free_space.accepted(header.size)
        try:
            # With the file key the offer's check opened: no I/O, no public-key work here.
            stream = IncomingStream.prepare(staging_path(self.rt.config.tmp, header.sender, mid),
                                            header, node_id=node_id, file_key=file_key,
                                            encryption_keys=self.rt.keys.
                                            encryption_private_by_kid())
        except ProtocolError as exc:
            self.release(peer, mid)
            return refuse(self.rt, peer, mid, exc.code, str(exc))
        except BaseException:
            self.release(peer, mid)
            raise
        return (Accept(message_id=mid, offset=0), header, stream,
                lambda: self._fresh_opens.call(stream))

    def opening_refused(self, peer: str, message_id: str, failure: Failure) -> Reject | None:
        """The refusal (audited) of an accepted document whose staging file could not be
        opened behind its ACCEPT (``_accept_fresh``), as ``offer`` refuses one it cannot open
        before; None for an unexpected error (the caller reports it as internal)."""
        exc = failure.value
        if isinstance(exc, OSError):
            return refuse(self.rt, peer, message_id, "storage-unavailable",
                          f"cannot open the staging file: {exc.strerror or exc}")
        if isinstance(exc, ProtocolError):
            return refuse(self.rt, peer, message_id, exc.code, str(exc))
        return None


def _open_staging(staging: Path, tmp: Path, header: EnvelopeHeader, node_id: str,
                  encryption_keys: Any, file_key: bytes | None,
                  ) -> tuple[IncomingStream | None, int, int]:
    """Worker pool: the staging file of an accepted offer, if there is room (a batch of these
    shares one hop). ``file_key``: the one the offer's check opened (v3), or None."""
    return open_if_room(staging, tmp, header, node_id=node_id, encryption_keys=encryption_keys,
                        file_key=file_key)


def _start_fresh(stream: IncomingStream) -> IncomingStream:
    """Worker pool: open the staging file of a document accepted before it was opened."""
    failpoint("receiver-accepted-before-staging-open")
    stream.start_fresh()
    return stream
