"""A node that speaks protocol 2 (envelope v3) and one held to protocol 1 (envelope v2, as every
node before issue 14) exchange documents both ways during an upgrade; each side's audit says
which envelope version it sealed or received, and a v3 envelope as stored names no file name,
subject or other metadata."""
from __future__ import annotations

import json

from lienthong.keys import jws
from lienthong.protocol.envelope import ENVELOPE_TYP
from tests.integration.harness import TestNode, check_delivered, sent_all, sidecar, wait_for
from tests.integration.keyhelp import audit_verifies
from tests.integration.test_documents import drop_with_sidecar

SECRET_NAME = "bao-cao-nhan-su-mat.txt"
SIDECAR = """\
number = "77-BC/TU"
subject = "Về nhân sự diện Ban Thường vụ quản lý"
signer = "Trần Thị Bích"
confidentiality = "Mật"
"""
SECRETS = ["bao-cao-nhan-su", "nhân sự", "Trần Thị Bích", "77-BC/TU", "Mật"]


def hold_to_protocol_1(node: TestNode) -> None:
    """``delivery.max_protocol = 1``: the node offers and accepts only ``lienthong/1``."""
    config = node.home / "config.toml"
    if not config.exists():
        (config,) = node.home.glob("*.toml")
    text = config.read_text()
    config.write_text(text.replace("max_parallel_transfers = 4",
                                   "max_parallel_transfers = 4\nmax_protocol = 1"))


def versions(node: TestNode, kind: str) -> dict[str, int]:
    """File name -> the envelope version of each ``sealed`` or ``received`` audit entry."""
    return {entry.detail["name"]: entry.detail["envelope"]
            for entry in node.query("audit_entries", kind=kind)}


def test_v2_and_v3_nodes_exchange_both_ways(network) -> None:  # type: ignore[no-untyped-def]
    nodes = network("alpha", "beta", "gamma")
    alpha, beta, gamma = nodes["alpha"], nodes["beta"], nodes["gamma"]
    hold_to_protocol_1(beta)
    for node in nodes.values():
        node.start()
    first = {"a-to-b-1.txt": b"Cong van 1\n" * 300, "a-to-g-1.txt": b"Cong van 2\n" * 300}
    alpha.drop("beta", "a-to-b-1.txt", first["a-to-b-1.txt"])
    alpha.drop("gamma", "a-to-g-1.txt", first["a-to-g-1.txt"])
    beta.drop("alpha", "b-to-a-1.txt", b"Tra loi 1\n" * 300)
    wait_for(lambda: sent_all(alpha, 2) and sent_all(beta, 1), timeout=60,
             what="the first round (each side learns what the other speaks)")
    # Now alpha knows: beta speaks protocol 1, gamma protocol 2.
    secret = "Nội dung báo cáo nhân sự.\n".encode() * 400
    drop_with_sidecar(alpha, "gamma", SECRET_NAME, secret, SIDECAR)
    alpha.drop("beta", "a-to-b-2.txt", b"Cong van 3\n" * 300)
    beta.drop("alpha", "b-to-a-2.txt", b"Tra loi 2\n" * 300)
    wait_for(lambda: sent_all(alpha, 4) and sent_all(beta, 2), timeout=60,
             what="the second round")
    check_delivered(alpha, [beta], {"a-to-b-1.txt": first["a-to-b-1.txt"],
                                    "a-to-b-2.txt": b"Cong van 3\n" * 300})
    check_delivered(alpha, [gamma], {"a-to-g-1.txt": first["a-to-g-1.txt"],
                                     SECRET_NAME: secret})
    check_delivered(beta, [alpha], {"b-to-a-1.txt": b"Tra loi 1\n" * 300,
                                    "b-to-a-2.txt": b"Tra loi 2\n" * 300})

    # The audits say which version each document travelled as.
    assert versions(alpha, "sealed") == {"a-to-b-1.txt": 2, "a-to-g-1.txt": 2,
                                         SECRET_NAME: 3, "a-to-b-2.txt": 2}
    assert versions(beta, "sealed") == {"b-to-a-1.txt": 2, "b-to-a-2.txt": 2}
    assert versions(gamma, "received") == {"a-to-g-1.txt": 2, SECRET_NAME: 3}
    assert set(versions(beta, "received").values()) == {2}
    assert set(versions(alpha, "received").values()) == {2}
    learned = {(e.peer, e.detail["protocol"]) for e in alpha.query("audit_entries",
                                                                    kind="peer-protocol")}
    assert learned == {(beta.node_id, 1), (gamma.node_id, 2)}
    # The clerk at gamma still sees the metadata (opened from the sealed contents).
    meta = json.loads(sidecar(gamma.inbox / "alpha" / SECRET_NAME).read_text())
    assert meta["meta"]["subject"] == "Về nhân sự diện Ban Thường vụ quản lý"

    # The v3 envelope as stored by both sides: routing facts only, in any encoding.
    (sent,) = [d for d in alpha.query("recent_dispatches", 10) if d.name == SECRET_NAME]
    (received,) = [r for r in gamma.query("stored_received", sent.message_id)]
    for token in (sent.header_token, received.header_token):
        assert token == sent.header_token
        payload = jws.decode(token, ENVELOPE_TYP).payload
        assert set(payload) == {"v", "message_id", "sender", "recipients", "size_class",
                                "priority", "keys", "sealed"}
        decoded = json.dumps(payload, ensure_ascii=False)
        for needle in SECRETS:
            assert needle not in decoded and needle not in token
    audit_verifies(alpha)
    audit_verifies(gamma)
