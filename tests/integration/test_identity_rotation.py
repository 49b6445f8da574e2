"""Identity rotation with real nodes: the continuation accepted by peers, a peer that was
offline during the rotation, and a daemon started at the passphrase prompt reloading its keys."""
from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import sys
import threading
import time

import nacl.signing

from lienthong.keys import jws
from lienthong.keys.card import read_card
from lienthong.node.audit.heads import HEAD_TYP
from lienthong.protocol.receipt import RECEIPT_TYP, verify_receipt
from tests.integration.harness import (
    ROOT,
    TestNode,
    check_delivered,
    inbox_documents,
    sent_all,
    wait_for,
)
from tests.integration.keyhelp import audit_verifies, cli, new_identity, peer_view


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
    # More than one offer window (delivery/links.py SMALL_WINDOW), so that some are offered after
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
    # gamma seals its document while alpha is down, so it is sealed to the old identity: started
    # together, alpha's continuation could reach gamma before gamma took the file (a full run
    # once saw the receipt signed by the new identity).
    gamma.start()
    wait_for(lambda: gamma.query("dispatches_by_state").get("sending", 0) == 1, timeout=30,
             what="gamma to seal its document for alpha's old identity")
    alpha.start()
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
        os.execve(sys.executable,
                  [sys.executable, "-m", "lienthong.node", "run", str(node.home)], env)
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
