"""The yearly review's evidence on real nodes: witnessed audit heads and reconciliation.

Real processes, TLS on loopback, SQLite files; the witness interval is shortened to one second
so heads travel within the test (docs/review.md).
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

from lienthong.config.loader import load_config
from lienthong.node.app.process import load_keys_and_passphrase
from lienthong.node.audit.heads import sign_head
from lienthong.node.store.audit_chain import GENESIS_HASH, entry_hash_of_stored
from tests.integration.harness import ROOT, TestNode, sent_all, wait_for

FAST_REVIEW = {"witness_interval = 86400": "witness_interval = 1",
               "reconcile_retry = 21600": "reconcile_retry = 5",
               "monthly_reconciliation = true": "monthly_reconciliation = false",
               # heads at stop too, as offices run them (the harness turns them off)
               "witness_at_stop = true": "witness_at_stop = true"}


def lienthong(node: TestNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args, "--home",
                           str(node.home)], capture_output=True, text=True, cwd=str(ROOT),
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


def rewrite_history(node: TestNode, seq: int) -> None:
    """What an office that controls its own database could do: edit entry ``seq``, recompute
    every hash after it, and re-sign its own heads with its own key."""
    config = load_config(node.home)
    keys, _ = load_keys_and_passphrase(config)
    db = sqlite3.connect(config.store.url.removeprefix("sqlite:///"))
    try:
        rows = db.execute("SELECT seq, time, kind, peer, message_id, digest, detail FROM audit "
                          "ORDER BY seq").fetchall()
        prev = GENESIS_HASH
        new_hashes = {}
        db.execute("UPDATE audit SET prev_hash = 'x' || seq")  # free the UNIQUE prev_hash
        for s, t, kind, peer, mid, digest, detail in rows:
            if s == seq:
                detail = json.dumps({"rewritten": True}, separators=(",", ":"))
            h = entry_hash_of_stored(prev, s, t, kind, peer, mid, digest, detail)
            db.execute("UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                       (detail, prev, h, s))
            new_hashes[s] = h
            prev = h
        heads = db.execute("SELECT seq, time FROM audit_heads").fetchall()
        for s, t in heads:
            token = sign_head(keys.identity, seq=s, hash=new_hashes[s], time=t)
            db.execute("UPDATE audit_heads SET hash = ?, signature = ? WHERE seq = ?",
                       (new_hashes[s], token, s))
        db.commit()
    finally:
        db.close()


def test_a_rewritten_history_is_caught_by_the_heads_peers_witnessed(network) -> None:  # type: ignore[no-untyped-def]
    """tinhuy's heads are witnessed by hdnd and ubnd; tinhuy then rewrites an entry, recomputes
    its chain and re-signs its own heads: its own checks pass, the peers' witnesses do not."""
    nodes = network("tinhuy", "hdnd", "ubnd", settings=FAST_REVIEW)
    for node in nodes.values():
        node.start()
    tinhuy = nodes["tinhuy"]
    tinhuy.drop("hdnd", "Quyết định 12.txt", b"QUYET DINH so 12\n")
    wait_for(lambda: sent_all(tinhuy, 1), timeout=60, what="the document to be delivered")
    peers = {nodes["hdnd"].node_id, nodes["ubnd"].node_id}
    wait_for(lambda: {w.witness_node_id for w in tinhuy.query("head_witnesses")} >= peers,
             timeout=60, what="both peers to witness a head of tinhuy")
    assert len(nodes["hdnd"].query("peer_heads", tinhuy.node_id)) >= 1
    tinhuy.stop()

    clean = lienthong(tinhuy, "audit", "verify", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert set(report["witnessed_by"]) == {"hdnd", "ubnd"} and report["witnesses"] >= 2

    witnessed = min(w.seq for w in tinhuy.query("head_witnesses"))
    rewrite_history(tinhuy, 2 if witnessed >= 2 else 1)

    result = lienthong(tinhuy, "audit", "verify", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    checks = {p["check"] for p in report["problems"]}
    assert checks == {"witnesses"}, report["problems"]  # its own chain and heads still pass
    assert report["signed_heads"] >= 1
    assert any("rewritten" in p["what"] and "hdnd" in p["what"] for p in report["problems"])
    assert any("ubnd" in p["what"] for p in report["problems"])

    # Deleting the witnesses as well hides nothing from the heads the peer holds.
    db = sqlite3.connect(load_config(tinhuy.home).store.url.removeprefix("sqlite:///"))
    db.execute("DELETE FROM head_witnesses")
    db.commit()
    db.close()
    export = lienthong(nodes["hdnd"], "audit", "witnesses", "--held-for", "tinhuy", "--json")
    assert export.returncode == 0, export.stderr
    held = tinhuy.home / "held-by-hdnd.json"
    held.write_text(export.stdout)
    alone = lienthong(tinhuy, "audit", "verify", "--json")
    with_peer = lienthong(tinhuy, "audit", "verify", "--json", "--peer-heads", str(held))
    assert alone.returncode == 0, alone.stdout  # nothing local is left to contradict it
    assert with_peer.returncode == 1, with_peer.stdout
    assert any("rewritten" in p["what"] for p in json.loads(with_peer.stdout)["problems"])

    listing = lienthong(nodes["hdnd"], "audit", "witnesses", "--json")
    rows = {row["peer"]: row for row in json.loads(listing.stdout)["peers"]}
    assert rows["tinhuy"]["we_hold_its_head"]["seq"] >= witnessed


def test_reconciliation_finds_a_document_deleted_from_one_side(network) -> None:  # type: ignore[no-untyped-def]
    """Two offices agree on what passed between them; then the recipient's record of one
    document is deleted, and the next reconciliation names exactly that document."""
    nodes = network("tinhuy", "hdnd", settings=FAST_REVIEW)
    for node in nodes.values():
        node.start()
    tinhuy, hdnd = nodes["tinhuy"], nodes["hdnd"]
    for i in range(3):
        tinhuy.drop("hdnd", f"Báo cáo {i}.txt", f"BAO CAO {i}\n".encode())
    hdnd.drop("tinhuy", "Công văn 7.txt", b"CONG VAN 7\n")
    wait_for(lambda: sent_all(tinhuy, 3) and sent_all(hdnd, 1), timeout=60,
             what="every document to be delivered")
    period = time.strftime("%Y-%m", time.gmtime())

    agreed = lienthong(tinhuy, "reconcile", "--peer", "hdnd", "--period", period, "--json",
                       "--wait", "60")
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert json.loads(agreed.stdout)["state"] == "agreed"

    received = hdnd.query("recent_received", 10)
    gone = next(r.message_id for r in received if r.name.startswith("Báo cáo 1"))
    db = sqlite3.connect(load_config(hdnd.home).store.url.removeprefix("sqlite:///"))
    db.execute("DELETE FROM received WHERE message_id = ?", (gone,))
    db.commit()
    db.close()

    result = lienthong(tinhuy, "reconcile", "--peer", "hdnd", "--period", period, "--json",
                       "--wait", "60")
    assert result.returncode == 1, result.stdout + result.stderr
    view = json.loads(result.stdout)
    assert view["state"] == "differs"
    assert [(d["kind"], d["message_id"]) for d in view["differences"]] == \
        [("missing-at-recipient", gone)]
    assert "reconciliation-differs" in tinhuy.audit_kinds()
    wait_for(lambda: "reconciliation-differs" in hdnd.audit_kinds(), timeout=30,
             what="hdnd to learn the difference from tinhuy's lists")

    status = lienthong(tinhuy, "status", "--json")
    warnings = {w["code"] for w in json.loads(status.stdout)["warnings"]}
    assert "reconciliation-differs" in warnings
