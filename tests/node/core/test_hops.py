"""Calls made while a batch runs share the next hop (node/core/hops.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from lienthong.node.core.hops import CallBatches, call_each


class HeldDoor:
    """A door to another thread whose hops wait until the test runs them."""

    def __init__(self) -> None:
        self.hops: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred]] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        d: Deferred = Deferred()
        self.hops.append((fn, args, d))
        return d

    def run_next(self) -> None:
        fn, args, d = self.hops.pop(0)
        maybeDeferred(fn, *args).chainDeferred(d)


def _half(n: int) -> int:
    if n % 2:
        raise ValueError(f"{n} is odd")
    return n // 2


def test_calls_made_while_a_hop_runs_share_the_next_one_in_order() -> None:
    door = HeldDoor()
    batches = CallBatches(door, _half)
    results: list[Any] = []
    for n in (2, 4, 5, 8):
        batches.call(n).addBoth(results.append)
    assert len(door.hops) == 1 and results == []  # the first call went at once, alone
    door.run_next()
    assert results == [1] and len(door.hops) == 1
    _, args, _ = door.hops[0]
    assert args == (_half, [(4,), (5,), (8,)])  # the other three: ONE hop, in order
    door.run_next()
    assert results[1] == 2 and results[3] == 4
    assert results[2].check(ValueError)  # failed alone
    assert batches.hops_run == 2


def test_a_hop_that_fails_as_a_whole_fails_each_of_its_calls() -> None:
    door = HeldDoor()
    batches = CallBatches(door, _half, max_batch=2)
    results: list[Any] = []
    for n in (2, 4, 6, 8):
        batches.call(n).addBoth(results.append)
    door.run_next()
    fn, args, d = door.hops.pop(0)
    d.errback(RuntimeError("the database thread is stopping"))
    assert [r.check(RuntimeError) for r in results[1:3]] == [RuntimeError, RuntimeError]
    door.run_next()  # the rest still get their hop
    assert results[3] == 4


def test_call_each_hands_back_each_result_or_failure() -> None:
    out = call_each(_half, [(2,), (3,)])
    assert out[0] == 1 and out[1].check(ValueError)


def test_a_batch_runner_of_its_own_gets_the_whole_batch_at_once() -> None:
    """``each``: a caller whose calls share a step (one fsync pass) runs the batch itself."""
    door = HeldDoor()
    seen: list[list[tuple[Any, ...]]] = []

    def halves_together(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        seen.append(calls)
        return call_each(fn, calls)

    batches = CallBatches(door, _half, each=halves_together)
    results: list[Any] = []
    for n in (2, 4, 5):
        batches.call(n).addBoth(results.append)
    door.run_next()
    door.run_next()
    assert seen == [[(2,)], [(4,), (5,)]]
    assert results[:2] == [1, 2] and results[2].check(ValueError)


def test_calls_made_while_held_go_together_when_the_hold_ends() -> None:
    """The OFFERs of one socket read: the first does not go alone, all share one hop."""
    door = HeldDoor()
    batches = CallBatches(door, _half)
    results: list[Any] = []
    with batches.held():
        for n in (2, 4, 6):
            batches.call(n).addBoth(results.append)
        assert door.hops == []   # nothing goes while held
    (hop,) = door.hops
    assert hop[1] == (_half, [(2,), (4,), (6,)])
    door.run_next()
    assert results == [1, 2, 3] and batches.hops_run == 1


def test_a_hold_ended_by_an_error_still_sends_its_calls() -> None:
    door = HeldDoor()
    batches = CallBatches(door, _half)
    results: list[Any] = []
    try:
        with batches.held():
            batches.call(2).addBoth(results.append)
            raise RuntimeError("a bad event in the read")
    except RuntimeError:
        pass
    door.run_next()
    assert results == [1]
