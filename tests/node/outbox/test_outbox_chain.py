"""What the take-seal-record chain waits for: a document's latency is the chain's length.

The database here keeps the database thread's contract (units run in submission order; each
unit's Deferred fires once its commit is durable) but holds every commit until the test
releases it, so the test can see which units the chain submitted without waiting.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.outbox.sidecars import SPOOLED_SIDECAR
from tests.node.runtimehelp import FakeReactor, InlineWorkers, Office, enrol, make_office


class HeldCommits:
    """FIFO units of work whose commits wait for ``release``."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple, dict, Deferred]] = []

    def start(self) -> None:
        pass

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        d: Deferred = Deferred()
        self.pending.append((fn, args, kwargs, d))
        return d

    def release(self) -> None:
        """Run and commit every unit submitted so far (and those they lead to), in order."""
        while self.pending:
            fn, args, kwargs, d = self.pending.pop(0)
            try:
                result = fn(*args, **kwargs)
            except Exception:  # noqa: BLE001 - handed to the Deferred, as the thread does
                d.errback()
            else:
                d.callback(result)


class CountedWorkers(InlineWorkers):
    """Inline worker jobs, named as they run: each one is a thread hop in the real node."""

    def __init__(self) -> None:
        self.jobs: list[str] = []

    def callInThreadWithCallback(self, on_result: Callable[[bool, Any], None],  # noqa: N802
                                 fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.jobs.append(getattr(fn, "__name__", repr(fn)))
        super().callInThreadWithCallback(on_result, fn, *args, **kwargs)


def _offices(tmp_path: Path) -> tuple[Office, HeldCommits]:
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    held = HeldCommits()
    alpha.runtime.database = held
    alpha.runtime.workers = CountedWorkers()  # type: ignore[assignment]
    return alpha, held


def _kinds(office: Office) -> list[str]:
    return [entry.kind for entry in office.store.audit_entries()
            if entry.kind in ("document-metadata", "taken", "sealed")]


def test_dispatch_is_submitted_without_waiting_for_the_take_commit(tmp_path: Path) -> None:
    """Taken and sealed in one hop, the dispatch is queued right behind the take's audit."""
    alpha, held = _offices(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    folder.mkdir(parents=True)
    (folder / "to-trinh.pdf").write_bytes(b"%PDF-1.7 to trinh\n" * 100)
    dispatched: list[Any] = []
    finished: list[Any] = []
    Outbox(alpha.runtime, on_dispatch=dispatched.append).file_ready(
        folder / "to-trinh.pdf", "beta").addBoth(finished.append)
    # ONE worker hop (no sidecar: the take's hop checks there is none; take and seal
    # together), and ONE unit of database work: the dispatch, with the metadata and take
    # audits ahead of ``sealed``.
    assert alpha.runtime.workers.jobs == ["take_and_seal_batch"]
    assert len(held.pending) == 1
    assert dispatched == [] and finished == []
    held.release()
    beta = alpha.runtime.directory.resolve_target("beta", alpha.runtime.config.groups)[0]
    assert finished == [None]
    assert [[d.peer_node_id for d in row.deliveries] for row in dispatched] == [[beta.node_id]]
    # The audit chain still says taken before sealed (submission order is commit order).
    assert _kinds(alpha) == ["document-metadata", "taken", "sealed"]
    assert [d.name for d in alpha.store.recent_dispatches(5)] == ["to-trinh.pdf"]


def test_a_sidecar_is_in_the_spool_before_the_dispatch_exists(tmp_path: Path) -> None:
    """With a metadata sidecar, the take moves it into the spool in the same worker hop,
    before sealing: it is beside the payload before anything is recorded, and the chain
    needs no extra wait for it (the dispatch and the take's audits are one unit, as without
    a sidecar)."""
    alpha, held = _offices(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    folder.mkdir(parents=True)
    (folder / "quyet-dinh.pdf").write_bytes(b"%PDF-1.7 quyet dinh\n" * 100)
    (folder / "quyet-dinh.pdf.meta.toml").write_text('subject = "Quyết định"\n',
                                                     encoding="utf-8")
    finished: list[Any] = []
    Outbox(alpha.runtime, on_dispatch=lambda ids: None).file_ready(
        folder / "quyet-dinh.pdf", "beta").addBoth(finished.append)
    # The take's hop finds the sidecar and takes nothing; the sidecar is read and validated,
    # and the next hop takes the file and moves the sidecar in.
    assert alpha.runtime.workers.jobs == ["take_and_seal_batch", "read_sidecar",
                                          "take_and_seal_batch"]
    assert len(held.pending) == 1  # the dispatch, with the take's audits ahead of it
    assert not (folder / "quyet-dinh.pdf.meta.toml").exists()
    spooled = [p for p in alpha.runtime.config.spool.iterdir() if p.is_dir()]
    assert len(spooled) == 1 and (spooled[0] / SPOOLED_SIDECAR).is_file()
    assert finished == []
    held.release()
    assert finished == [None]
    assert _kinds(alpha) == ["document-metadata", "taken", "sealed"]


def test_the_take_is_audited_even_if_the_dispatch_cannot_be_recorded(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The take's audits ride in the dispatch's unit; if that unit fails, they are written
    on their own (the file was taken either way; recovery records it at the next start)."""
    alpha, held = _offices(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    folder.mkdir(parents=True)
    (folder / "to-trinh.pdf").write_bytes(b"%PDF-1.7 to trinh\n" * 100)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(alpha.store, "add_dispatches", broken)  # add_dispatch calls it too
    finished: list[Any] = []
    Outbox(alpha.runtime, on_dispatch=lambda ids: None).file_ready(
        folder / "to-trinh.pdf", "beta").addBoth(finished.append)
    held.release()
    assert finished == [None]  # file_ready logs the failure and never raises
    assert _kinds(alpha) == ["document-metadata", "taken"]
    assert alpha.store.recent_dispatches(5) == []


def test_a_file_reported_again_while_in_the_chain_is_taken_once(tmp_path: Path) -> None:
    """The watcher may report a path again before its take is recorded: the second report
    answers at once (a fired Deferred, never an exception) and takes nothing."""
    alpha, held = _offices(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    folder.mkdir(parents=True)
    (folder / "to-trinh.pdf").write_bytes(b"%PDF-1.7 to trinh\n" * 100)
    outbox = Outbox(alpha.runtime, on_dispatch=lambda ids: None)
    first: list[Any] = []
    again: list[Any] = []
    outbox.file_ready(folder / "to-trinh.pdf", "beta").addBoth(first.append)
    outbox.file_ready(folder / "to-trinh.pdf", "beta").addBoth(again.append)
    assert again == [None] and first == []
    assert alpha.runtime.workers.jobs == ["take_and_seal_batch"]
    held.release()
    assert first == [None]
    assert [d.name for d in alpha.store.recent_dispatches(5)] == ["to-trinh.pdf"]
