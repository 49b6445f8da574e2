"""Key lifecycle with real nodes: rotation during a transfer, revocation during a transfer,
backup and restore without duplicates, and the keystore checks ``lienthong run`` makes."""
from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlite3

import nacl.signing

from keys import jws
from keys.card import read_card
from keys.keystore import load_keystore
from protocol.envelope import decode_header
from node.audit_heads import HEAD_TYP
from protocol.receipt import RECEIPT_TYP, verify_receipt
from tests.integration.harness import (
    ROOT, TestNode, check_delivered, inbox_documents, sent_all, wait_for, write_large_file,
)

BIG = 64 << 20


def cli(*args: str, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``lienthong`` command line in a separate process, as an IT officer would."""
    result = subprocess.run([sys.executable, "-m", "node", *args], capture_output=True,
                            text=True, timeout=120, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
    if check:
        assert result.returncode == 0, f"lienthong {' '.join(args)}:\n{result.stderr}"
    return result


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


def peer_view(node: TestNode, other: TestNode):  # type: ignore[no-untyped-def]
    """``other`` as ``node``'s directory sees it (a Peer value)."""
    return node.query("peer_by_node_id", other.node_id).peer


def audit_verifies(node: TestNode) -> str:
    result = cli("audit", "verify", "--home", str(node.home), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def new_identity(node: TestNode) -> str:
    """The node ID in the node's card, which the daemon rewrites when it switches identity."""
    return read_card(node.card_path.read_text()).node_id


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
                          expected=decode_header(dispatch.header_token), recipient=beta.node_id)
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


def test_identity_rotation_is_accepted_as_a_continuation(network) -> None:  # type: ignore[no-untyped-def]
    """An identity rotation signed by the old identity re-keys the peer to the new node ID;
    documents flow under the new identity, receipts signed by the old one still verify, and
    ``audit verify`` on the rotated node accepts the heads its former identity signed (and
    names a tampered one)."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    first = b"Truoc khi doi danh tinh\n" * 20
    beta.drop("alpha", "first.txt", first)
    wait_for(lambda: sent_all(beta, 1), timeout=30, what="a receipt signed by the old identity")
    assert alpha.stop() == 0  # a shutdown head, signed by the old identity
    alpha.start()
    old_id = alpha.node_id
    out = cli("keys", "rotate", "--identity", "--yes", "--home", str(alpha.home)).stdout
    wait_for(lambda: "identity-rotated" in alpha.audit_kinds(), timeout=30,
             what="alpha to switch to its new identity")
    new_id = new_identity(alpha)
    assert new_id != old_id and new_id in out
    wait_for(lambda: "key-update-complete" in alpha.audit_kinds(), timeout=30,
             what="beta to receipt the continuation")
    peer = peer_view(beta, TestNode("alpha", alpha.home, new_id, alpha.port, alpha.card_path))
    assert peer.name == "alpha" and peer.node_id == new_id
    assert [k.kid for k in peer.all_identity_keys()] == [old_id, new_id]
    assert [k.kind for k in beta.query("key_history", old_id)] == ["identity", "encryption", "tls"]
    assert beta.query("peer_by_node_id", old_id) is None
    alpha.node_id = new_id
    second = b"Sau khi doi danh tinh\n" * 20
    beta.drop("alpha", "second.txt", second)
    wait_for(lambda: sent_all(beta, 2), timeout=30, what="a document to the new identity")
    assert inbox_documents(alpha, "beta") == {"first.txt": first, "second.txt": second}
    history = {k.kid: k for k in beta.query("key_history", new_id) if k.kind == "identity"}
    for name, signer in (("first.txt", old_id), ("second.txt", new_id)):
        token = (beta.home / "sent" / "alpha" / f"{name}.alpha.receipt.jws").read_text().strip()
        info = verify_receipt(token, nacl.signing.VerifyKey(history[signer].public_bytes),
                              recipient=signer)
        assert info.recipient == signer
    reply = b"Tra loi tu danh tinh moi\n" * 20
    alpha.drop("beta", "reply.txt", reply)
    wait_for(lambda: sent_all(alpha, 2), timeout=30, what="a document from the new identity")
    check_delivered(alpha, [beta], {"reply.txt": reply})
    assert (alpha.home / "keys" / "keystore.next.json").exists() is False
    assert alpha.stop() == 0  # a shutdown head, signed by the new identity
    audit_verifies(beta)  # alpha's receipt for first.txt, signed by the old identity
    report = audit_verifies(alpha)
    assert f"{old_id}: " in report and f"{new_id}: " in report  # heads by both identities

    heads = alpha.query("audit_heads")
    old_heads = [h for h in heads if jws.decode(h.signature, HEAD_TYP).kid == old_id]
    assert old_heads and len(old_heads) < len(heads)
    victim = old_heads[0]
    with sqlite3.connect(alpha.home / "state" / "lienthong.db") as raw:
        raw.execute("UPDATE audit_heads SET hash = ? WHERE seq = ?",
                    ("0" * 64, victim.seq))
    broken = cli("audit", "verify", "--home", str(alpha.home), check=False)
    assert broken.returncode == 1
    assert f"signed head at audit entry {victim.seq}" in broken.stdout
    assert f"(identity {old_id})" in broken.stdout


def test_identity_rotation_reaches_a_peer_that_was_offline_and_loses_nothing(network) -> None:  # type: ignore[no-untyped-def]
    """alpha rotates its identity while gamma is stopped, with documents queued both ways.
    alpha switches at once and trades documents with beta straight away; when gamma returns,
    everything queued across the switch arrives exactly once with receipts that verify, gamma
    learns the continuation, and ``audit verify`` passes on all three."""
    # One large transfer at a time, so the last large documents queued before the rotation are
    # offered to gamma well after the (small, urgent) continuation has been applied there.
    nodes = network("alpha", "beta", "gamma",
                    settings={"max_parallel_transfers = 4": "max_parallel_transfers = 1"})
    alpha, beta, gamma = nodes["alpha"], nodes["beta"], nodes["gamma"]
    for node in nodes.values():
        node.start()
    warm = {"chao.txt": b"Chao gamma\n" * 10}
    alpha.drop("gamma", "chao.txt", warm["chao.txt"])
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="a first document to gamma")
    assert gamma.stop() == 0

    # Queued before the rotation, both ways: signed by / addressed to alpha's old identity.
    # More than one offer window (node.links.SMALL_WINDOW), so that some are offered after
    # gamma has applied the continuation: gamma must accept the old signature then too.
    to_gamma = {f"truoc-a-{i}.txt": f"Gui gamma truoc khi doi {i}\n".encode() * 30
                for i in range(40)}
    to_gamma.update({f"lon-{i}.bin": os.urandom(2 << 20) for i in range(3)})
    for name, data in to_gamma.items():
        alpha.drop("gamma", name, data)
    wait_for(lambda: alpha.query("dispatches_by_state").get("sending", 0) == 43, timeout=60,
             what="alpha's documents for gamma to be queued")
    from_gamma = {"truoc-g.txt": b"Gamma gui alpha khi offline\n" * 30}
    old_id = alpha.node_id
    cli("keys", "rotate", "--identity", "--yes", "--home", str(alpha.home))
    wait_for(lambda: "identity-rotated" in alpha.audit_kinds(), timeout=30,
             what="alpha to switch to its new identity")
    new_id = new_identity(alpha)
    assert new_id != old_id
    alpha.node_id = new_id

    # At once, both ways with beta (which receipts the continuation meanwhile).
    to_beta = {"ngay-a.txt": b"Alpha gui beta ngay sau khi doi\n" * 20}
    from_beta = {"ngay-b.txt": b"Beta gui alpha ngay sau khi doi\n" * 20}
    alpha.drop("beta", "ngay-a.txt", to_beta["ngay-a.txt"])
    beta.drop("alpha", "ngay-b.txt", from_beta["ngay-b.txt"])
    wait_for(lambda: sent_all(beta, 1), timeout=30, what="beta's document to the new alpha")
    wait_for(lambda: sent_all(alpha, 2), timeout=30,  # chao.txt and ngay-a.txt
             what="alpha's document to beta")
    check_delivered(alpha, [beta], to_beta)
    check_delivered(beta, [alpha], from_beta)
    assert "key-update-complete" not in alpha.audit_kinds()  # gamma has not receipted

    # A document alpha seals for gamma after the switch (new identity), and one gamma queued
    # while stopped, addressed to alpha's old identity (gamma never heard of the rotation).
    to_gamma["sau-a.txt"] = b"Gui gamma sau khi doi\n" * 30
    alpha.drop("gamma", "sau-a.txt", to_gamma["sau-a.txt"])
    gamma.drop("alpha", "truoc-g.txt", from_gamma["truoc-g.txt"])
    # A restart in between: alpha must find its former identity's keystore and who still
    # knows it by the old node ID again (keys/keystore.former-*.json, state/key-update.json).
    assert alpha.stop() == 0
    assert list((alpha.home / "keys").glob("keystore.former-*.json"))
    alpha.start()
    gamma.start()
    wait_for(lambda: "key-update-complete" in alpha.audit_kinds(), timeout=60,
             what="gamma to receipt the continuation")
    wait_for(lambda: sent_all(gamma, 1), timeout=60, what="gamma's queued document")
    wait_for(lambda: sent_all(alpha, 47), timeout=90,
             what="alpha's documents and the continuation (to beta and gamma)")
    check_delivered(alpha, [gamma], {**warm, **to_gamma})
    check_delivered(gamma, [alpha], from_gamma)
    check_delivered(alpha, [beta], to_beta)
    check_delivered(beta, [alpha], from_beta)
    assert peer_view(gamma, alpha).node_id == new_id
    assert alpha.query("dispatches_by_state").get("failed", 0) == 0
    for node in (beta, gamma):
        assert node.query("dispatches_by_state").get("failed", 0) == 0
        assert "security-refused" not in node.audit_kinds()
    assert not (alpha.home / "failed").exists() or not any((alpha.home / "failed").iterdir())
    # Some of alpha's old-identity documents reached gamma after it had applied the
    # continuation (so this test exercises that acceptance, not only the easy order).
    kinds_peers = [(e.kind, e.peer) for e in gamma.query("audit_entries")]
    continued = kinds_peers.index(("peer-identity-continued", new_id))
    assert ("received", old_id) in kinds_peers[continued:], (
        "every old-identity document reached gamma before the continuation: "
        f"{[kind for kind, _ in kinds_peers[continued - 5:]]}")
    # gamma's document was addressed to the old identity: receipted by it.
    receipt = (gamma.home / "sent" / "alpha" / "truoc-g.txt.alpha.receipt.jws").read_text()
    assert jws.decode(receipt.strip(), RECEIPT_TYP).kid == old_id
    for node in nodes.values():
        assert node.stop() == 0
    for node in nodes.values():
        audit_verifies(node)


def _run_at_a_prompt(node: TestNode, passphrase: str) -> int:
    """Start ``node`` on a pseudo-terminal and type the passphrase at its prompt, as someone
    at the console would; return the child's pid (its output is drained in a thread)."""
    env = {k: v for k, v in os.environ.items() if k != "LIENTHONG_PASSPHRASE"}
    env["PYTHONPATH"] = str(ROOT)
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the node
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "node", "run", str(node.home)], env)
    seen = b""
    deadline = time.monotonic() + 30
    while b"passphrase" not in seen.lower():
        assert time.monotonic() < deadline, f"no passphrase prompt: {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 1024)
    os.write(fd, passphrase.encode() + b"\n")

    def drain() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    wait_for(node._listening, timeout=30, what=f"{node.name} to listen")
    return pid


def test_a_node_started_at_the_prompt_reloads_its_keys_after_a_rotation(network) -> None:  # type: ignore[no-untyped-def]
    """A daemon given its passphrase at a terminal prompt (no passphrase file) keeps it, so a
    ``keys rotate`` is announced and completed without a restart (never key-update-blocked)."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    secret = alpha.home / "keys" / "passphrase"
    passphrase = secret.read_text().strip()
    config = alpha.home / "lienthong.toml"
    config.write_text(config.read_text().replace('passphrase_file = "keys/passphrase"\n', ""))
    secret.unlink()
    beta.start()
    pid = _run_at_a_prompt(alpha, passphrase)
    try:
        cli("keys", "rotate", "--tls", "--encryption", "--home", str(alpha.home),
            env={"LIENTHONG_PASSPHRASE": passphrase})
        wait_for(lambda: "key-update-complete" in alpha.audit_kinds(), timeout=30,
                 what="the prompted node to announce its new keys")
        assert "key-update-blocked" not in alpha.audit_kinds()
        new_pin = read_card(alpha.card_path.read_text()).tls_spki_sha256
        assert peer_view(beta, alpha).current("tls").value == new_pin
        note = b"Sau khi doi khoa, khong khoi dong lai\n" * 10
        beta.drop("alpha", "note.txt", note)
        wait_for(lambda: sent_all(beta, 1), timeout=30, what="a document over the new keys")
        check_delivered(beta, [alpha], {"note.txt": note})
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
