"""The receiver's publication loop (node/inbox/publication.py ``Publisher``) driven through
``Offers``, with the publication hop held: a batch's stored documents are logged in one
line. Real keys, sealing, SQLite and files; the worker pool and the database run inline
except for the held hop."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from lienthong.node.inbox.offers import Offers
from lienthong.node.inbox.publication import SIDECAR_FLUSH_SECONDS
from lienthong.node.spool.sealing import open_envelope
from lienthong.node.store.db_thread import InlineDatabase
from lienthong.protocol.events import Offer, Receipt
from lienthong.protocol.fields import new_message_id
from tests.node.inbox.test_offers import _seal_for
from tests.node.runtimehelp import FakeReactor, InlineWorkers, enrol, make_office


class HeldPublications(InlineWorkers):
    """Inline, except that the publication hops (``publish_batch``) wait for ``release``."""

    def __init__(self) -> None:
        self.held: list[tuple[Any, Any, tuple[Any, ...]]] = []

    def callInThreadWithCallback(self, on_result: Any, fn: Any, *args: Any,  # noqa: N802
                                 **kwargs: Any) -> None:
        if getattr(fn, "__name__", "") == "publish_batch":
            self.held.append((on_result, fn, args))
        else:
            super().callInThreadWithCallback(on_result, fn, *args, **kwargs)

    def release(self) -> None:
        held, self.held = self.held, []
        for on_result, fn, args in held:
            super().callInThreadWithCallback(on_result, fn, *args)


class CountedDatabase(InlineDatabase):
    """Inline, naming each unit of work it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.units: list[str] = []

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.units.append(getattr(fn, "__name__", type(fn).__name__))
        return super().run(fn, *args, **kwargs)


def test_the_documents_of_a_publication_batch_are_logged_in_one_line(tmp_path: Path) -> None:
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    enrol(beta, alpha)
    workers, database = HeldPublications(), CountedDatabase()
    beta.runtime.workers = workers  # type: ignore[assignment]
    beta.runtime.database = database
    offers = Offers(beta.runtime)
    streams = []
    for n in range(3):
        mid = new_message_id()
        folder, sealed = _seal_for(alpha, beta, mid, f"van ban {n}\n".encode() * 300,
                                   name=f"van-ban-{n}.txt", meta={}, version=3)
        answers: list[Any] = []
        offers.offer(alpha.node_id, Offer(
            message_id=mid, envelope=sealed.header_token,
            ciphertext_size=sealed.header.ciphertext_size, priority=3)).addBoth(answers.append)
        ((_accept, header, stream, open_staging),) = answers
        open_staging()
        source = open_envelope(folder, sealed.header_token, alpha.runtime.keys)
        try:
            stream.write(source.read(header.ciphertext_size))
        finally:
            source.close()
        streams.append((header, stream))
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_namespace") == "lienthong.offers":
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    try:
        finished: list[Any] = []
        database.units.clear()
        for header, stream in streams:
            offers.finish(alpha.node_id, header, stream).addBoth(finished.append)
        # The first document is being published; the other two finished meanwhile and wait.
        assert database.units == ["begin_publishes"] and len(workers.held) == 1
        workers.release()
        assert [type(answer) for answer in finished] == [Receipt]
        assert len(workers.held) == 1
        workers.release()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [type(answer) for answer in finished] == [Receipt] * 3
    # The sidecars of documents stored within one interval are written together, one hop,
    # one flush and one statement for all: until then they are due.
    for header, _ in streams:
        row = beta.store.get_received(alpha.node_id, header.message_id)
        assert row is not None and row.state == "stored"
        assert not (beta.runtime.config.inbox / "alpha" / (header.name + ".meta.json")).exists()
    assert len(beta.store.sidecars_due_rows()) == 3
    assert "sidecars_written" not in database.units
    reactor.advance(SIDECAR_FLUSH_SECONDS)
    for header, _ in streams:
        assert (beta.runtime.config.inbox / "alpha" / (header.name + ".meta.json")).exists()
    assert beta.store.sidecars_due_rows() == []
    assert database.units.count("sidecars_written") == 1
    # One line for the lone document, one for the batch of two, each naming its documents.
    assert len(lines) == 2, lines
    assert lines[0].startswith("received 'van-ban-0.txt' from alpha into ")
    assert lines[1].startswith("received 2 documents from alpha: 'van-ban-1.txt' into ")
    assert "'van-ban-2.txt' into " in lines[1]
