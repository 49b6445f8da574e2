"""What a link notes about its transfers (``offered``, ``sent``), written in shared units of work.

Why: every document offered and every document whose last byte went out was a unit of work of
its own (one UPDATE of its delivery row and one audit entry), submitted and forgotten; with
small documents that is two units per document, and the database thread's per-unit cost
(savepoint, transaction bookkeeping, a Deferred back on the reactor) outweighed the UPDATE
(docs/benchmarks.md, History 40).

Theory of operation. ``add`` queues a note. If a unit holding notes is submitted and has not
started yet, the note joins it; otherwise a new unit is submitted at once. The unit takes its
notes when the database thread starts it (under a lock, so a note never joins a unit already
running), and writes them together; if one fails (its delivery is gone), each is written
again in a savepoint of its own, so only that note fails, and it is logged. A note is written
no later than any unit submitted after it, so the audit chain still reads ``offered``,
``sent`` before that document's ``receipt-verified``, as when each note was a unit.

Nothing waits for these notes, as before: they count attempts and record progress for the
status pages and the audit. A crash before their commit loses only them (the document is still
``queued`` and is offered again), exactly as when each was a unit of its own.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from lienthong.node.core.background import in_background
from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.core.failpoints import failpoint
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.audit_log import AuditEvent
from lienthong.node.store.database import Store

log = Logger(namespace="lienthong.node.delivery")


@dataclass(frozen=True, slots=True)
class Note:
    """One store write about one transfer, with the audit entry that records it."""

    write: Callable[[Store], object]
    kind: str
    peer: str
    message_id: str
    detail: dict[str, Any]
    time: str
    #: ``offered``: the time recorded as offered; ``sent``: the bytes sent (the value ``write``
    #: records, for ``Store.record_transfers``, which writes a unit's notes together).
    value: Any = None


def write_notes(store: Store, notes: list[Note]) -> list[tuple[str, str]]:
    """Write the notes in one transaction; return the (message ID, error) of each note the
    store refused. All are tried together first; if one fails, each is written again in a
    savepoint of its own, so that only it fails."""
    with store.transaction():
        try:
            with store.savepoint():
                if all(note.kind in ("offered", "sent") for note in notes):
                    # One UPDATE statement per kind for the unit (executemany).
                    store.record_transfers(
                        [(n.message_id, n.peer, n.value) for n in notes if n.kind == "offered"],
                        [(n.message_id, n.peer, n.value) for n in notes if n.kind == "sent"])
                else:
                    for note in notes:
                        note.write(store)
                # The notes' audit entries in their order, in one INSERT.
                store.append_audits([AuditEvent(note.kind, note.time, peer=note.peer,
                                                message_id=note.message_id,
                                                detail=note.detail) for note in notes])
                # Every note of the unit is written, none committed.
                failpoint("sender-before-transfer-notes-committed")
        except Exception:  # noqa: BLE001 - written one by one below, to find which
            pass
        else:
            return []
        refused: list[tuple[str, str]] = []
        for note in notes:
            try:
                with store.savepoint():
                    _write_one(store, note)
            except Exception as exc:  # noqa: BLE001 - this note's own refusal, reported
                refused.append((note.message_id, f"{type(exc).__name__}: {exc}"))
        return refused


def _write_one(store: Store, note: Note) -> None:
    note.write(store)
    store.append_audit(note.kind, note.time, peer=note.peer, message_id=note.message_id,
                       detail=note.detail)


class TransferNotes:
    """The notes of one link waiting for their unit of work."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._rt = runtime
        self._lock = threading.Lock()
        #: The notes of the unit submitted and not started yet (None: no such unit).
        self._open: list[Note] | None = None
        #: Units submitted (for tests and the benchmark's notes).
        self.units = 0

    def offered(self, message_id: str, peer: str, offset: int) -> None:
        """One more attempt to send ``message_id`` to ``peer`` began (at ``offset``)."""
        now = self._rt.now_text()
        self.add(Note(lambda store: store.record_offer(message_id, peer, now), "offered",
                      peer, message_id, {"offset": offset}, rfc3339_ms(self._rt.now()), now))

    def sent(self, message_id: str, peer: str, sent_bytes: int) -> None:
        """Every byte of ``message_id`` went out to ``peer``."""
        self.add(Note(lambda store: store.record_progress(message_id, peer, sent_bytes), "sent",
                      peer, message_id, {"bytes": sent_bytes}, rfc3339_ms(self._rt.now()),
                      sent_bytes))

    def add(self, note: Note) -> None:
        with self._lock:
            if self._open is not None:
                self._open.append(note)
                return
            notes = self._open = [note]
        self.units += 1
        d = self._rt.db(self._write, notes)
        d.addCallback(self._report)
        in_background(d, "record transfers", log)

    def _write(self, notes: list[Note]) -> list[tuple[str, str]]:
        """On the database thread: close the unit to new notes, then write them."""
        with self._lock:
            if self._open is notes:
                self._open = None
        return write_notes(self._rt.store, list(notes))

    @staticmethod
    def _report(refused: list[tuple[str, str]]) -> None:
        for message_id, error in refused:
            log.warn("could not record a transfer of {mid}: {error}", mid=message_id,
                     error=error)
