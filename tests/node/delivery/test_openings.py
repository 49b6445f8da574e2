"""Envelopes of documents accepted together are opened in one worker hop
(node/delivery/openings.py); each document still gets its own source or its own error."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred

from lienthong.node.core.hops import call_each
from lienthong.node.delivery import openings
from lienthong.node.delivery.openings import EnvelopeOpenings, Opening


class HeldWorkers:
    """A runtime whose worker hops wait until the test runs them."""

    keys = object()

    def __init__(self) -> None:
        self.hops: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred]] = []

    def io(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        d: Deferred = Deferred()
        self.hops.append((fn, args, d))
        return d

    def run_next(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        fn, args, d = self.hops.pop(0)
        maybeDeferred(fn, *args).chainDeferred(d)
        return fn, args


def _opening(name: str, offset: int = 0) -> Opening:
    return Opening(f"spool/{name}", f"header.{name}", offset, signers={},
                   on_trailer=lambda size, sha256: None)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def fake(opening: Opening, node_keys: Any) -> str:
        seen.append(opening.spool_dir)
        if opening.spool_dir.endswith("bad"):
            raise OSError(2, "No such file or directory")
        return f"source of {opening.spool_dir}"

    monkeypatch.setattr(openings, "envelope_at", fake)
    return seen


def test_openings_waiting_for_a_hop_share_the_next_one(opened: list[str]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt, hops=1)  # type: ignore[arg-type]
    results: dict[str, Any] = {}
    for name in ("a", "b", "bad", "c", "d"):
        queue.open(_opening(name), priority=3, size=10240).addBoth(
            lambda value, name=name: results.__setitem__(name, value))
    assert len(rt.hops) == 1  # the first ACCEPT went at once, alone
    rt.run_next()
    assert list(results) == ["a"] and len(rt.hops) == 1  # the other four: ONE hop
    fn, args = rt.run_next()
    assert fn is call_each and len(args[1]) == 4
    assert results["d"] == "source of spool/d"
    assert results["bad"].check(OSError)  # failed alone
    assert results["c"] == "source of spool/c"
    assert queue.hops_run == 2 and opened == ["spool/a", "spool/b", "spool/bad", "spool/c",
                                              "spool/d"]


def test_the_most_urgent_waiting_opening_goes_first(opened: list[str]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt, hops=1)  # type: ignore[arg-type]
    queue.open(_opening("first"), priority=3, size=1)
    queue.open(_opening("normal"), priority=3, size=1)
    queue.open(_opening("flash"), priority=0, size=1)
    rt.run_next()
    rt.run_next()
    assert opened == ["spool/first", "spool/flash", "spool/normal"]


def test_a_resume_or_a_large_envelope_is_opened_alone_at_once(opened: list[str]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt, hops=1)  # type: ignore[arg-type]
    queue.open(_opening("small"), priority=3, size=1)
    queue.open(_opening("resumed", offset=4096), priority=3, size=1)
    queue.open(_opening("large"), priority=3, size=openings.ALONE_BYTES + 1)
    assert [fn for fn, _, _ in rt.hops] == [call_each, openings.envelope_at,
                                            openings.envelope_at]


class Source:
    """A ciphertext source that says whether it was closed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> list[Source]:
    made: list[Source] = []

    def fake(opening: Opening, node_keys: Any) -> Source:
        made.append(Source(opening.spool_dir))
        return made[-1]

    monkeypatch.setattr(openings, "envelope_at", fake)
    return made


def test_an_envelope_opened_at_the_offer_is_the_one_its_accept_takes(
        sources: list[Source]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt)  # type: ignore[arg-type]
    queue.open_early("m1", _opening("m1"), priority=3, size=10240)
    assert len(rt.hops) == 1 and queue.early == 1   # begun while the peer checks the offer
    rt.run_next()
    got: list[Any] = []
    taken = queue.take_early("m1", 0)
    assert taken is not None
    taken.addCallback(got.append)
    assert got == [sources[0]] and not sources[0].closed
    assert rt.hops == [] and queue.early == 0        # the ACCEPT needed no hop of its own
    assert queue.take_early("m1", 0) is None         # taken once


def test_early_openings_nobody_takes_are_closed(sources: list[Source]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt, hops=4)  # type: ignore[arg-type]
    for name in ("have", "resumed", "lost-1", "lost-2"):
        queue.open_early(name, _opening(name), priority=3, size=10240)
    queue.forget("have")                            # HAVE or REJECT: no ACCEPT comes
    assert queue.take_early("resumed", 4096) is None  # a resume opens afresh at its offset
    queue.forget_all()                              # the connection is gone
    assert queue.early == 0
    while rt.hops:                                  # the hops finish after all that
        rt.run_next()
    assert [s.closed for s in sources] == [True, True, True, True]


def test_large_documents_and_resumes_are_not_opened_early(sources: list[Source]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt)  # type: ignore[arg-type]
    queue.open_early("big", _opening("big"), priority=3, size=openings.ALONE_BYTES + 1)
    queue.open_early("again", _opening("again", offset=10), priority=3, size=10240)
    assert rt.hops == [] and queue.early == 0


def test_an_early_opening_that_failed_fails_its_accept_and_nothing_else(
        opened: list[str]) -> None:
    rt = HeldWorkers()
    queue = EnvelopeOpenings(rt)  # type: ignore[arg-type]
    queue.open_early("bad", _opening("bad"), priority=3, size=10)
    queue.open_early("worse", _opening("worse-bad", 0), priority=3, size=10)
    rt.run_next()
    got: list[Any] = []
    taken = queue.take_early("bad", 0)
    assert taken is not None
    taken.addErrback(got.append)
    assert got[0].check(OSError)   # reported where the ACCEPT is handled, as before
    queue.forget_all()             # one nobody takes: no unhandled error is left behind
