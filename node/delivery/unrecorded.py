"""Documents offered before their dispatch is committed: their DATA waits for the commit.

Why: a lone small document's OFFER waited for its dispatch commit (the SQL and a WAL fsync, a
hop to the database thread and back), and the receiver's checks of the OFFER (TLS, the
header's signature, the opening of its sealed contents, its own look-up) then waited for the
OFFER. Both are on the path from drop to receipt (docs/benchmarks.md, History 62). A link with
an idle connection now OFFERs a small document as soon as its dispatch unit is submitted
(node/outbox/pipeline.py ``on_sealed``), and the two run side by side.

What makes it safe (docs/design.md §6, ``sender-accepted-before-dispatch-committed``): no
DATA of such a document leaves before its dispatch is committed. ``after_commit`` holds the
transfer an ACCEPT would start until then. A receiver writes nothing durable about a document
before its END (no row, no resume record without DATA), so a crash of the sender before the
commit leaves the receiver at most an ACCEPT in memory and an empty staging file; the restart
seals the document again under a new header with the same message ID (``Outbox.recover``), and
that offer finds no row under the ID and starts at byte 0, as any first offer does. A commit
that fails (or records no delivery to this peer) closes the connection: the receiver forgets
the offer, and the document stays in the spool for the next start, as after any failed
dispatch.
"""
from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from lienthong.node.core.failpoints import failpoint
from lienthong.node.store.records import DispatchRow, StoreError

_Waiting = list[tuple[Callable[[], None], Callable[[], None]]]


class NotRecordedForPeer(StoreError):
    """The dispatch was committed without a delivery to the peer it was offered to (the peer's
    identity moved on meanwhile)."""

    code = "not-recorded-for-peer"


class UnrecordedOffers:
    """The documents a link offered before their dispatch was committed, each with the
    transfers waiting for that commit."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def hold(self, message_id: str, recorded: Deferred, peer_node_id: str,
             on_refused: Callable[[str, Failure], None]) -> None:
        """``message_id`` was offered; ``recorded`` fires with its dispatch row once committed
        (or fails). ``on_refused(message_id, failure)``: the commit failed, or recorded no
        delivery to ``peer_node_id``."""
        self._waiting[message_id] = []
        recorded.addCallbacks(self._recorded, self._refused,
                              callbackArgs=(message_id, peer_node_id, on_refused),
                              errbackArgs=(message_id, on_refused))

    def after_commit(self, message_id: str, start: Callable[[], None],
                     give_up: Callable[[], None]) -> bool:
        """Call ``start`` once ``message_id``'s dispatch is committed, ``give_up`` if it is
        refused; False if it is not held here (start at once)."""
        waiting = self._waiting.get(message_id)
        if waiting is None:
            return False
        # The ACCEPT came and the transfer is ready; no DATA has left; nothing is committed.
        failpoint("sender-accepted-before-dispatch-committed")
        waiting.append((start, give_up))
        return True

    def _recorded(self, row: DispatchRow, message_id: str, peer_node_id: str,
                  on_refused: Callable[[str, Failure], None]) -> None:
        if not any(delivery.peer_node_id == peer_node_id for delivery in row.deliveries):
            self._refused(Failure(NotRecordedForPeer(
                f"{message_id} was recorded without a delivery to {peer_node_id}")),
                message_id, on_refused)
            return
        for start, _ in self._waiting.pop(message_id, []):
            start()

    def _refused(self, failure: Failure, message_id: str,
                 on_refused: Callable[[str, Failure], None]) -> None:
        waiting = self._waiting.pop(message_id, [])
        try:
            on_refused(message_id, failure)
        finally:
            for _, give_up in waiting:
                give_up()
