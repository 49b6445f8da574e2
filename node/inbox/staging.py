"""The receiver's staging files (``tmp/staging/``): the space check and opening of one for an
offer, and the start-up clean-up of those nobody will finish.

Split out of node/inbox/offers.py, which decides about offers and ENDs; these are the blocking
file-system parts that node/inbox/staging_opens.py and node/inbox/recovery.py run on the worker
pool, and ``FreeSpace``, the reactor's recent reading of the free space that a small
document's offer is checked against.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.core.background import in_background
from lienthong.node.inbox.stream import RESUME_SUFFIX, IncomingStream
from lienthong.protocol.envelope import EnvelopeHeader

#: Free space kept in reserve beyond what a document needs, so the store and the audit log
#: can still be written when a large document has just filled the disk.
SPACE_RESERVE = 16 * 1024 * 1024


def staging_path(tmp: Path, signer: str, message_id: str) -> Path:
    """Where a document's staging file is: keyed, like the received row, by the identity that
    signed the envelope, so a transfer from a peer's former identity resumes (and a crash
    recovers) under the same name after the peer rotates."""
    return tmp / "staging" / f"{message_id}-{signer.split('-', 1)[0]}"


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def free_or_error(folder: Path) -> int | OSError:
    """Worker pool: the free bytes of ``folder``, or the error that stopped reading them
    (handed back as a value, so a reading nobody waits for never fails unheard)."""
    try:
        return free_bytes(folder)
    except OSError as exc:
        return exc


#: A reading of the free space a small document's offer may be checked against, in seconds.
FREE_SPACE_MAX_AGE = 2.0
#: A reading used when older than this is read again in the background, for the next offer.
FREE_SPACE_REFRESH = 1.0

_log = Logger(namespace="lienthong.staging")


class FreeSpace:
    """The free bytes of ``tmp/`` for the offers of small documents, without a thread hop each.

    An offer is checked against the last reading less the sizes accepted since, while that
    reading is at most ``FREE_SPACE_MAX_AGE`` old; an older one (an idle node) is read again
    and waited for. Using a reading older than ``FREE_SPACE_REFRESH`` starts the next one in
    the background (one at a time). Like the check it replaces, it is a courtesy to refuse
    early: a disk that fills anyway fails the write, and the document is refused then.
    """

    def __init__(self, read: Callable[[], Deferred], monotonic: Callable[[], float]) -> None:
        """``read()``: a Deferred of ``free_or_error`` run on the worker pool."""
        self._read = read
        self._monotonic = monotonic
        self._free: int | None = None
        self._read_at = 0.0
        self._accepted = 0
        self._waiting: list[Deferred] = []
        self._reading = False

    def estimate(self) -> Deferred:
        """The free bytes now (an ``int``), or the ``OSError`` that stopped the reading."""
        age = self._monotonic() - self._read_at
        if self._free is None or age > FREE_SPACE_MAX_AGE:
            return self._next_reading()
        if age > FREE_SPACE_REFRESH and not self._reading:
            in_background(self._next_reading(), "read the free space of tmp/", _log)
        return succeed(self._free - self._accepted)

    def accepted(self, size: int) -> None:
        """``size`` bytes were accepted since the last reading (they will be written)."""
        self._accepted += size

    def _next_reading(self) -> Deferred:
        d: Deferred = Deferred()
        self._waiting.append(d)
        if not self._reading:
            self._reading = True
            self._read().addBoth(self._done)
        return d

    def _done(self, result: int | OSError | Failure) -> None:
        self._reading = False
        if isinstance(result, int):
            self._free, self._read_at, self._accepted = result, self._monotonic(), 0
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)


def _staged_and_space(staging: Path, tmp: Path) -> tuple[int, int]:
    """Plaintext bytes already staged for a transfer (what a resume may keep; at most what
    ``IncomingStream.open`` keeps) and the free space of ``tmp/``, in one worker hop (one
    thread wake-up less per offer; a burst of small documents pays one per document)."""
    try:
        staged = staging.stat().st_size
    except FileNotFoundError:
        staged = 0
    return staged, free_bytes(tmp)


def open_if_room(staging: Path, tmp: Path, header: EnvelopeHeader,
                 **open_args: Any) -> tuple[IncomingStream | None, int, int]:
    """The space check and the opening of the staging file in one worker hop (they were two
    with a thread wake-up each per offer): ``(stream, free, need)``, with no stream when
    ``tmp/`` lacks the room. Only the decrypted copy is written (node/inbox/stream.py), less what a
    resume keeps."""
    staged, free = _staged_and_space(staging, tmp)
    need = header.size - min(staged, header.size) + SPACE_RESERVE
    if free < need:
        return None, free, need
    return IncomingStream.open(staging, header, **open_args), free, need


def discard_legacy_partials(folder: Path) -> int:
    """Remove the ciphertext partials (``tmp/receiving/<peer>/*.part``) that versions before
    the single-stream reception kept for resuming; their transfers start again at byte 0.
    Returns how many were removed."""
    removed = 0
    for partial in folder.glob("*/*.part"):
        partial.unlink(missing_ok=True)
        removed += 1
    return removed


#: A partly received document nobody offered again for this long is removed at start-up: its
#: staging file holds decrypted plaintext, which should not outlive its purpose. A sender that
#: offers it later still gets it delivered, from byte 0.
STALE_STAGING_SECONDS = 7 * 86400


def discard_stale_staging(folder: Path, now: float, busy: frozenset[str] = frozenset()) -> int:
    """Remove staging files (and their resume records) untouched for ``STALE_STAGING_SECONDS``,
    except those of message IDs in ``busy`` (being received again right now). Called at
    start-up, after interrupted publications are recovered. Returns how many documents' files
    were removed. (Should an offer open one in the instant it is removed, the publication
    fails, is refused as storage-unavailable and the sender sends it again: nothing is lost.)"""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        path = Path(entry.path)
        base = path.with_name(path.name.removesuffix(RESUME_SUFFIX))
        try:
            stale = (entry.is_file(follow_symlinks=False)
                     and now - entry.stat(follow_symlinks=False).st_mtime > STALE_STAGING_SECONDS)
        except FileNotFoundError:
            continue
        if stale and path.name.split("-", 1)[0] not in busy:
            path.unlink(missing_ok=True)
            removed += path.name == base.name
    return removed


def unlink_quietly(path: Path) -> None:
    """A staging file or its resume record removed, if there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
