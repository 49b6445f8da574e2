"""SIGKILL the sending node at each named stage, restart it, and prove nothing is lost or doubled.

Each test starts the sender with ``LIENTHONG_FAILPOINT=<stage>[:n]``; the node kills itself
with SIGKILL when it gets there (node/core/failpoints.py), exactly as a power cut would stop it:
no cleanup, no flush. The test then restarts it without the failpoint and runs the shared
checker: the document is in the recipient's inbox exactly once, byte-identical, with a receipt
that verifies, the sender holds that same receipt, and nothing is half-written anywhere.
"""
from __future__ import annotations

import os

import pytest

from lienthong.node.delivery.connection import DATA_FRAME, FRAMES_PER_TURN
from lienthong.node.runtime.peer_protocols import save_peer_protocols
from lienthong.node.spool.ready import READY_PREFIX
from lienthong.node.spool.sealing import READ_SIZE
from tests.integration.harness import (
    check_delivered,
    sent_all,
    spool_entries,
    wait_for,
    write_large_file,
)

#: At least three sealing blocks and six DATA frames, so ":1" and ":2" are really mid-way.
SIZE = max(3 * READ_SIZE, 6 * DATA_FRAME) + 12345
#: Killed on a DATA frame of the sender's second pump turn at least: the frames of a turn
#: reach the socket only when the reactor next runs, so a kill inside the first turn can
#: leave the receiver nothing to resume from (and the resume untested).
MID_TRANSFER = f"sender-mid-transfer:{FRAMES_PER_TURN + 2}"


#: A small document: sealed before it is taken, its stream ends kept in its ``intake.json``.
SMALL = 10 * 1024

#: The stages where the envelope's form matters (sealing, resuming the re-created stream, the
#: receipt) with the document sealed as v2 and as v3 (alpha already knows beta speaks
#: protocol 2, as after any earlier connection).
ENVELOPES = pytest.mark.parametrize("envelope", [2, 3])


def _kill_and_recover(network, tmp_path, stage: str,  # type: ignore[no-untyped-def]
                      envelope: int = 2, streamed: bool = False, size: int = SIZE,
                      still_in_outbox: bool = False) -> tuple:
    """``streamed``: ``delivery.streamed_seal_above_mib = 1``, so the document (over 1 MiB)
    is offered before it is read (docs/design.md §5.3). ``size``: SMALL is sealed before its
    take (node/outbox/file_work.py); ``still_in_outbox``: the kill came before the take, so
    the file must still be in the outbox and nothing in the spool."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    if envelope == 3:
        save_peer_protocols(alpha.home / "state", {beta.node_id: 2})
    if streamed:
        (config,) = alpha.home.glob("*.toml")
        config.write_text(config.read_text().replace(
            "# streamed_seal_above_mib = 0", "streamed_seal_above_mib = 1"))
    beta.start()
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": stage})
    original = tmp_path / "original.pdf"
    write_large_file(original, size)
    (alpha.outbox / "beta").mkdir(parents=True, exist_ok=True)
    alpha.drop("beta", "cong-van.pdf", original.read_bytes())
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL, at {stage}:\n{alpha.log_text()}"
    if still_in_outbox:
        assert (alpha.outbox / "beta" / "cong-van.pdf").read_bytes() == original.read_bytes()
        assert spool_entries(alpha) == []
    alpha.start()
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what=f"delivery after a kill at {stage}")
    check_delivered(alpha, [beta], {"cong-van.pdf": original})
    assert {e.detail["envelope"] for e in alpha.query("audit_entries", kind="sealed")} == \
        {envelope}
    return alpha, beta


def _sent_receipt_equals_inbox_receipt(alpha, beta) -> None:  # type: ignore[no-untyped-def]
    sent = (alpha.home / "sent" / "beta" / "cong-van.pdf.beta.receipt.jws").read_text()
    inbox = (beta.inbox / "alpha" / "cong-van.pdf.receipt.jws").read_text()
    assert sent == inbox


def test_kill_after_the_file_is_taken(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Killed with the file in the spool but nothing sealed: the restart seals and sends it once."""
    alpha, beta = _kill_and_recover(network, tmp_path, "sender-after-take")
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert not any((alpha.outbox / "beta").iterdir())


def test_kill_after_the_take_leaves_no_sidecar_behind(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Killed right after a document with a sidecar was taken: its sidecar went into the spool
    with it (not left in the outbox, where it would attach to a later file of the same name),
    and after the restart the document arrives with that metadata and the sidecar reaches
    sent/ beside it."""
    import json
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-after-take"})
    folder = alpha.outbox / "beta"
    folder.mkdir(parents=True, exist_ok=True)
    sidecar = 'type = "resolution"\nnumber = "12-NQ/TU"\nurgency = "urgent"\n'
    (tmp_path / "qd.txt.meta.toml").write_text(sidecar, encoding="utf-8")
    os.rename(tmp_path / "qd.txt.meta.toml", folder / "qd.txt.meta.toml")
    (tmp_path / "qd.txt").write_bytes(b"Quyet dinh so 12\n" * 100)
    os.rename(tmp_path / "qd.txt", folder / "qd.txt")
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    assert list(folder.iterdir()) == []  # neither the document nor its sidecar stayed behind
    alpha.start()
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what="delivery after the restart")
    check_delivered(alpha, [beta], {"qd.txt": b"Quyet dinh so 12\n" * 100})
    meta = json.loads((beta.inbox / "alpha" / "qd.txt.meta.json").read_text())["meta"]
    assert (meta["number"], meta["urgency"]) == ("12-NQ/TU", "urgent")
    assert (alpha.home / "sent" / "beta" / "qd.txt.meta.toml").read_text() == sidecar


@ENVELOPES
def test_kill_during_sealing(network, tmp_path, envelope: int) -> None:  # type: ignore[no-untyped-def]
    """Killed with half an envelope written: the restart seals again and sends one copy."""
    alpha, beta = _kill_and_recover(network, tmp_path, "sender-during-seal:1", envelope)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert spool_entries(alpha) == []


@ENVELOPES
def test_kill_while_a_small_file_is_sealed_before_its_take(  # type: ignore[no-untyped-def]
        network, tmp_path, envelope: int) -> None:
    """A small file is sealed before it is taken: killed while sealing, it is still in the
    outbox and nothing is in the spool; the restart takes, seals and sends it once."""
    alpha, beta = _kill_and_recover(network, tmp_path, "sender-during-seal:1", envelope,
                                    size=SMALL, still_in_outbox=True)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert spool_entries(alpha) == []


@ENVELOPES
def test_kill_after_a_small_file_is_taken_with_its_stream_ends_recorded(  # type: ignore[no-untyped-def]
        network, tmp_path, envelope: int) -> None:
    """Killed after the take of a file sealed before it: its ``intake.json`` holds stream ends
    whose header token was never recorded. The restart seals it again (same message ID), keeps
    the new ends beside the payload, and the document arrives once and verifies."""
    alpha, beta = _kill_and_recover(network, tmp_path, "sender-after-take", envelope,
                                    size=SMALL)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert len(alpha.query("audit_entries", kind="sealed")) == 1
    assert not any((alpha.outbox / "beta").iterdir())


@ENVELOPES
def test_kill_mid_transfer_resumes(network, tmp_path, envelope: int) -> None:  # type: ignore[no-untyped-def]
    """Killed after some DATA frames: the restart resumes from the receiver's offset, not zero."""
    alpha, beta = _kill_and_recover(network, tmp_path, MID_TRANSFER, envelope)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert "resuming 'cong-van.pdf' to beta at byte" in alpha.log_text()


@ENVELOPES
def test_kill_after_receiver_stored_before_receipt_recorded(  # type: ignore[no-untyped-def]
        network, tmp_path, envelope: int) -> None:
    """Killed with the receipt in hand but unrecorded: the retry gets the same receipt back."""
    alpha, beta = _kill_and_recover(network, tmp_path, "sender-before-receipt-stored", envelope)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert "duplicate" in beta.audit_kinds()


def _recorded_digest(alpha, original) -> None:  # type: ignore[no-untyped-def]
    """The dispatch row holds the plaintext's SHA-256 and the audit says when it was signed."""
    import hashlib
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    (dispatch,) = alpha.query("recent_dispatches", 5)
    assert dispatch.sha256 == digest
    signed = alpha.query("audit_entries", kind="trailer-signed")
    assert signed and {entry.digest for entry in signed} == {digest}
    return signed


def test_kill_after_a_streamed_trailer_is_kept_before_its_digest_is_recorded(  # type: ignore[no-untyped-def]
        network, tmp_path) -> None:
    """A large v3 document, offered before it was read, killed once its trailer is signed and
    kept but before the trailer left or the digest reached the store: the restart records the
    digest from the kept trailer, and the resumed transfer sends that same trailer."""
    alpha, beta = _kill_and_recover(network, tmp_path, "sender-after-trailer-kept", 3,
                                    streamed=True)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    signed = _recorded_digest(alpha, tmp_path / "original.pdf")
    assert [entry.detail.get("recovered") for entry in signed] == [True]


def test_kill_mid_way_through_a_streamed_seal_derives_its_digest_again(  # type: ignore[no-untyped-def]
        network, tmp_path) -> None:
    """Killed after some DATA frames of a document whose digest nobody has taken yet: the
    resume re-reads (and hashes) from byte 0, signs the trailer and sends from the offset."""
    alpha, beta = _kill_and_recover(network, tmp_path, MID_TRANSFER, 3,
                                    streamed=True)
    _sent_receipt_equals_inbox_receipt(alpha, beta)
    assert "resuming 'cong-van.pdf' to beta at byte" in alpha.log_text()
    signed = _recorded_digest(alpha, tmp_path / "original.pdf")
    assert [entry.detail.get("recovered") for entry in signed] == [None]


def test_kill_before_a_batch_of_dispatches_commits(network) -> None:  # type: ignore[no-untyped-def]
    """Killed with the dispatch rows of several documents sealed together written but not
    committed (node/outbox/dispatches.py): every one of them is still a taken, sealed,
    unrecorded spool folder; the restart seals and records each again (same message ID) and
    each arrives exactly once."""
    count = 30
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    documents = {f"cong-van-{i:02d}.txt": os.urandom(10240) for i in range(count)}
    for name, data in documents.items():  # dropped before the start: taken in batches
        alpha.drop("beta", name, data)
    beta.start()
    # The first unit of several documents (the stage is not reached by a unit of one: how the
    # documents fall into units depends on timing, and a unit of one once failed this test).
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-before-dispatches-committed:1"})
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    alpha.start()
    wait_for(lambda: sent_all(alpha, count), timeout=120, what="delivery after the kill")
    check_delivered(alpha, [beta], documents)
    # The unit cut short held several documents, and each was sealed again at the start.
    assert alpha.log_text().count("after a restart") >= 2
    sealed = [e.message_id for e in alpha.query("audit_entries", kind="sealed")]
    assert len(sealed) == len(set(sealed)) == count


@ENVELOPES
def test_kill_with_a_small_document_accepted_before_its_dispatch_commits(  # type: ignore[no-untyped-def]
        network, envelope: int) -> None:
    """A small document on an idle connection is offered while its dispatch commits
    (node/delivery/unrecorded.py). Killed with the receiver's ACCEPT in and the commit held
    back (the test holds the sender's database write lock), before any DATA: nothing of it is
    recorded at either end. The restart seals it again under a new header with the same
    message ID, the receiver takes that offer from byte 0, and it arrives exactly once."""
    import sqlite3
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    if envelope == 3:   # the receiver opens a small v3 document's staging file behind its ACCEPT
        save_peer_protocols(alpha.home / "state", {beta.node_id: 2})
    first, data = os.urandom(SMALL), os.urandom(SMALL)
    beta.start()
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-accepted-before-dispatch-committed"})
    alpha.drop("beta", "dau-tien.pdf", first)   # opens the connection, then leaves it idle
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what="the first delivery")
    lock = sqlite3.connect(alpha.home / "state" / "lienthong.db", timeout=30,
                           isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")   # the dispatch commit waits (busy_timeout)
        alpha.drop("beta", "cong-van.pdf", data)
        code = alpha.wait_exit(timeout=60)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    assert [e.detail["name"] for e in alpha.query("audit_entries", kind="taken")] == \
        ["dau-tien.pdf"]                                # not recorded by the sender...
    assert beta.audit_kinds().count("received") == 1   # ...nor received
    alpha.start()
    wait_for(lambda: sent_all(alpha, 2), timeout=60, what="delivery after the restart")
    check_delivered(alpha, [beta], {"dau-tien.pdf": first, "cong-van.pdf": data})
    assert beta.audit_kinds().count("received") == 2
    assert len(alpha.query("audit_entries", kind="sealed")) == 2


def test_kill_before_a_unit_of_transfer_notes_commits(network) -> None:  # type: ignore[no-untyped-def]
    """Killed with several documents' ``offered``/``sent`` notes written but not committed
    (node/delivery/notes.py): nothing durable depended on them; their deliveries are still
    queued, offered again after the restart, and each document arrives exactly once."""
    count = 30
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    documents = {f"to-trinh-{i:02d}.txt": os.urandom(10240) for i in range(count)}
    for name, data in documents.items():
        alpha.drop("beta", name, data)
    beta.start()
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-before-transfer-notes-committed:3"})
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    alpha.start()
    wait_for(lambda: sent_all(alpha, count), timeout=120, what="delivery after the kill")
    check_delivered(alpha, [beta], documents)
    assert beta.query("received_count") == count


def test_kill_during_a_batch_take_with_one_record(network) -> None:  # type: ignore[no-untyped-def]
    """Killed inside a batch of takes (node/outbox/intake.py, "One record per batch"): the
    batch's one record is in every folder, the first file moved in and the others not. The
    restart seals and records the moved one again from its share of the record, removes the
    folders whose file never moved (still in the outbox, taken again), and every document
    arrives exactly once; no spool folder is left."""
    count = 30
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    documents = {f"giay-moi-{i:02d}.txt": os.urandom(10240) for i in range(count)}
    for name, data in documents.items():  # dropped before the start: taken in batches
        alpha.drop("beta", name, data)
    beta.start()
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-during-batch-take:1"})
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    spooled = spool_entries(alpha)
    assert len(spooled) >= 2   # the cut batch's folders, one with its file moved in
    alpha.start()
    wait_for(lambda: sent_all(alpha, count), timeout=120, what="delivery after the kill")
    check_delivered(alpha, [beta], documents)
    assert "after a restart" in alpha.log_text()
    sealed = [e.message_id for e in alpha.query("audit_entries", kind="sealed")]
    assert len(sealed) == len(set(sealed)) == count
    wait_for(lambda: spool_entries(alpha) == [], timeout=30,
             what="an empty spool")


def test_kill_after_a_filed_documents_spool_folder_was_recycled(  # type: ignore[no-untyped-def]
        network, tmp_path) -> None:
    """Filing into sent/ empties a document's spool folder and renames it to a ready name for
    a later take (node/spool/ready.py), where it used to remove it. Killed right after that
    rename: the document is in sent/ with its receipt, and what is left of its folder is an
    empty dot-name that recovery skips; the restart sweeps it away, and the documents after
    it go once."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-after-spool-folder-recycled"})
    spool = alpha.home / "spool"
    documents = {"mot.pdf": os.urandom(SMALL)}
    alpha.drop("beta", "mot.pdf", documents["mot.pdf"])
    # A filing before the start's sweep is over removes the folder (nothing recycled): then
    # the next document's, once the first refill has swept and made folders ready, recycles.
    assert alpha.process is not None
    wait_for(lambda: alpha.process.poll() is not None or (
        sent_all(alpha, 1) and len(os.listdir(spool)) >= 2), timeout=60,
        what="the first document filed and folders made ready, or the kill")
    if alpha.process.poll() is None:
        documents["hai.pdf"] = os.urandom(SMALL)
        alpha.drop("beta", "hai.pdf", documents["hai.pdf"])
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    assert spool_entries(alpha) == []   # no take left, only dot-names
    recycled = [name for name in os.listdir(spool) if not os.listdir(spool / name)]
    assert recycled, sorted(os.listdir(spool))
    # The recycled folder's document is filed (the second may still be in the outbox, when
    # the first was recycled just as it was dropped: it is sent after the restart).
    assert "mot.pdf" in {path.name for path in (alpha.home / "sent" / "beta").glob("*.pdf")}
    alpha.start()
    documents["ba.pdf"] = os.urandom(SMALL)
    alpha.drop("beta", "ba.pdf", documents["ba.pdf"])
    wait_for(lambda: sent_all(alpha, len(documents)), timeout=60, what="delivery after the kill")
    check_delivered(alpha, [beta], documents)
    sealed = [e.message_id for e in alpha.query("audit_entries", kind="sealed")]
    assert len(sealed) == len(set(sealed)) == len(documents)
    # The start's sweep (at the first refill after the take) removed the recycled folder.
    wait_for(lambda: not any((spool / name).exists() for name in recycled), timeout=30,
             what="the recycled folder swept")
    wait_for(lambda: spool_entries(alpha) == [], timeout=30, what="no take left in the spool")


def test_kill_after_a_ready_folder_became_a_take_before_its_record(  # type: ignore[no-untyped-def]
        network, tmp_path) -> None:
    """A lone document's take renames a spool folder made ahead of time (node/spool/ready.py)
    and writes its record into the empty ``intake.json`` there. Killed between the rename and
    the record: the file is still in the outbox, the folder holds an empty record and no
    payload; the restart removes it (and the other ready folder left behind), takes the file
    again and sends it once."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    # The first take finds nothing ready (it uses mkdir); the second uses a ready folder.
    alpha.start(extra_env={"LIENTHONG_FAILPOINT": "sender-after-ready-folder-renamed"})
    first, second = os.urandom(SMALL), os.urandom(SMALL)
    alpha.drop("beta", "mot.pdf", first)
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what="the first document")
    wait_for(lambda: len(os.listdir(alpha.home / "spool")) >= 2, timeout=30,
             what="folders made ready after the first take")
    alpha.drop("beta", "hai.pdf", second)
    code = alpha.wait_exit(timeout=60)
    assert code == -9, f"alpha exited with {code}, not SIGKILL:\n{alpha.log_text()}"
    assert (alpha.outbox / "beta" / "hai.pdf").read_bytes() == second
    (cut,) = spool_entries(alpha)   # the renamed folder: an empty record, no payload
    assert os.listdir(alpha.home / "spool" / cut) == ["intake.json"]
    assert (alpha.home / "spool" / cut / "intake.json").stat().st_size == 0
    alpha.start()
    wait_for(lambda: sent_all(alpha, 2), timeout=60, what="delivery after the kill")
    check_delivered(alpha, [beta], {"mot.pdf": first, "hai.pdf": second})
    sealed = [e.message_id for e in alpha.query("audit_entries", kind="sealed")]
    assert len(sealed) == len(set(sealed)) == 2
    wait_for(lambda: spool_entries(alpha) == [], timeout=30, what="no take left in the spool")
    # Only folders made ready again, and the filed document's, recycled (empty).
    assert all(name.startswith(READY_PREFIX) for name in os.listdir(alpha.home / "spool"))
