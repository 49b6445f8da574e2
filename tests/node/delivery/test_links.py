"""PeerLink's retry schedule, on a Clock with a real store: it grows, persists, survives time
steps."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from lienthong.node.delivery.links import LinkState, PeerLink
from tests.node.runtimehelp import EPOCH, FakeReactor, Office, enrol, make_office
from tests.node.storehelp import T0, make_dispatch

RETRY_INITIAL = 1.0
RETRY_MAX = 8.0
DAY = 86400.0


@pytest.fixture
def offices(tmp_path: Path) -> tuple[Office, Office]:
    """alpha (with a short retry schedule) trusts beta and has one document queued for it."""
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    rt = alpha.runtime
    rt.config = dataclasses.replace(rt.config, delivery=dataclasses.replace(
        rt.config.delivery, retry_initial=RETRY_INITIAL, retry_max=RETRY_MAX))
    enrol(alpha, beta)
    alpha.store.add_dispatch(make_dispatch(1, (beta.node_id,)), T0)
    return alpha, beta


def new_link(alpha: Office, beta: Office, rng: float = 1.0) -> PeerLink:
    return PeerLink(alpha.runtime, beta.node_id, tls="tls-context",
                    on_all_delivered=lambda mid, row: None,
                    on_delivery_failed=lambda mid, why: None,
                    rng=lambda: rng)


def refuse(reactor: FakeReactor) -> None:
    """The last dial fails as a refused TCP connection does."""
    reactor.dials[-1].factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))


def stop(link: PeerLink, reactor: FakeReactor) -> None:
    link.stop()
    assert reactor.getDelayedCalls() == []


def test_first_kick_dials_the_peer_address_at_once(offices: tuple[Office, Office]) -> None:
    """With work queued and no failures on record, kick dials the peer's advertised address."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    assert link.state is LinkState.CONNECTING
    (dial,) = reactor.dials
    assert (dial.host, dial.port, dial.context_factory) == ("127.0.0.1", 7444, "tls-context")
    assert dial.timeout == alpha.runtime.config.delivery.connect_timeout
    stop(link, reactor)


def test_nothing_queued_means_no_dial(offices: tuple[Office, Office], tmp_path: Path) -> None:
    """A kick with an empty queue for the peer stays idle and dials nobody."""
    alpha, beta = offices
    gamma = make_office(tmp_path, "gamma", FakeReactor(), port=7445)
    enrol(alpha, gamma)
    link = PeerLink(alpha.runtime, gamma.node_id, tls=None, on_all_delivered=lambda m, row: None,
                    on_delivery_failed=lambda m, w: None)
    link.kick()
    assert link.state is LinkState.IDLE
    assert alpha.runtime.reactor.dials == []


def test_failures_grow_the_delay_up_to_the_maximum(offices: tuple[Office, Office]) -> None:
    """Each failed dial doubles the wait (jitter fixed at 1.0) until retry_max, then stays there."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    delays = []
    for failures in range(1, 7):
        refuse(reactor)
        assert link.state is LinkState.WAITING
        schedule = alpha.store.schedule_for(beta.node_id)
        assert schedule.failures == failures
        assert "refused" in (schedule.last_error or "").lower()
        delay = schedule.next_attempt_at - reactor.seconds()
        delays.append(delay)
        reactor.advance(delay - 0.01)
        assert len(reactor.dials) == failures, "redialled before the back-off delay"
        reactor.advance(0.01)
        assert len(reactor.dials) == failures + 1, "did not redial when the delay was over"
        assert link.state is LinkState.CONNECTING
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0, 8.0])
    stop(link, reactor)


def test_jitter_shortens_the_delay_to_no_less_than_half(offices: tuple[Office, Office]) -> None:
    """With the random draw at 0.0 the delay is half the nominal one (a herd spreads out)."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta, rng=0.0)
    link.kick()
    refuse(reactor)
    refuse_time = reactor.seconds()
    reactor.advance(RETRY_INITIAL / 2)
    assert len(reactor.dials) == 2
    refuse(reactor)
    assert alpha.store.schedule_for(beta.node_id).next_attempt_at == pytest.approx(
        refuse_time + RETRY_INITIAL / 2 + RETRY_INITIAL)
    stop(link, reactor)


def test_schedule_persists_for_a_new_link(offices: tuple[Office, Office]) -> None:
    """A new PeerLink (a restarted node) waits out the stored delay and keeps counting failures."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    first = new_link(alpha, beta)
    first.kick()
    for _ in range(3):
        refuse(reactor)
        reactor.advance(alpha.store.schedule_for(beta.node_id).next_attempt_at - reactor.seconds())
    refuse(reactor)  # the fourth failure: the next attempt is due in 8 s
    stop(first, reactor)
    due = alpha.store.schedule_for(beta.node_id).next_attempt_at
    dials = len(reactor.dials)

    reactor.advance(3.0)
    second = new_link(alpha, beta)
    second.kick()
    assert second.state is LinkState.WAITING
    assert len(reactor.dials) == dials, "the new link ignored the stored schedule"
    reactor.advance(due - reactor.seconds())
    assert len(reactor.dials) == dials + 1
    refuse(reactor)
    schedule = alpha.store.schedule_for(beta.node_id)
    assert schedule.failures == 5
    assert schedule.next_attempt_at - reactor.seconds() == pytest.approx(RETRY_MAX)
    stop(second, reactor)


def test_clock_stepped_back_does_not_hold_delivery_longer_than_retry_max(
        offices: tuple[Office, Office]) -> None:
    """After the clock jumps back a day, a stored due time is clamped to now + retry_max."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    refuse(reactor)
    stop(link, reactor)
    stored_due = alpha.store.schedule_for(beta.node_id).next_attempt_at

    earlier = FakeReactor(start=reactor.seconds() - DAY)
    alpha.runtime = dataclasses.replace(alpha.runtime, reactor=earlier)
    after_step = new_link(alpha, beta)
    after_step.kick()
    assert after_step.state is LinkState.WAITING
    assert stored_due - earlier.seconds() > DAY - 1  # unclamped, it would wait a day
    earlier.advance(RETRY_MAX - 0.01)
    assert earlier.dials == []
    earlier.advance(0.01)
    assert len(earlier.dials) == 1
    stop(after_step, earlier)


def test_retry_schedule_is_stored_in_wall_time_and_timed_on_the_timer_clock(
        offices: tuple[Office, Office]) -> None:
    """Two clocks, as in the daemon: the pending retry fires after its delay on the timer
    clock although the wall clock steps back a day meanwhile, and what is stored is wall time
    (a restarted link compares it with the wall clock, never with the timer clock)."""
    alpha, beta = offices
    rt = alpha.runtime
    timers = FakeReactor(start=500.0)  # a monotonic clock: seconds since boot
    wall = Clock()
    wall.advance(EPOCH)
    rt.reactor, rt.wall_clock = timers, wall.seconds
    link = new_link(alpha, beta)
    link.kick()
    refuse(timers)
    assert alpha.store.schedule_for(beta.node_id).next_attempt_at == EPOCH + RETRY_INITIAL

    wall.advance(-DAY)  # an NTP step back while the retry is pending
    timers.advance(RETRY_INITIAL)
    assert len(timers.dials) == 2, "the pending retry waited for the wall clock"
    refuse(timers)
    assert alpha.store.schedule_for(beta.node_id).next_attempt_at == EPOCH - DAY + 2.0
    stop(link, timers)

    restarted = FakeReactor(start=20.0)  # after a reboot the timer clock starts again
    rt.reactor = restarted
    wall.advance(0.5)
    second = new_link(alpha, beta)
    second.kick()
    assert second.state is LinkState.WAITING, "a stored wall time was read as a timer time"
    restarted.advance(1.5 - 0.01)
    assert restarted.dials == []
    restarted.advance(0.01)
    assert len(restarted.dials) == 1
    stop(second, restarted)


class FakeSender:
    """The parts of SenderProtocol a link calls."""

    def __init__(self, protocol: int = 2) -> None:
        self.protocol = protocol   # the one the HELLOs agreed on
        self.offers: list[tuple[str, int]] = []
        self.closed = False
        self.aborted: list[str] = []
        self.overrun: list[str] = []   # OFFERs the protocol would have refused

    def offer_room(self) -> int:
        return 32 - len(self.offers)   # protocol.connection's default max_in_flight

    def offer(self, message_id: str, header_token: str, ciphertext_size: int,
              priority: int) -> None:
        if self.offer_room() <= 0:   # as Connection.send: TooManyOffers, nothing sent
            self.overrun.append(message_id)
            raise RuntimeError("OFFER beyond the transfers allowed in flight")
        self.offers.append((message_id, priority))

    def close(self) -> None:
        self.closed = True

    def abort(self, code: str, reason: str, **kwargs: Any) -> None:
        self.aborted.append(code)

    def local_failure(self, reason: str) -> None:
        self.aborted.append("local-read-error")


def test_handshake_refusal_counts_as_a_failure(offices: tuple[Office, Office]) -> None:
    """A connection closed before the receiver's HELLO (a TLS refusal) backs off like a refusal."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_lost(proto, Failure(Exception("tlsv13 alert unknown ca")))  # type: ignore[arg-type]
    assert link.state is LinkState.WAITING
    schedule = alpha.store.schedule_for(beta.node_id)
    assert schedule.failures == 1 and "handshake" in (schedule.last_error or "")
    stop(link, reactor)


def test_no_hello_in_time_aborts_the_connection(offices: tuple[Office, Office]) -> None:
    """A peer that accepts TCP but never says HELLO is cut off after connect_timeout."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    reactor.advance(alpha.runtime.config.delivery.connect_timeout)
    assert proto.aborted == ["hello-timeout"]
    link.connection_lost(proto, Failure(Exception("closed")))  # type: ignore[arg-type]
    assert alpha.store.schedule_for(beta.node_id).failures == 1
    stop(link, reactor)


def test_reaching_the_peer_resets_the_schedule_and_offers_the_queue(
        offices: tuple[Office, Office]) -> None:
    """After failures, a HELLO resets failures to zero and the queued document is offered."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    refuse(reactor)
    reactor.advance(RETRY_INITIAL)
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_ready(proto)  # type: ignore[arg-type]
    assert link.state is LinkState.CONNECTED
    assert alpha.store.schedule_for(beta.node_id).failures == 0
    assert proto.offers == [(make_dispatch(1, (beta.node_id,)).message_id, 3)]
    stop(link, reactor)
    assert proto.closed


def test_an_unreadable_spooled_document_backs_off_instead_of_redialling(
        offices: tuple[Office, Office]) -> None:
    """Accepted, but our own spooled copy is gone: the connection closes cleanly, and the link
    waits out the retry delay rather than redialling at once to fail the same way (a loop of
    hundreds of connections a second, seen once in an integration run)."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_ready(proto)  # type: ignore[arg-type]
    ((message_id, _),) = proto.offers
    link.accepted(proto, message_id, 0)  # type: ignore[arg-type]   # spool folder never existed
    assert proto.aborted == ["local-read-error"]
    link.retry_later("cannot read envelope")   # what SenderProtocol.local_failure does
    dials = len(reactor.dials)
    link.connection_lost(proto, Failure(ConnectionDone()))  # type: ignore[arg-type]
    assert link.state is LinkState.WAITING and len(reactor.dials) == dials
    assert "cannot read envelope" in (alpha.store.schedule_for(beta.node_id).last_error or "")
    stop(link, reactor)


def test_urgent_documents_never_overrun_the_protocols_transfers_in_flight(
        offices: tuple[Office, Office]) -> None:
    """Urgent documents skip the small-document window, but not the protocol's cap on
    transfers in flight (32): beyond it the OFFER was refused locally and the document sat
    unsent until the idle timeout. A full window of 24 ordinary documents, then 20 flash
    ones: 8 of them are offered at once, the rest when receipts free a place."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    for number in range(2, 25):
        alpha.store.add_dispatch(make_dispatch(number, (beta.node_id,)), T0)
    link = new_link(alpha, beta)
    link.kick()
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_ready(proto)  # type: ignore[arg-type]
    assert len(proto.offers) == 24
    for number in range(100, 120):
        alpha.store.add_dispatch(make_dispatch(number, (beta.node_id,), priority=0), T0)
    link.kick()
    assert proto.overrun == []
    assert len(proto.offers) == 32
    assert [priority for _, priority in proto.offers[24:]] == [0] * 8
    assert len(link.offered) == 32   # nothing counted as offered that was never sent
    stop(link, reactor)


def test_a_refused_dial_is_kept_as_a_plain_sentence(offices: tuple[Office, Office]) -> None:
    """Issue 20: the last error the status screen shows says what happened in words, not the
    operating system's "...111: Connection refused.."."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    refuse(reactor)
    error = alpha.store.schedule_for(beta.node_id).last_error or ""
    assert error.startswith("the connection was refused: nothing listens at that address")
    assert "111" not in error and link.last_error == error
    stop(link, reactor)


def test_the_cards_addresses_are_dialled_in_turn_staying_on_one_that_answers(
        offices: tuple[Office, Office]) -> None:
    """An office run by an active/standby pair advertises both hosts: a failed dial moves on to
    the next address, a connection that worked and closed cleanly redials the same one."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    alpha.store.update_peer_addresses("beta", ["127.0.0.1:7444", "127.0.0.1:7544"], T0)
    alpha.runtime.refresh_directory()
    link = new_link(alpha, beta)
    link.kick()
    refuse(reactor)                     # the first host is down
    reactor.advance(RETRY_INITIAL)
    refuse(reactor)                     # the second too, for now
    reactor.advance(2 * RETRY_INITIAL)  # round again: the first
    refuse(reactor)
    reactor.advance(4 * RETRY_INITIAL)  # the second answers
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_ready(proto)  # type: ignore[arg-type]
    link.connection_lost(proto, Failure(ConnectionDone()))  # closed cleanly (idle)
    assert [dial.port for dial in reactor.dials] == [7444, 7544, 7444, 7544, 7544]
    stop(link, reactor)


def _recorded(alpha: Office, number: int, beta: Office, priority: int = 3) -> Any:
    from lienthong.node.store.records import QueuedDelivery
    alpha.store.add_dispatch(make_dispatch(number, (beta.node_id,), priority=priority), T0)
    return QueuedDelivery.recorded(alpha.store.get_dispatch(f"{number:032x}"), beta.node_id)


def test_a_document_recorded_while_nothing_waits_is_offered_without_a_queue_look_up(
        offices: tuple[Office, Office], monkeypatch: pytest.MonkeyPatch) -> None:
    """On an idle connection the delivery handed over with the kick is offered at once: the
    look-up of the queue was a database round trip on every lone document's path."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    link = new_link(alpha, beta)
    link.kick()
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_ready(proto)  # type: ignore[arg-type]
    assert len(proto.offers) == 1            # the queued one; the queue is now drained
    looked: list[int] = []
    real = alpha.store.queued_deliveries
    monkeypatch.setattr(alpha.store, "queued_deliveries",
                        lambda *args: looked.append(1) or real(*args))
    link.kick(_recorded(alpha, 2, beta))
    assert [mid for mid, _ in proto.offers] == [f"{1:032x}", f"{2:032x}"] and looked == []
    assert set(link.offered) == {f"{1:032x}", f"{2:032x}"}
    # A kick without a delivery (a retry, a recovery) looks at the queue as before.
    link.kick()
    assert looked == [1] and len(proto.offers) == 2
    stop(link, reactor)


def test_a_recorded_document_waits_its_turn_when_the_window_is_full(
        offices: tuple[Office, Office]) -> None:
    """With documents still waiting for the window, a new one is not offered ahead of them:
    the link looks at the queue, which gives the order (flash first, then oldest)."""
    alpha, beta = offices
    reactor = alpha.runtime.reactor
    for number in range(2, 27):
        alpha.store.add_dispatch(make_dispatch(number, (beta.node_id,)), T0)
    link = new_link(alpha, beta)
    link.kick()
    proto = FakeSender()
    link.connection_made(proto)  # type: ignore[arg-type]
    link.connection_ready(proto)  # type: ignore[arg-type]
    assert len(proto.offers) == 24           # 2 of the 26 wait for the window
    link.kick(_recorded(alpha, 40, beta))
    assert len(proto.offers) == 24           # not offered ahead of the two waiting
    link.kick(_recorded(alpha, 41, beta, priority=0))
    assert proto.offers[-1] == (f"{41:032x}", 0)   # flash skips the window, as in _fill
    assert f"{40:032x}" not in link.offered
    stop(link, reactor)


def test_receipts_committed_together_are_logged_in_one_line(
        offices: tuple[Office, Office]) -> None:
    """A batch of receipts logs ONE line naming each document (docs/benchmarks.md, History
    55); every document is still reported delivered; a batch of one logs the line it did."""
    from twisted.logger import formatEvent, globalLogPublisher

    from lienthong.node.delivery.receipts import Recorded, VerifiedReceipt

    alpha, beta = offices
    delivered: list[str] = []
    link = PeerLink(alpha.runtime, beta.node_id, tls="tls-context",
                    on_all_delivered=lambda mid, row: delivered.append(mid),
                    on_delivery_failed=lambda mid, why: None)
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if "receipted" in str(event.get("log_format", "")):
            lines.append(formatEvent(event))

    def recorded(number: int, already: bool = False) -> Recorded:
        return Recorded(VerifiedReceipt(f"{number:032x}", "token", "ab" * 32,
                                        "2026-01-05T08:00:09Z", already), None, True, None)

    globalLogPublisher.addObserver(observe)
    try:
        link._receipts_recorded([recorded(1), recorded(2, already=True), recorded(3)])
        link._receipts_recorded([recorded(4)])
    finally:
        globalLogPublisher.removeObserver(observe)
    assert delivered == [f"{n:032x}" for n in (1, 2, 3, 4)]
    assert len(lines) == 2, lines
    assert lines[0] == (f"{link.name} receipted 3 documents: {1:032x}, "
                        f"{2:032x} (it already had it), {3:032x}")
    assert lines[1] == f"{link.name} receipted {4:032x}"
