"""Envelopes of documents accepted together are opened in ONE worker hop.

Why: every ACCEPT opens its document's envelope on the worker pool (it reads the spool and
opens the sealed file key, so the reactor never waits on the disk). With many small documents
in flight the receiver answers offers in bursts, and each ACCEPT was a hop of its own: a
thread woken, the GIL handed over and back, a result called back on the reactor; opening
envelopes was a fifth of the worker threads' Python time in a burst of 2,000
(docs/benchmarks.md, History 40).

Theory of operation (the group commit of ``lienthong.node.store.commits`` applied to a hop):
``open`` queues one opening and returns a Deferred for its own source. At most ``hops``
batches run at once; whenever one is free, every opening waiting (up to ``max_batch``) goes
to the worker in one call, most urgent first (lower priority value; FIFO among equals). Under
no load a batch is the one ACCEPT that just came, so a lone document waits for nothing. Each
Deferred fires with its own source or fails with its own error: one unreadable envelope never
fails the others. A resume (an offset other than 0: the ciphertext is re-created up to it,
about a second per GiB) or a large document is opened alone, at once, in a hop of its own, so
small urgent documents never wait behind it.

**Opened at the OFFER** (``open_early``): a small document's envelope is opened while the
receiver checks its offer, not after its ACCEPT, so the ACCEPT finds its source ready and the
DATA leaves in the same reactor turn. On an idle pair that took the worker hop (a thread woken,
the spool read, the GIL handed over and back) off the path between ACCEPT and DATA
(docs/benchmarks.md, History 43). ``take_early`` hands the ACCEPT the opening begun at the
OFFER (offset 0; a resume opens afresh); an early opening nobody takes (HAVE, REJECT, the
connection lost) is closed when it finishes (``forget``). It is the same opening as at ACCEPT,
begun a few milliseconds sooner, so it reads nothing the ACCEPT would not have read.

Nothing here is durable: a crash loses only openings in memory, and the documents are offered
again after the restart, exactly as before batching.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nacl.signing
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from lienthong.keys.identity import NodeKeys
from lienthong.node.core.hops import CallBatches
from lienthong.node.delivery.readahead import CiphertextSource
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.spool.sealing import open_envelope
from lienthong.protocol.envelope import EnvelopeHeader

#: Most envelopes opened in one hop: bounds how long the first waits for the last.
MAX_BATCH = 32
#: Batches at once: one fills while the other runs.
HOPS = 2
#: Envelopes larger than this are opened alone (their source reads ahead on its own).
ALONE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Opening:
    """What opening one document's envelope needs (on the worker pool)."""

    spool_dir: str
    header_token: str
    offset: int
    signers: dict[str, nacl.signing.SigningKey]
    on_trailer: Callable[[int, str], object]
    #: The opened header, file key and stream ends kept from the sealing, if this process sealed it
    #: (node/spool/kept_keys.py); None: opened from the header token.
    kept: tuple[EnvelopeHeader, bytes, bytes] | None = field(default=None, repr=False)


def envelope_at(opening: Opening, node_keys: NodeKeys) -> CiphertextSource:
    """The document's ciphertext source positioned at its offset (on the worker pool)."""
    source = open_envelope(opening.spool_dir, opening.header_token, node_keys,
                           signers=opening.signers, on_trailer=opening.on_trailer,
                           kept=opening.kept)
    if not opening.offset:
        return source
    try:
        source.seek(opening.offset)
    except BaseException:
        source.close()
        raise
    return source


class EnvelopeOpenings:
    """Openings waiting for the worker pool, served in batches (``CallBatches``)."""

    def __init__(self, runtime: NodeRuntime, *, max_batch: int = MAX_BATCH,
                 hops: int = HOPS) -> None:
        self._rt = runtime
        self._batches = CallBatches(runtime.io, envelope_at, max_batch=max_batch, hops=hops)
        self._alone = 0
        #: Openings begun at the OFFER and not yet taken by an ACCEPT, by message ID.
        self._early: dict[str, Deferred[Any]] = {}

    @property
    def hops_run(self) -> int:
        """Hops run (for tests and the benchmark's notes)."""
        return self._batches.hops_run + self._alone

    def open(self, opening: Opening, *, priority: int, size: int) -> Deferred[CiphertextSource]:
        """Open the envelope in the next batch (a resume or ``size`` over ``ALONE_BYTES``:
        alone, at once); fires with its ciphertext source."""
        if opening.offset or size > ALONE_BYTES:
            self._alone += 1
            return self._rt.io(envelope_at, opening, self._rt.keys)
        return self._batches.call(opening, self._rt.keys, priority=priority)

    def open_early(self, message_id: str, opening: Opening, *, priority: int, size: int) -> None:
        """Begin opening a small document's envelope as it is offered (module docstring); a
        large one, or one already begun, is left to its ACCEPT."""
        if opening.offset or size > ALONE_BYTES or message_id in self._early:
            return
        d = self._batches.call(opening, self._rt.keys, priority=priority)
        # Kept as a value until an ACCEPT takes it: one nobody takes is no unhandled error.
        self._early[message_id] = d.addErrback(_Unopened)

    def take_early(self, message_id: str, offset: int) -> Deferred[CiphertextSource] | None:
        """The opening begun at the OFFER of ``message_id``, if any and ``offset`` is 0 (a
        resume needs a source positioned elsewhere: the early one is closed)."""
        d = self._early.pop(message_id, None)
        if d is None:
            return None
        if offset:
            _close_when_open(d)
            return None
        return d.addCallback(_Unopened.raise_again)

    def forget(self, message_id: str) -> None:
        """No ACCEPT will take ``message_id``'s early opening: close its source."""
        d = self._early.pop(message_id, None)
        if d is not None:
            _close_when_open(d)

    def forget_all(self) -> None:
        """The connection is gone: close every early opening's source."""
        early, self._early = self._early, {}
        for d in early.values():
            _close_when_open(d)

    @property
    def early(self) -> int:
        """Early openings not yet taken or forgotten (for tests)."""
        return len(self._early)


class _Unopened:
    """An early opening that failed, held as a value until its ACCEPT takes it."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure

    @staticmethod
    def raise_again(value: CiphertextSource | _Unopened) -> CiphertextSource:
        if isinstance(value, _Unopened):
            value.failure.raiseException()
        return value


def _close_when_open(d: Deferred[Any]) -> None:
    # An unreadable envelope is reported by the ACCEPT that opens it again, if one comes.
    d.addCallback(lambda value: None if isinstance(value, _Unopened) else value.close())
