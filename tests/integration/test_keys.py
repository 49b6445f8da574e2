"""Key lifecycle with real nodes: rotation during a transfer, revocation during a transfer,
backup and restore without duplicates, and the keystore checks ``lienthong run`` makes."""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import nacl.signing

from lienthong.keys.card import read_card
from lienthong.keys.keystore import load_keystore
from lienthong.protocol.envelope import decode_header
from lienthong.protocol.receipt import verify_receipt
from tests.integration.harness import (
    TestNode,
    check_delivered,
    inbox_documents,
    sent_all,
    wait_for,
    write_large_file,
)
from tests.integration.keyhelp import audit_verifies, cli, peer_view

BIG = 64 << 20


def receiving(node: TestNode) -> bool:
    """True once part of a document sits in node's partial-transfer folder."""
    folder = node.home / "tmp" / "staging"
    return folder.exists() and any(p.stat().st_size > 0 for p in folder.glob("*")
                                   if p.suffix != ".resume")


def freeze(node: TestNode) -> None:
    os.kill(node.pid, signal.SIGSTOP)


def thaw(node: TestNode) -> None:
    os.kill(node.pid, signal.SIGCONT)


def drop_big(node: TestNode, target: str, name: str) -> Path:
    """A large document in the outbox, and a copy elsewhere for the checker."""
    copy = node.home / f"copy-{name}"
    write_large_file(copy, BIG)
    folder = node.outbox / target
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(copy, node.home / f".{name}.part")
    os.rename(node.home / f".{name}.part", folder / name)
    return copy


def test_tls_and_encryption_rotation_during_a_transfer_loses_nothing(network) -> None:  # type: ignore[no-untyped-def]
    """Keys rotated mid-transfer: the transfer completes, the peer takes the new keys from
    the announcement, documents flow both ways afterwards, old receipts still verify."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    before = b"Cong van truoc khi doi khoa\n" * 50
    alpha.drop("beta", "before.txt", before)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the first document")
    old_card = read_card(alpha.card_path.read_text())
    big = drop_big(alpha, "beta", "big.bin")
    wait_for(lambda: receiving(beta), timeout=60, what="the large transfer to start",
             interval=0.01)
    freeze(beta)  # hold the transfer open, mid-stream, while the keys change
    try:
        rotated = cli("keys", "rotate", "--tls", "--encryption", "--home", str(alpha.home))
        assert "New TLS key" in rotated.stdout
        wait_for(lambda: "key-update-sent" in alpha.audit_kinds(), timeout=8,
                 what="alpha to announce its new keys")
    finally:
        thaw(beta)
    new_card = read_card(alpha.card_path.read_text())
    assert new_card.tls_spki_sha256 != old_card.tls_spki_sha256
    assert new_card.encryption_kid != old_card.encryption_kid
    wait_for(lambda: sent_all(alpha, 3), timeout=90, what="big.bin and the announcement")
    wait_for(lambda: "key-update-complete" in alpha.audit_kinds(), timeout=30,
             what="the announcement to complete")
    check_delivered(alpha, [beta], {"before.txt": before, "big.bin": big})
    assert not (alpha.home / "keys" / "keystore.previous.json").exists()

    peer = peer_view(beta, alpha)
    assert peer.current("tls").value == new_card.tls_spki_sha256
    assert peer.current("encryption").kid == new_card.encryption_kid
    history = beta.query("key_history", alpha.node_id)
    assert [k.kid for k in history if k.kind == "encryption"] == [
        old_card.encryption_kid, new_card.encryption_kid]
    directory = beta.query("directory")
    assert directory.node_for_tls_pin(new_card.tls_spki_sha256) == alpha.node_id
    assert directory.node_for_tls_pin(old_card.tls_spki_sha256) == alpha.node_id  # grace
    assert beta.query("get_peer", "alpha").card.strip() == new_card.token

    reply = b"Tra loi sau khi doi khoa\n" * 40
    beta.drop("alpha", "reply.txt", reply)
    wait_for(lambda: sent_all(beta, 1), timeout=30, what="beta's reply")
    check_delivered(beta, [alpha], {"reply.txt": reply})
    (dispatch,) = beta.query("recent_dispatches", 10)
    assert decode_header(dispatch.header_token).key_for(alpha.node_id).kid == \
        new_card.encryption_kid

    assert alpha.stop() == 0  # a restart: only the new keys exist any more
    alpha.start()
    after = b"Cong van sau khi khoi dong lai\n" * 30
    alpha.drop("beta", "after.txt", after)
    wait_for(lambda: sent_all(alpha, 4), timeout=30, what="a document over the new TLS key")
    check_delivered(alpha, [beta], {"before.txt": before, "big.bin": big, "after.txt": after})
    assert "security-refused" not in beta.audit_kinds()
    assert "security-refused" not in alpha.audit_kinds()
    audit_verifies(alpha)
    audit_verifies(beta)


def test_rotation_reaches_a_peer_that_was_down_over_the_old_tls_key(network) -> None:  # type: ignore[no-untyped-def]
    """A peer offline during the rotation gets the queued document and the announcement over
    the old TLS key when it returns, then talks to the rotated node over the new one."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    queued = b"Gui khi so tu phap dang tat may\n" * 20
    alpha.drop("beta", "queued.txt", queued)
    wait_for(lambda: alpha.query("dispatches_by_state")["sending"] == 1, timeout=30,
             what="the document to be sealed")
    cli("keys", "rotate", "--tls", "--home", str(alpha.home))
    wait_for(lambda: "key-update-sent" in alpha.audit_kinds(), timeout=10,
             what="alpha to queue its announcement")
    assert (alpha.home / "keys" / "keystore.previous.json").exists()
    status = cli("keys", "status", "--home", str(alpha.home)).stdout
    assert "beta" in status and "waiting" in status
    beta.start()
    wait_for(lambda: "key-update-complete" in alpha.audit_kinds(), timeout=30,
             what="beta to receive the announcement")
    check_delivered(alpha, [beta], {"queued.txt": queued})
    assert not (alpha.home / "keys" / "keystore.previous.json").exists()
    new_pin = read_card(alpha.card_path.read_text()).tls_spki_sha256
    assert peer_view(beta, alpha).current("tls").value == new_pin
    back = b"Da nhan\n" * 10
    beta.drop("alpha", "back.txt", back)
    wait_for(lambda: sent_all(beta, 1), timeout=30, what="beta's answer over the new key")
    check_delivered(beta, [alpha], {"back.txt": back})
    assert "security-refused" not in beta.audit_kinds()  # never dialled with a key it refuses
    assert "security-refused" not in alpha.audit_kinds()


def test_revoke_during_a_transfer_drops_parks_refuses_and_keeps_old_receipts(network) -> None:  # type: ignore[no-untyped-def]
    """Revoking a peer mid-transfer drops the connection, parks the document in failed/ with
    the reason, refuses the peer's next handshake, and keeps earlier receipts verifiable."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    before = b"Van ban gui truoc khi thu hoi\n" * 30
    alpha.drop("beta", "before.txt", before)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the document sent before revocation")
    drop_big(alpha, "beta", "big.bin")
    wait_for(lambda: receiving(beta), timeout=60, what="the large transfer to start",
             interval=0.01)
    freeze(beta)
    try:
        cli("peers", "revoke", "beta", "--reason", "máy bị mất cắp", "--yes",
            "--home", str(alpha.home))
        reason_file = alpha.home / "failed" / "big.bin.reason.txt"
        wait_for(reason_file.exists, timeout=10, what="big.bin to be parked in failed/")
    finally:
        thaw(beta)
    assert "máy bị mất cắp" in reason_file.read_text(encoding="utf-8")
    assert (alpha.home / "failed" / "big.bin").stat().st_size == BIG
    assert "delivery-parked" in alpha.audit_kinds()
    time.sleep(2)
    assert set(inbox_documents(beta, "alpha")) == {"before.txt"}  # the transfer was cut

    beta.drop("alpha", "after.txt", b"Ai do dung may bi mat\n")
    wait_for(lambda: "security-refused" in alpha.audit_kinds(), timeout=30,
             what="alpha to refuse beta's handshake")
    time.sleep(1)
    assert not (alpha.inbox / "beta").exists() or inbox_documents(alpha, "beta") == {}
    assert beta.query("dispatches_by_state")["sent"] == 0

    (dispatch,) = [d for d in alpha.query("recent_dispatches", 10) if d.name == "before.txt"]
    (delivery,) = dispatch.deliveries
    identity = [k for k in alpha.query("key_history", beta.node_id) if k.kind == "identity"]
    info = verify_receipt(delivery.receipt, nacl.signing.VerifyKey(identity[0].public_bytes),
                          expected=decode_header(dispatch.header_token), recipient=beta.node_id,
                          sha256=dispatch.sha256, size=dispatch.size)
    assert info.message_id == dispatch.message_id
    audit_verifies(alpha)


def test_backup_restore_resends_only_as_have_and_duplicates_nothing(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A node restored from a backup taken before later deliveries resends what it thinks
    is queued; the peer answers HAVE, no document arrives twice, and new ones still flow.

    Time: the daemons read the real clock, which cannot be moved across processes, so "an
    hour earlier" is represented by the order of events, not by the clock: the backup is
    taken, then more documents are delivered and the peer is restarted, then the node is
    lost (SIGKILL, home deleted) and restored from that older backup. Nothing in delivery
    or deduplication depends on elapsed time, only on message IDs and the store's state.
    """
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    docs = {f"cv-{i}.txt": f"Cong van so {i}\n".encode() * 40 for i in range(1, 6)}
    alpha.drop("beta", "cv-1.txt", docs["cv-1.txt"])
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="cv-1")
    assert beta.stop() == 0
    for name in ("cv-2.txt", "cv-3.txt"):
        alpha.drop("beta", name, docs[name])
    wait_for(lambda: alpha.query("dispatches_by_state")["sending"] == 2, timeout=30,
             what="cv-2 and cv-3 to be queued")
    archive = tmp_path / "alpha.backup"
    cli("backup", str(archive), "--home", str(alpha.home))  # while alpha runs
    assert archive.stat().st_mode & 0o077 == 0
    queued_at_backup = {d.message_id for d in alpha.query("recent_dispatches", 10)
                        if d.state == "sending"}

    beta.start()
    alpha.drop("beta", "cv-4.txt", docs["cv-4.txt"])
    wait_for(lambda: sent_all(alpha, 4), timeout=30, what="cv-2..cv-4 after the backup")
    check_delivered(alpha, [beta], {n: docs[n] for n in ("cv-1.txt", "cv-2.txt", "cv-3.txt",
                                                         "cv-4.txt")})

    alpha.kill()  # the machine is lost
    passphrase = (alpha.home / "keys" / "passphrase").read_text().strip()
    shutil.rmtree(alpha.home)
    restored_home = tmp_path / "alpha-restored"
    out = cli("restore", str(archive), str(restored_home),
              env={"LIENTHONG_PASSPHRASE": passphrase}).stdout
    assert alpha.node_id in out
    assert (restored_home / "keys" / "keystore.json").stat().st_mode & 0o777 == 0o600
    assert (restored_home / "keys").stat().st_mode & 0o777 == 0o700
    restored = TestNode("alpha", restored_home, alpha.node_id, alpha.port,
                        restored_home / "alpha.card")
    network_nodes = [restored]
    try:
        assert {d.message_id for d in restored.query("recent_dispatches", 10)
                if d.state == "sending"} == queued_at_backup
        restored.start()
        wait_for(lambda: sent_all(restored, 3), timeout=60,
                 what="the restored node to resend cv-2 and cv-3")
        duplicates = {e.message_id for e in beta.query("audit_entries") if e.kind == "duplicate"}
        assert queued_at_backup <= duplicates  # answered HAVE, not stored again
        restored.drop("beta", "cv-5.txt", docs["cv-5.txt"])
        wait_for(lambda: sent_all(restored, 4), timeout=30, what="a new document after restore")
        ids = [d.message_id for d in restored.query("recent_dispatches", 10)]
        assert len(ids) == len(set(ids))
        check_delivered(restored, [beta], docs)  # all five, each exactly once
        assert "restored" in restored.audit_kinds()
    finally:
        for node in network_nodes:
            node.kill()


def test_wrong_passphrase_and_tampered_keystore_stop_lienthong_run(network) -> None:  # type: ignore[no-untyped-def]
    """``lienthong run`` refuses a wrong passphrase and an altered keystore in one sentence."""
    alpha = network("alpha", enrol=False)["alpha"]
    home = str(alpha.home)
    wrong = cli("run", home, env={"LIENTHONG_PASSPHRASE": "not the passphrase"}, check=False)
    assert wrong.returncode == 2
    assert "wrong passphrase, or the keystore was altered" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    keystore = alpha.home / "keys" / "keystore.json"
    text = keystore.read_text()
    position = text.index('"ciphertext":"') + 20
    flipped = "A" if text[position] != "A" else "B"
    keystore.write_text(text[:position] + flipped + text[position + 1:])
    tampered = cli("run", home, check=False)
    assert tampered.returncode == 2
    assert "wrong passphrase, or the keystore was altered" in tampered.stderr
    keystore.write_text('{"format": "lienthong-keystore", "version": 1')
    damaged = cli("run", home, check=False)
    assert damaged.returncode == 2 and "damaged or truncated" in damaged.stderr


def test_group_readable_key_material_is_refused_at_start(network) -> None:  # type: ignore[no-untyped-def]
    """A keystore or passphrase file others can read stops the node, naming the chmod."""
    alpha = network("alpha", enrol=False)["alpha"]
    keystore = alpha.home / "keys" / "keystore.json"
    os.chmod(keystore, 0o640)
    result = cli("run", str(alpha.home), check=False)
    assert result.returncode == 2
    assert f"chmod 600 {keystore}" in result.stderr
    os.chmod(keystore, 0o600)
    passphrase = alpha.home / "keys" / "passphrase"
    os.chmod(passphrase, 0o644)
    result = cli("run", str(alpha.home), check=False)
    assert result.returncode == 2 and f"chmod 600 {passphrase}" in result.stderr
    os.chmod(passphrase, 0o600)
    os.chmod(alpha.home / "keys", 0o750)
    result = cli("run", str(alpha.home), check=False)
    assert result.returncode == 2 and "chmod 700" in result.stderr
    os.chmod(alpha.home / "keys", 0o700)
    assert load_keystore(keystore, passphrase.read_bytes().strip()).node_id == alpha.node_id
