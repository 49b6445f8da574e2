"""SIGKILL the receiver while it publishes a BATCH of small documents (node/inbox/publication.py).

Documents that finish together share their commits and folder fsyncs; a crash between the
shared fsync and the shared commit leaves every document of the batch ``publishing``, in the
inbox or still staged. Recovery must adopt each exactly once, and the sender's retries must
bring the rest: no loss, no second copy.
"""
from __future__ import annotations

import json
import os

from lienthong.node.runtime.peer_protocols import save_peer_protocols
from tests.integration.harness import check_delivered, is_document, sent_all, wait_for

COUNT = 30


def _kill_and_restart(network, failpoint: str, prefix: str,  # type: ignore[no-untyped-def]
                      on_kill=lambda beta: None, envelope: int = 2):
    """beta SIGKILLed at ``failpoint`` while alpha sends COUNT small documents, then started
    again (``on_kill(beta)`` looks at what the kill left first); every document arrives once.
    ``envelope=3``: alpha already knows beta speaks protocol 2, so it seals v3 from the
    first document."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    if envelope == 3:
        save_peer_protocols(alpha.home / "state", {beta.node_id: 2})
    beta.start(extra_env={"LIENTHONG_FAILPOINT": failpoint})
    documents = {f"{prefix}-{i:02d}.txt": os.urandom(10240) for i in range(COUNT)}
    for name, data in documents.items():
        alpha.drop("beta", name, data)
    alpha.start()
    code = beta.wait_exit(timeout=60)
    assert code == -9, f"beta exited with {code}, not SIGKILL:\n{beta.log_text()}"
    on_kill(beta)
    beta.start()
    wait_for(lambda: sent_all(alpha, COUNT), timeout=120, what="delivery after the kill")
    check_delivered(alpha, [beta], documents)
    assert beta.query("received_count") == COUNT
    return beta


def test_kill_between_a_batch_fsync_and_its_commit(network) -> None:  # type: ignore[no-untyped-def]
    # The third batch: by then the sender has a window of documents in flight, so the batch
    # cut short holds several of them.
    beta = _kill_and_restart(network, "receiver-after-fsync-before-commit:3", "van-ban")
    # The kill did cut a publication short, and recovery adopted it (how many documents the
    # batch held depends on timing: 23 in a typical run here, 1 now and then).
    assert beta.log_text().count("completing interrupted reception") >= 1


def test_kill_before_the_inbox_fsync_of_a_batch(network) -> None:  # type: ignore[no-untyped-def]
    """Killed after a batch's links and sidecars are written and before the ONE inbox-folder
    fsync that covers them both (node/inbox/publication.py): every document of the batch is in
    the inbox AND still staged, with sidecars beside it, its row ``publishing``. Recovery
    completes each from its inbox file, drops the staging name and writes the sidecars again;
    nothing is lost, nothing arrives twice, no staging file is left."""
    def staged(beta) -> None:  # type: ignore[no-untyped-def]
        assert list((beta.home / "tmp" / "staging").iterdir()), \
            "the kill left no staging name: the stage was not reached as described"
    beta = _kill_and_restart(network, "receiver-before-inbox-fsync:3", "van-ban",
                             on_kill=staged)
    assert beta.log_text().count("completing interrupted reception") >= 1
    assert list((beta.home / "tmp" / "staging").iterdir()) == []


def test_kill_with_a_batch_stored_rows_written_but_not_committed(network) -> None:  # type: ignore[no-untyped-def]
    """The ``stored`` rows and audit entries of a whole batch are written in one unit of work
    (node/inbox/publication.py ``store_batch``); killed before it commits, every document of
    the batch is published in the inbox but still ``publishing``, with no receipt sent."""
    beta = _kill_and_restart(network, "receiver-before-stored-committed:3", "cong-van")
    assert beta.log_text().count("completing interrupted reception") >= 1


def _due_sidecars_rewritten_whole(beta) -> None:  # type: ignore[no-untyped-def]
    """After the restart: every due sidecar written again from the store, whole, its row
    dropped; no document receipted twice; no temporary name left in the inbox."""
    assert "writing the sidecars of" in beta.log_text()
    wait_for(lambda: not beta.query("sidecars_due_rows"), timeout=30,
             what="the due sidecars written again and recorded")
    issued = [e.message_id for e in beta.query("audit_entries", kind="receipt-issued")]
    assert len(issued) == len(set(issued)) == COUNT, "a document was receipted twice"
    for row in beta.query("recent_received", COUNT):
        final = beta.home / row.stored_path
        meta = json.loads(final.with_name(final.name + ".meta.json").read_text("utf-8"))
        assert (meta["message_id"], meta["stored_as"]) == (row.message_id, final.name)
        receipt = final.with_name(final.name + ".receipt.jws").read_text("ascii")
        assert receipt == row.receipt + "\n"
    assert not [p for p in (beta.inbox / "alpha").iterdir() if p.name.startswith(".lienthong-")]


def test_kill_with_sidecars_written_before_their_flush(network) -> None:  # type: ignore[no-untyped-def]
    """The sidecars of the documents stored within a second are written and renamed without
    an fsync, then made durable by one flush of the file system (node/inbox/publication.py
    ``flush_sidecar_batch``); their ``sidecars_due`` rows are dropped only after it. Killed
    just before a flush, the sidecars are in place but still due: the next start writes them
    again from the store, whole, and drops their rows; nothing is receipted twice."""
    def written_not_flushed(beta) -> None:  # type: ignore[no-untyped-def]
        due = beta.query("sidecars_due_rows")
        assert due, "no stored document is due its sidecars: the stage was not reached"
        placed = [row for row in due if (beta.home / (row.stored_path + ".receipt.jws")).exists()]
        assert placed, "no due document has its sidecars written: not the stage described"
    beta = _kill_and_restart(network, "receiver-before-sidecars-flushed:1", "quyet-dinh",
                             on_kill=written_not_flushed)
    _due_sidecars_rewritten_whole(beta)


def test_kill_with_a_small_documents_last_data_written_in_its_ends_hop(network) -> None:  # type: ignore[no-untyped-def]
    """A small document's one DATA frame, arriving with its END, is written in the END's
    worker hop (node/inbox/connection.py ``_end``, node/inbox/finishing.py ``_write_last``).
    Killed just after that write, before the proof and the staging fsync: nothing of it is
    durable or recorded (no row), so the sender's retry brings it again from byte 0 and it
    is stored once; no staging file is left behind."""
    beta = _kill_and_restart(network, "receiver-last-data-at-end:5", "giay-moi")
    assert list((beta.home / "tmp" / "staging").iterdir()) == []


def test_kill_after_a_batch_is_stored_before_its_sidecars(network) -> None:  # type: ignore[no-untyped-def]
    """The sidecars are written after the ``stored`` commit, without holding the receipt
    (node/inbox/publication.py ``place_sidecar_batch``). Killed there, documents are stored
    and receipted but have no sidecars; the next start writes them from the store, whole,
    and no document is receipted twice (a retry by the sender gets the stored receipt)."""
    def without_sidecars(beta) -> None:  # type: ignore[no-untyped-def]
        documents = [p for p in (beta.inbox / "alpha").iterdir() if is_document(p)
                     and not p.name.startswith(".lienthong-")]
        assert any(not p.with_name(p.name + ".receipt.jws").exists() for p in documents), \
            "every document has its sidecars: the stage was not reached as described"
        assert beta.query("sidecars_due_rows"), "no stored document is due its sidecars"
    beta = _kill_and_restart(network, "receiver-before-sidecars:1", "to-trinh",
                             on_kill=without_sidecars)
    _due_sidecars_rewritten_whole(beta)


def test_kill_with_a_small_document_accepted_before_its_staging_file_is_opened(network) -> None:  # type: ignore[no-untyped-def]
    """A small v3 document is accepted before its staging file is opened
    (node/inbox/staging_opens.py ``_accept_fresh``); killed after the ACCEPT went out and
    before the opening: nothing of it was written or recorded, so the sender's retry starts
    it again from byte 0 and it is stored once; no staging file is left behind."""
    beta = _kill_and_restart(network, "receiver-accepted-before-staging-open:5", "to-trinh",
                             envelope=3)
    assert list((beta.home / "tmp" / "staging").iterdir()) == []
