"""The receiving connection's DATA waiting for the workers (node/inbox/backlog.py): the marks
that stop and resume reading, and a batch of frames shared by the reactor, which adds, and a
real worker thread, which takes."""
from __future__ import annotations

import threading

from lienthong.node.inbox.backlog import Backlog, FrameBatch


def test_reading_stops_above_the_limit_and_resumes_at_half_of_it() -> None:
    backlog = Backlog(100)
    assert not backlog.add(60)
    assert backlog.add(60)            # 120 > 100: stop reading, said once
    assert not backlog.add(10)        # already stopped
    assert backlog.paused and backlog.waiting == 130
    assert not backlog.done(70)       # 60: still above half
    assert backlog.done(10)           # 50: resume, said once
    assert not backlog.done(50)
    assert not backlog.paused and backlog.waiting == 0


def test_a_batch_gives_its_frames_in_order_then_closes_and_refuses_more() -> None:
    batch = FrameBatch(b"a")
    assert batch.add(b"b")
    assert [batch.take(), batch.take(), batch.take()] == [b"a", b"b", None]
    assert not batch.add(b"c")        # the worker has finished it: the caller starts another
    assert batch.close() == 0


def test_closing_a_batch_drops_and_counts_what_nobody_took() -> None:
    batch = FrameBatch(b"abc")
    batch.add(b"de")
    assert batch.close() == 5
    assert batch.take() is None and not batch.add(b"f")


def test_every_frame_added_while_a_worker_drains_is_written_once_in_order() -> None:
    """A real thread takes while this one adds; whenever the worker closes a batch, the next
    frame starts a new one (as ReceiverProtocol does, chaining it behind the last)."""
    written: list[int] = []
    batches: list[FrameBatch] = []
    workers: list[threading.Thread] = []

    def drain(batch: FrameBatch) -> None:
        while (frame := batch.take()) is not None:
            written.append(int(frame))

    for n in range(5_000):
        frame = str(n).encode()
        if batches and batches[-1].add(frame):
            continue
        batch = FrameBatch(frame)
        if workers:
            workers[-1].join()        # the chain: a batch starts after the one before
        batches.append(batch)
        workers.append(threading.Thread(target=drain, args=(batch,)))
        workers[-1].start()
    workers[-1].join()
    assert written == list(range(5_000))
