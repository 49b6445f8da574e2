"""Documents as the offices know them, between real nodes: metadata from a sidecar and the
folder, the confidentiality guard, messages, processing statuses chained to receipts, recall,
and a flash document overtaking a large one in transfer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import nacl.signing

from lienthong.keys.card import read_card
from lienthong.protocol.status import check_chain, verify_status
from tests.integration.harness import (
    ROOT,
    TestNode,
    check_delivered,
    sent_all,
    sidecar,
    wait_for,
    write_large_file,
)

RESOLUTION = "NGHỊ QUYẾT số 12-NQ/TU của Ban Thường vụ Tỉnh ủy về chuyển đổi số.\n".encode() * 50
SIDECAR = """\
# Văn bản gửi Hội đồng và Ủy ban (council)
number = "12-NQ/TU"
issuer = "Tỉnh ủy"
date = 2026-11-20
subject = "Về chuyển đổi số giai đoạn 2026-2030"
signer = "Nguyễn Văn An"
urgency = "Hỏa tốc"
due = "30/11/2026"
"""


def cli(node: TestNode, *args: str) -> subprocess.CompletedProcess:
    """Run ``lienthong ARGS --home NODE`` the way a clerk would (no passphrase needed)."""
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args, "--home", str(node.home)],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          cwd=str(ROOT), timeout=60, check=False)


def drop_with_sidecar(node: TestNode, folder: str, name: str, data: bytes, sidecar: str) -> None:
    """A document system writes the sidecar first, then the document (temp name + rename)."""
    target = node.outbox / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / f".{name}.meta.toml.part").write_text(sidecar, encoding="utf-8")
    os.rename(target / f".{name}.meta.toml.part", target / f"{name}.meta.toml")
    (target / f".{name}.part").write_bytes(data)
    os.rename(target / f".{name}.part", target / name)


def identity_key(node: TestNode) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(read_card(node.card_path.read_text()).identity_public)


def documents_sent(node: TestNode) -> list[Any]:
    return [d for d in node.query("recent_dispatches", 50)
            if d.meta.get("kind") not in ("status", "recall")]


def only_dispatch(node: TestNode) -> Any:
    documents = documents_sent(node)
    assert len(documents) == 1, documents
    return documents[0]


def audit_of(node: TestNode, kind: str) -> list[dict[str, Any]]:
    return [dict(json.loads(e.detail_json), peer=e.peer, message_id=e.message_id)
            for e in node.query("audit_entries", kind=kind)]


def failed_reason(node: TestNode, name: str) -> str:
    return (node.home / "failed" / f"{name}.reason.txt").read_text(encoding="utf-8")


def test_numbered_resolution_to_a_group_is_registered_and_completed(network) -> None:  # type: ignore[no-untyped-def]
    """12-NQ/TU, typed by its folder, flash by its sidecar, reaches both council members with
    its metadata; one registers it (number 152/VP), the other completes it; the sender holds
    both statuses, verified and chained to the receipt each office gave."""
    nodes = network("tinhuy", "hdnd", "ubnd", groups={"tinhuy": {"council": ["hdnd", "ubnd"]}})
    tinhuy, hdnd, ubnd = nodes["tinhuy"], nodes["hdnd"], nodes["ubnd"]
    for node in nodes.values():
        node.start()
    name = "Nghị quyết 12-NQ-TU.txt"
    drop_with_sidecar(tinhuy, "council/nghi-quyet", name, RESOLUTION, SIDECAR)
    wait_for(lambda: sent_all(tinhuy, 1), timeout=30, what="both receipts")
    check_delivered(tinhuy, [hdnd, ubnd], {name: RESOLUTION})
    dispatch = only_dispatch(tinhuy)
    mid = dispatch.message_id
    assert dispatch.priority == 0 and dispatch.meta["urgency"] == "flash"
    for office in (hdnd, ubnd):
        meta = json.loads(sidecar(office.inbox / "tinhuy" / name).read_text())
        assert meta["message_id"] == mid
        assert {k: meta["meta"][k] for k in ("kind", "type", "number", "date", "due", "signer")} \
            == {"kind": "document", "type": "resolution", "number": "12-NQ/TU",
                "date": "2026-11-20", "due": "2026-11-30", "signer": "Nguyễn Văn An"}
    sent = tinhuy.home / "sent" / "council"
    assert (sent / f"{name}.meta.toml").read_text(encoding="utf-8") == SIDECAR
    assert not any((tinhuy.outbox / "council" / "nghi-quyet").iterdir())

    marked = cli(hdnd, "mark", mid, "vào sổ", "--number", "152/VP", "--wait", "20")
    assert marked.returncode == 0, marked.stderr
    done = cli(ubnd, "mark", mid, "completed", "--note", "Đã triển khai tới các sở", "--wait", "20")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(tinhuy.query("statuses_for", mid)) == 2, timeout=30,
             what="both statuses at the sender")
    receipts = {d.peer_node_id: d.receipt for d in tinhuy.query("get_dispatch", mid).deliveries}
    got = {}
    for row in tinhuy.query("statuses_for", mid):
        office = hdnd if row.peer_node_id == hdnd.node_id else ubnd
        info = verify_status(row.token, identity_key(office), recipient=office.node_id,
                             sender=tinhuy.node_id, message_id=mid)
        check_chain(info, receipts[office.node_id])
        got[office.name] = (info.status, info.register_number, info.note)
    assert got == {"hdnd": ("registered", "152/VP", ""),
                   "ubnd": ("completed", None, "Đã triển khai tới các sở")}
    received = {e["peer"]: (e["status"], e["chained"]) for e in audit_of(tinhuy, "status-received")}
    assert received == {hdnd.node_id: ("registered", True), ubnd.node_id: ("completed", True)}
    assert [e["number"] for e in audit_of(tinhuy, "document-metadata")] == ["12-NQ/TU"]
    assert [e["status"] for e in audit_of(hdnd, "status-sent")] == ["registered"]
    tracked = json.loads(cli(tinhuy, "track", mid, "--json").stdout)
    assert {r["office"]: [(s["status"], s["chained_to_receipt"]) for s in r["statuses"]]
            for r in tracked["recipients"]} == {"hdnd": [("registered", True)],
                                                "ubnd": [("completed", True)]}
    again = cli(ubnd, "mark", mid, "in-progress")
    assert again.returncode == 2 and "already 'completed'" in again.stderr


def test_secret_document_is_refused_unless_allowed_for_that_peer(network) -> None:  # type: ignore[no-untyped-def]
    """'tối mật' to beta is refused into failed/ with the reason and an audit event; to gamma,
    which [confidentiality] allows (at alpha, and at gamma for alpha), it is delivered and
    marked secret."""
    nodes = network("alpha", "beta", "gamma")
    alpha, beta, gamma = nodes["alpha"], nodes["beta"], nodes["gamma"]
    for node, peer in ((alpha, "gamma"), (gamma, "alpha")):
        config = node.home / "lienthong.toml"
        config.write_text(config.read_text() + f'\n[confidentiality]\n{peer} = ["secret"]\n')
    for node in nodes.values():
        node.start()
    secret = 'number = "03-KL/TU"\nconfidentiality = "tối mật"\n'
    drop_with_sidecar(alpha, "beta", "ket-luan.txt", b"Ket luan so 03-KL/TU\n", secret)
    drop_with_sidecar(alpha, "gamma", "ket-luan.txt", b"Ket luan so 03-KL/TU\n", secret)
    wait_for(lambda: (alpha.home / "failed" / "ket-luan.txt.reason.txt").exists(), timeout=30,
             what="the refusal")
    # Waited for in gamma's inbox: the node's signed audit heads are dispatches too.
    wait_for(lambda: (gamma.inbox / "alpha" / "ket-luan.txt.meta.json").exists(), timeout=30,
             what="gamma's copy")
    reason = failed_reason(alpha, "ket-luan.txt")
    assert "confidentiality" in reason and "secret" in reason and "beta" in reason
    assert (alpha.home / "failed" / "ket-luan.txt").read_bytes() == b"Ket luan so 03-KL/TU\n"
    assert (alpha.home / "failed" / "ket-luan.txt.meta.toml").read_text(encoding="utf-8") == secret
    assert [e["code"] for e in audit_of(alpha, "refused")] == ["confidentiality-refused"]
    meta = json.loads((gamma.inbox / "alpha" / "ket-luan.txt.meta.json").read_text())
    assert meta["meta"]["confidentiality"] == "secret"
    assert not (beta.inbox / "alpha").exists()


def test_a_receiver_refuses_a_secret_document_its_own_policy_does_not_allow(network) -> None:  # type: ignore[no-untyped-def]
    """alpha may send secret documents to beta, but beta's own [confidentiality] does not
    accept them from alpha: beta refuses the offer (audited), nothing reaches its inbox, and
    alpha parks the document in failed/ with beta's reason."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    config = alpha.home / "lienthong.toml"
    config.write_text(config.read_text() + '\n[confidentiality]\nbeta = ["secret"]\n')
    for node in nodes.values():
        node.start()
    secret = 'number = "04-KL/TU"\nconfidentiality = "tối mật"\n'
    drop_with_sidecar(alpha, "beta", "ket-luan-04.txt", b"Ket luan so 04-KL/TU\n", secret)
    wait_for(lambda: (alpha.home / "failed" / "ket-luan-04.txt.reason.txt").exists(),
             timeout=30, what="beta's refusal to reach alpha")
    reason = failed_reason(alpha, "ket-luan-04.txt")
    assert "beta refused it" in reason and "does not accept secret documents from alpha" in reason
    assert "confidentiality-refused" in reason
    assert (alpha.home / "failed" / "ket-luan-04.txt").read_bytes() == b"Ket luan so 04-KL/TU\n"
    assert [e["code"] for e in audit_of(alpha, "rejected-by-peer")] == ["confidentiality-refused"]
    assert [e["code"] for e in audit_of(beta, "rejected")] == ["confidentiality-refused"]
    assert not (beta.inbox / "alpha").exists() or not any((beta.inbox / "alpha").iterdir())


def test_invalid_sidecar_and_unknown_folder_are_refused_with_the_field_named(network) -> None:  # type: ignore[no-untyped-def]
    """An unknown urgency names the field and the allowed values; an unknown type folder lists
    the types; nothing reaches the peer."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    drop_with_sidecar(alpha, "beta", "to-trinh.txt", b"To trinh\n", 'urgency = "rất gấp"\n')
    alpha.drop("beta/quyet-dinh-sai", "qd.txt", b"Quyet dinh\n")
    wait_for(lambda: all((alpha.home / "failed" / f"{n}.reason.txt").exists()
                         for n in ("to-trinh.txt", "qd.txt")), timeout=30, what="two refusals")
    urgency = failed_reason(alpha, "to-trinh.txt")
    assert "urgency" in urgency and "rất gấp" in urgency and "flash (hỏa tốc)" in urgency
    assert (alpha.home / "failed" / "to-trinh.txt.meta.toml").exists()
    folder = failed_reason(alpha, "qd.txt")
    assert "quyet-dinh-sai" in folder and "resolution (nghị quyết)" in folder
    # The reason file is written before the refusal's audit event is committed (on the
    # database thread), so wait for the events rather than read them once.
    wait_for(lambda: len(audit_of(alpha, "refused")) >= 2, timeout=30, what="two audit events")
    assert sorted(e["code"] for e in audit_of(alpha, "refused")) == ["bad-metadata"] * 2
    assert alpha.query("recent_dispatches", 10) == []
    assert not (beta.inbox / "alpha").exists()


def test_message_command_travels_the_receipted_path(network) -> None:  # type: ignore[no-untyped-def]
    """``lienthong message`` reaches the peer's inbox as text marked kind=message, receipted."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    text = "Đề nghị gửi báo cáo quý IV trước 17h hôm nay."
    result = cli(alpha, "message", "--to", "beta", "--urgency", "khẩn", text)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the message's receipt")
    (name,) = [p.name for p in (beta.inbox / "alpha").iterdir() if p.suffix == ".txt"]
    assert name.endswith("-message.txt")
    assert (beta.inbox / "alpha" / name).read_text(encoding="utf-8") == text + "\n"
    meta = json.loads(sidecar(beta.inbox / "alpha" / name).read_text())["meta"]
    assert (meta["kind"], meta["type"], meta["urgency"]) == ("message", "message", "urgent")
    check_delivered(alpha, [beta], {name: (text + "\n").encode()})


def test_recall_moves_the_document_aside_and_is_answered(network) -> None:  # type: ignore[no-untyped-def]
    """beta moves the recalled document to recalled/alpha/ (nothing deleted) and answers
    recall-accepted; gamma, offline, never gets the document (its delivery is cancelled) and
    answers recall-refused when it returns; alpha keeps both signed answers."""
    nodes = network("alpha", "beta", "gamma")
    alpha, beta, gamma = nodes["alpha"], nodes["beta"], nodes["gamma"]
    alpha.start()
    beta.start()
    alpha.drop("beta+gamma", "cong-van-45.txt", b"Cong van so 45/UBND-VP\n")
    wait_for(lambda: any(d.state == "delivered" for sent in documents_sent(alpha)
                         for d in sent.deliveries), timeout=30, what="beta's receipt")
    mid = only_dispatch(alpha).message_id
    result = cli(alpha, "recall", mid, "--reason", "Ban hành nhầm số ký hiệu", "--wait", "20")
    assert result.returncode == 0, result.stderr
    recalled = beta.home / "recalled" / "alpha"
    wait_for(lambda: (recalled / "cong-van-45.txt").exists(), timeout=30, what="beta to recall")
    assert not (beta.inbox / "alpha" / "cong-van-45.txt").exists()
    assert (recalled / "cong-van-45.txt").read_bytes() == b"Cong van so 45/UBND-VP\n"
    for suffix in (".meta.json", ".receipt.jws", ".recall.jws", ".recall.txt"):
        assert (recalled / f"cong-van-45.txt{suffix}").exists(), suffix
    assert "Ban hành nhầm" in (recalled / "cong-van-45.txt.recall.txt").read_text()
    assert [r.state for r in beta.query("recalls_for", mid)] == ["accepted"]
    assert [e["reason"] for e in audit_of(beta, "recall-accepted")] == ["Ban hành nhầm số ký hiệu"]
    gamma.start()
    wait_for(lambda: len(alpha.query("statuses_for", mid)) == 2, timeout=30,
             what="both answers to the recall")
    answers = {row.peer_node_id: row for row in alpha.query("statuses_for", mid)}
    accepted = verify_status(answers[beta.node_id].token, identity_key(beta), sender=alpha.node_id)
    assert accepted.status == "recall-accepted"
    check_chain(accepted, {d.peer_node_id: d.receipt for d in
                           alpha.query("get_dispatch", mid).deliveries}[beta.node_id])
    refused = verify_status(answers[gamma.node_id].token, identity_key(gamma))
    assert refused.status == "recall-refused" and "no document" in refused.note
    assert not (gamma.inbox / "alpha").exists()
    assert [e["peer"] for e in audit_of(alpha, "delivery-recalled")] == [gamma.node_id]
    assert cli(alpha, "recall", mid, "--reason", "lần nữa").returncode == 2


#: Large enough that its transfer outlasts the flash document's by over a second even at the
#: ~250 MB/s a quiet machine reaches on loopback (300 MiB once finished 1.26 s after the drop).
LARGE = 600 * 1024 * 1024


def test_flash_document_overtakes_a_large_one_in_transfer(network) -> None:  # type: ignore[no-untyped-def]
    """A flash document dropped while a 600 MiB publication is in transfer is receipted within
    2 s, well before the publication. (The issue's measure names 1 GiB; 600 MiB keeps the
    test within CI time and disk while still taking seconds to transfer on loopback: what is
    measured is that the flash document does not wait for it, which does not depend on the
    size.)"""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    (alpha.outbox / "beta").mkdir(exist_ok=True)  # the node makes it at start (issue 20)
    write_large_file(alpha.outbox / "beta" / "nien-giam-thong-ke.bin", LARGE)
    partials = beta.home / "tmp" / "staging"
    wait_for(lambda: any(p.stat().st_size > 8 * 1024 * 1024 for p in partials.glob("*")),
             timeout=120, what="the publication to be in transfer")
    started = time.monotonic()
    drop_with_sidecar(alpha, "beta", "cong-dien-hoa-toc.txt", b"Cong dien hoa toc\n",
                      'type = "công văn"\nurgency = "hỏa tốc"\n')

    def delivered(name: str) -> bool:
        rows = [d for d in alpha.query("recent_dispatches", 10) if d.name == name]
        return bool(rows) and rows[0].deliveries[0].state == "delivered"

    wait_for(lambda: delivered("cong-dien-hoa-toc.txt"), timeout=30, what="the flash receipt")
    flash_seconds = time.monotonic() - started
    large_done = delivered("nien-giam-thong-ke.bin")
    wait_for(lambda: delivered("nien-giam-thong-ke.bin"), timeout=300, what="the publication")
    large_seconds = time.monotonic() - started
    print(f"flash receipted {flash_seconds:.2f} s after it was dropped; the 600 MiB "
          f"publication {large_seconds:.2f} s after that drop")
    assert flash_seconds < 2.0
    assert not large_done and large_seconds > flash_seconds + 1.0
