"""SenderProtocol and ReceiverProtocol back to back (tests/node/delivery/pairhelp.py): the
small document's short path -- DATA written with its END, frames waiting for a worker, the
kept file key, an offer while its dispatch commits, the staging file opened behind its ACCEPT.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from lienthong.node.delivery.links import LinkState, PeerLink
from lienthong.node.inbox.connection import QUEUE_LIMIT
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.spool import sealing as sealing_module
from lienthong.node.store.records import NewDispatch, QueuedDelivery
from lienthong.protocol.envelope import decode_header
from tests.node.delivery.pairhelp import Net, Wire, dispatch_v3, kinds, leftovers
from tests.node.runtimehelp import (
    NOW,
    InlineWorkers,
)


def test_a_small_documents_data_with_its_end_is_written_in_the_finishs_hop(net: Net) -> None:
    """A small document's whole ciphertext is one DATA frame with its END right behind it, in
    the same read: the frame is written in the END's worker hop (``Offers.finish`` with
    ``last``), not in a hop of its own; a large document's frames keep a hop each, so large
    transfers still decrypt in parallel. Both arrive whole and receipted."""
    small = b"To trinh 3\n" * 900                      # about 10 KiB: one small frame
    large = "Báo cáo quý\n".encode() * 60_000          # frames above SMALL_FRAME
    first = net.dispatch("to-trinh.txt", small)
    second = net.dispatch("bao-cao.txt", large)
    net.connect()
    assert sorted(net.delivered) == sorted([first, second])
    offers = net.receiver_factory.offers
    # The inline worker pool runs each hop at once: the small frame took no hop of its own;
    # the large document's last frame (small, with its END) went with its finish too.
    assert offers.small_writes.hops_run == 0
    assert (net.inbox() / "to-trinh.txt").read_bytes() == small
    assert (net.inbox() / "bao-cao.txt").read_bytes() == large


def test_a_small_data_frame_read_without_its_end_is_written_at_once(net: Net) -> None:
    """Read a byte at a time, each frame completes in a read of its own: the small DATA frame
    is written through the shared small-frame hop at the end of its read (never held beyond
    it), and the END then finishes what is already staged."""
    small = b"To trinh 4\n" * 900
    mid = net.dispatch("to-trinh.txt", small)
    net.connect(piece=1)
    assert net.delivered == [mid]
    assert net.receiver_factory.offers.small_writes.hops_run == 1
    assert (net.inbox() / "to-trinh.txt").read_bytes() == small


def test_a_small_documents_damaged_data_written_with_its_end_is_refused_and_discarded(
        net: Net) -> None:
    """A ciphertext byte flipped on the wire in a small document's one DATA frame (read with
    its END, so written in the finish's hop): the chunk fails to authenticate there, the
    document is refused with the chunk's own code and audited, nothing is published and no
    staging file is left; the sender keeps it queued for its retry."""
    mid = net.dispatch("giay-moi.txt", b"Giay moi hop\n" * 800)
    flipped: list[int] = []

    def flip(data: bytes) -> bytes:
        if len(data) < 8000 or flipped:   # the read with the DATA frame (and its END)
            return data
        flipped.append(len(data))
        changed = bytearray(data)
        changed[len(data) // 2] ^= 0x01
        return bytes(changed)
    net.connect(alter=flip)
    assert flipped, "the DATA frame was never on the wire"
    assert net.receiver_factory.offers.small_writes.hops_run == 0
    (delivery,) = net.alpha.store.get_dispatch(mid).deliveries
    assert delivery.state == "queued" and delivery.receipt is None and net.delivered == []
    assert not net.inbox().exists() or list(net.inbox().iterdir()) == []
    assert net.beta.store.get_received(net.alpha.node_id, mid) is None
    assert leftovers(net.beta) == []
    assert [e.detail["code"] for e in net.beta.store.audit_entries(
        kind="rejected", message_id=mid)] == ["decrypt-failed"]


class HeldWorkers:
    """beta's worker pool, inline except for the hops ``holds(fn, args)`` picks, which wait
    until ``release``."""

    def __init__(self, holds: Callable[[Any, tuple[Any, ...]], bool]) -> None:
        self.inline = InlineWorkers()
        self.holds = holds
        self.held: list[tuple[Any, Any, tuple[Any, ...]]] = []

    def callInThreadWithCallback(self, on_result: Any, fn: Any, *args: Any) -> None:  # noqa: N802
        if self.holds(fn, args):
            self.held.append((on_result, fn, args))
        else:
            self.inline.callInThreadWithCallback(on_result, fn, *args)

    def release(self) -> None:
        held, self.held = self.held, []
        for on_result, fn, args in held:
            self.inline.callInThreadWithCallback(on_result, fn, *args)


def held_batches() -> HeldWorkers:
    """The large frames' batch hops held: the frames that arrive meanwhile must join the
    waiting batch."""
    return HeldWorkers(lambda fn, args: getattr(fn, "__name__", "") == "_write_batch")


def held_openings() -> HeldWorkers:
    """The hops that open a staging file behind its ACCEPT (``StagingOpens._accept_fresh``) held."""
    return HeldWorkers(lambda fn, args: any(getattr(arg, "__name__", "") == "_start_fresh"
                                            for arg in args))


def test_large_frames_waiting_for_the_worker_are_written_in_one_hop(net: Net) -> None:
    """Two frames more than QUEUE_LIMIT holds (1 MiB each) arrive while the worker is busy:
    one hop writes them all, reading stops above QUEUE_LIMIT and resumes once they are
    written, and the document arrives whole and receipted."""
    data = random.Random(14).randbytes(QUEUE_LIMIT + 2 * 1024 * 1024 + 1000)
    mid = net.dispatch("ban-do.bin", data)
    workers = held_batches()
    net.beta.runtime.workers = workers  # type: ignore[assignment]
    wire = net.connect()
    assert len(workers.held) == 1                       # one hop for every large frame
    assert wire.receiver_side.producerState == "paused"  # more waiting than QUEUE_LIMIT
    assert net.delivered == []
    workers.release()
    assert wire.receiver_side.producerState == "producing"
    wire.pump()
    assert net.delivered == [mid]
    assert (net.inbox() / "ban-do.bin").read_bytes() == data


@pytest.mark.parametrize("version", [2, 3])
def test_a_document_this_process_sealed_is_offered_with_its_kept_key(
        net: Net, monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """The outbox keeps the file key from sealing to offer (node/spool/kept_keys.py): the
    link opens no key from the header token, the receiver still verifies and files the
    document, and the key is dropped when the document is filed into sent/."""
    rt = net.alpha.runtime
    if version == 3:
        rt.peer_protocols.note(net.beta.node_id, 2)
    outbox = Outbox(rt, on_dispatch=lambda row: None)
    net.link = PeerLink(rt, net.beta.node_id, tls=None,
                        on_all_delivered=lambda mid, row: net.delivered.append(mid),
                        on_delivery_failed=lambda mid, why: net.failed.append((mid, why)),
                        rng=lambda: 1.0, kept_keys=outbox.kept_keys)
    folder = rt.config.outbox / "beta"
    folder.mkdir()
    data = "Giấy mời họp.\n".encode() * 2000
    (folder / "giay-moi.txt").write_bytes(data)
    outbox.file_ready(folder / "giay-moi.txt", "beta")
    (row,) = net.alpha.store.recent_dispatches(5)
    assert decode_header(row.header_token).version == version
    assert outbox.kept_keys.get(row.message_id, row.header_token) is not None

    def from_token(*args: Any) -> Any:
        raise AssertionError("the file key was opened from the header token")

    monkeypatch.setattr(sealing_module, "_open_own_key", from_token)
    net.connect()
    assert (net.inbox() / "giay-moi.txt").read_bytes() == data
    assert net.delivered == [row.message_id] and net.failed == []
    outbox.finish(row.message_id)
    net.reactor.advance(0)
    assert len(outbox.kept_keys) == 0
    assert net.alpha.store.get_dispatch(row.message_id).state == "sent"


class HeldCommits:
    """An outbox wired to the link as the node wires it (``on_sealed``, ``on_dispatch``), whose
    dispatch units are held until the test lets them commit."""

    def __init__(self, net: Net) -> None:
        rt = net.alpha.runtime
        beta = net.beta.node_id
        self.net = net
        self.outbox = Outbox(
            rt, on_dispatch=lambda row: net.link.kick(QueuedDelivery.recorded(row, beta)),
            on_sealed=lambda dispatch, recorded: net.link.offer_sealed(
                QueuedDelivery.sealed(dispatch, beta, NOW), recorded))
        net.link = PeerLink(rt, beta, tls=None,
                            on_all_delivered=lambda mid, row: net.delivered.append(mid),
                            on_delivery_failed=lambda mid, why: net.failed.append((mid, why)),
                            rng=lambda: 1.0, kept_keys=self.outbox.kept_keys)
        self.held: list[tuple[Callable[[], Deferred], Deferred]] = []
        batch = self.outbox._dispatches
        real = batch.add

        def add(dispatch: NewDispatch, events: Any) -> Deferred:
            d: Deferred = Deferred()
            self.held.append((lambda: real(dispatch, events), d))
            return d

        batch.add = add  # type: ignore[method-assign]

    def drop(self, name: str, data: bytes) -> None:
        folder = self.net.alpha.runtime.config.outbox / "beta"
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
        self.outbox.file_ready(folder / name, "beta")

    def connected(self) -> Wire:
        """A connection left idle by a first document, delivered the usual way (an idle link
        offers nothing before its commit: it dials once the dispatch is recorded)."""
        self.drop("dau-tien.txt", b"Van ban dau tien\n" * 50)
        assert self.net.link.offered == {}
        self.commit()
        wire = self.net.connect()
        assert len(self.net.delivered) == 1 and self.net.link.state is LinkState.CONNECTED
        self.net.delivered.clear()
        return wire

    def commit(self) -> None:
        for record, d in self.held:
            record().chainDeferred(d)
        self.held.clear()

    def refuse(self, error: Exception) -> None:
        for _, d in self.held:
            d.errback(error)
        self.held.clear()


def test_a_small_document_is_offered_while_its_dispatch_commits_and_sent_only_after(
        net: Net) -> None:
    """On an idle connection a small document is offered as soon as its dispatch unit is
    submitted; the receiver's ACCEPT comes back before the commit, and no DATA leaves until
    the commit is done (node/delivery/unrecorded.py). Then it arrives once, receipted, and
    the audit still reads sealed, offered, sent."""
    commits = HeldCommits(net)
    wire = commits.connected()
    data = b"Cong van 9\n" * 800
    commits.drop("cong-van-9.txt", data)
    assert len(commits.held) == 1
    (mid,) = net.link.offered
    wire.pump()
    assert net.link._unrecorded._waiting[mid] != []    # ACCEPT back, its transfer waiting
    assert net.alpha.store.get_dispatch(mid) is None   # nothing recorded at the sender...
    assert net.beta.store.get_received(net.alpha.node_id, mid) is None  # ...nor received
    assert not (net.inbox() / "cong-van-9.txt").exists()
    commits.commit()
    wire.pump()
    assert net.delivered == [mid] and net.failed == []
    assert (net.inbox() / "cong-van-9.txt").read_bytes() == data
    assert kinds(net.alpha, mid)[-4:] == ["sealed", "offered", "sent", "receipt-verified"]
    assert kinds(net.beta, mid) == ["received", "receipt-issued"]
    assert len(net.link._unrecorded) == 0


def test_a_document_offered_before_a_dispatch_that_fails_to_commit_is_never_sent(
        net: Net) -> None:
    """The dispatch unit of a document already offered fails: the connection is closed with
    no DATA sent, the receiver keeps nothing, and the document stays in the spool."""
    commits = HeldCommits(net)
    wire = commits.connected()
    commits.drop("to-trinh-3.txt", b"To trinh 3\n" * 700)
    (mid,) = net.link.offered
    wire.pump()
    commits.refuse(OSError("disk I/O error"))
    wire.pump()
    assert wire.lost and net.link.state is LinkState.WAITING
    assert net.beta.store.get_received(net.alpha.node_id, mid) is None
    assert not (net.inbox() / "to-trinh-3.txt").exists()
    assert (net.alpha.runtime.config.spool / mid / "payload").exists()
    assert net.delivered == [] and len(net.link._unrecorded) == 0


def _staged(net: Net) -> list[Path]:
    folder = net.beta.runtime.config.tmp / "staging"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_small_v3_document_is_accepted_before_its_staging_file_is_opened(net: Net) -> None:
    """The ACCEPT of a small v3 document goes out once the offer's checks and look-up pass,
    without waiting for its staging file (one thread hop less before it); its DATA and END
    wait behind the opening, and the document then arrives whole and receipted."""
    data = b"To trinh 5\n" * 900
    mid = dispatch_v3(net, "to-trinh.txt", data)
    workers = held_openings()
    net.beta.runtime.workers = workers  # type: ignore[assignment]
    wire = net.connect()
    assert len(workers.held) == 1
    assert "offered" in kinds(net.alpha, mid)          # alpha had its ACCEPT...
    assert _staged(net) == [] and net.delivered == []   # ...before beta opened anything
    workers.release()
    wire.pump()
    assert net.delivered == [mid]
    assert (net.inbox() / "to-trinh.txt").read_bytes() == data
    assert leftovers(net.beta) == []


def test_a_staging_file_that_cannot_be_opened_behind_its_accept_refuses_the_document(
        net: Net) -> None:
    """The opening behind the ACCEPT fails (``tmp/staging`` is a file): the document is
    refused as storage-unavailable and audited, its queued DATA and END are dropped, nothing
    is left and it is no longer held as being received; the sender keeps it for its retry."""
    mid = dispatch_v3(net, "giay-moi.txt", b"Giay moi hop\n" * 800)
    workers = held_openings()
    net.beta.runtime.workers = workers  # type: ignore[assignment]
    wire = net.connect()
    assert len(workers.held) == 1
    staging = net.beta.runtime.config.tmp / "staging"
    if staging.is_dir():
        staging.rmdir()
    staging.write_bytes(b"")
    workers.release()
    wire.pump()
    (delivery,) = net.alpha.store.get_dispatch(mid).deliveries
    assert delivery.state == "queued" and delivery.receipt is None and net.delivered == []
    assert net.beta.store.get_received(net.alpha.node_id, mid) is None
    assert not net.inbox().exists() or list(net.inbox().iterdir()) == []
    (refused,) = net.beta.store.audit_entries(kind="rejected", message_id=mid)
    assert refused.detail["code"] == "storage-unavailable"
    assert "staging" in refused.detail["reason"]
    assert "rejected-by-peer" in kinds(net.alpha, mid)
    assert net.receiver_factory.offers.active == set()
    staging.unlink()
    assert leftovers(net.beta) == []


def test_a_small_v3_offer_refused_for_space_writes_nothing(net: Net, monkeypatch: Any) -> None:
    """The free space is checked before the ACCEPT, beside the offer's look-up: too little and
    the offer is refused with nothing opened or written."""
    import lienthong.node.inbox.staging as staging_module
    monkeypatch.setattr(staging_module, "free_bytes", lambda folder: 1000)
    mid = dispatch_v3(net, "giay-moi.txt", b"Giay moi hop\n" * 800)
    net.connect()
    assert net.delivered == [] and _staged(net) == []
    (refused,) = net.beta.store.audit_entries(kind="rejected", message_id=mid)
    assert refused.detail["code"] == "storage-unavailable"
    assert "1000 bytes free" in refused.detail["reason"]
    assert "offered" not in kinds(net.alpha, mid)
