"""Citizens' petitions between real nodes (docs/petitions.md): forwarded, accepted and resolved
with every status back at the forwarding office and its limits tracked; kept in restricted
folders; refused by the receiver's own policy with a signed refusal; and never named by its
petitioner, subject or file name in logs, the status API, metrics or the audit export."""
from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import nacl.signing
from openpyxl import load_workbook

from lienthong.keys.card import read_card
from lienthong.protocol.refusal import verify_refusal
from tests.integration.harness import ROOT, TestNode, sent_all, sidecar, wait_for

PETITIONER = "Trần Thị Bích Ngọc"
SUBJECT = "Khiếu nại quyết định thu hồi đất tại thôn Đông Xá"
FILE_NAME = "Đơn khiếu nại bà Ngọc thôn Đông Xá.pdf"
SIDECAR = f"""\
type = "đơn thư"
loai_don = "khiếu nại"
so_don = "125/ĐKN"
ngay_nhan = "01/12/2026"
hinh_thuc_nhan = "trực tiếp"
nguoi_viet_don = "{PETITIONER}"
dia_chi = "Thôn Đông Xá, xã Đông Phong"
so_cccd = "001186012345"
trich_yeu = "{SUBJECT}"
co_quan_giai_quyet = "ubnd"
"""
PETITION = b"%PDF-1.4 don khieu nai\n" * 40
#: Words of the petition that must never leave its restricted places.
SECRETS = (PETITIONER, "Bích Ngọc", "Đông Xá", "001186012345", "thu hồi đất", "bà Ngọc")


def staff_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


def allow_petitions(node: TestNode, peers: list[str]) -> None:
    config = node.home / "lienthong.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[petitions]\npeers = "
                      + json.dumps(peers) + f"\ngroup = \"{staff_group()}\"\n",
                      encoding="utf-8")


def cli(node: TestNode, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args, "--home",
                           str(node.home)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT),
                          timeout=60, check=False)


def drop_petition(node: TestNode, folder: str, name: str, sidecar: str) -> None:
    target = node.outbox / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / f".{name}.meta.toml.part").write_text(sidecar, encoding="utf-8")
    os.rename(target / f".{name}.meta.toml.part", target / f"{name}.meta.toml")
    (target / f".{name}.part").write_bytes(PETITION)
    os.rename(target / f".{name}.part", target / name)


def register(node: TestNode) -> list[dict[str, Any]]:
    listed = cli(node, "petitions", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)["petitions"]


def status_api(node: TestNode, path: str) -> str:
    address = (node.home / "state" / "status.port").read_text().strip()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}{path}", timeout=10) as answer:
        return answer.read().decode()


def everything_public(node: TestNode) -> dict[str, str]:
    """What the IT staff, a monitoring system or an auditor sees of a node."""
    seen = {f"log {p.name}": p.read_text(errors="replace")
            for p in (node.home / "logs").rglob("*") if p.is_file()}
    seen["status API"] = status_api(node, "/status")
    seen["status API live"] = status_api(node, "/status/live")
    seen["metrics"] = status_api(node, "/metrics")
    for args in (("audit", "export"), ("audit", "list", "--limit", "1000"), ("status",),
                 ("status", "--json")):
        done = cli(node, *args)
        assert done.returncode == 0, (args, done.stderr)
        seen[" ".join(args)] = done.stdout + done.stderr
    return seen


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_petition_forwarded_accepted_resolved_with_every_status_back(network) -> None:  # type: ignore[no-untyped-def]
    """tinhuy forwards a complaint to ubnd (chuyển đơn); ubnd accepts it (thụ lý) and resolves
    it; tinhuy's register shows each step from ubnd's signed statuses, with both limits met.
    The petition sits only in the restricted folders, named opaquely, and nothing public at
    either office names the petitioner, the subject or the file."""
    nodes = network("tinhuy", "ubnd")
    tinhuy, ubnd = nodes["tinhuy"], nodes["ubnd"]
    allow_petitions(tinhuy, ["ubnd"])
    allow_petitions(ubnd, ["tinhuy"])
    for node in nodes.values():
        node.start()
    drop_petition(tinhuy, "ubnd", FILE_NAME, SIDECAR)
    wait_for(lambda: sent_all(tinhuy, 1), timeout=40, what="the petition's receipt")

    (line,) = register(ubnd)
    mid = line["message_id"]
    assert (line["direction"], line["state"], line["petitioner"], line["subject"],
            line["number"], line["office"]) == ("received", "received", PETITIONER, SUBJECT,
                                                "125/ĐKN", "tinhuy")
    assert line["accept_limit"]["state"] == "due" and line["resolve_limit"] is None
    folder = ubnd.home / "petitions" / "inbox" / "tinhuy"
    stored = folder / f"petition-{mid[:12]}.pdf"
    assert stored.read_bytes() == PETITION
    meta = json.loads(sidecar(stored).read_text(encoding="utf-8"))
    assert meta["meta"]["petition"]["file_name"] == FILE_NAME
    assert meta["meta"]["petition"]["petitioner"]["name"] == PETITIONER
    assert mode(ubnd.home / "petitions") == mode(folder) == 0o2750
    assert {mode(p) for p in folder.iterdir()} == {0o640}
    assert {p.stat().st_gid for p in folder.iterdir()} == {os.getgid()}
    assert not (ubnd.inbox / "tinhuy").exists() or not any((ubnd.inbox / "tinhuy").iterdir())
    sent = tinhuy.home / "petitions" / "sent" / "ubnd"
    assert (sent / f"petition-{mid[:12]}.pdf").read_bytes() == PETITION
    assert SUBJECT in (sent / f"petition-{mid[:12]}.pdf.meta.toml").read_text(encoding="utf-8")
    assert not (tinhuy.home / "sent" / "ubnd").exists()

    (forwarded,) = register(tinhuy)
    assert (forwarded["direction"], forwarded["state"], forwarded["office"]) == \
        ("sent", "forwarded", "ubnd")
    assert forwarded["receipt_at"] is not None  # ubnd's signed receipt: it took the petition

    accepted = cli(ubnd, "petitions", "accept", mid[:12])
    assert accepted.returncode == 0, accepted.stderr
    wait_for(lambda: [s.status for s in tinhuy.query("statuses_for", mid)] == ["in-progress"],
             timeout=30, what="the acceptance at tinhuy")
    assert register(tinhuy)[0]["state"] == "accepted"
    early = cli(ubnd, "petitions", "accept", mid)
    assert early.returncode == 2 and "already accepted" in early.stderr
    resolved = cli(ubnd, "petitions", "resolve", mid, "--outcome", "Giữ nguyên quyết định")
    assert resolved.returncode == 0, resolved.stderr
    wait_for(lambda: [s.status for s in tinhuy.query("statuses_for", mid)]
             == ["in-progress", "completed"], timeout=30, what="the resolution at tinhuy")

    (forwarded,) = register(tinhuy)
    assert forwarded["state"] == "resolved" and forwarded["accepted_at"] is not None
    assert forwarded["accept_limit"]["state"] == "on-time"
    assert forwarded["resolve_limit"]["state"] == "on-time"
    (handled,) = register(ubnd)
    assert handled["state"] == "resolved" and handled["resolve_limit"]["state"] == "on-time"

    book = tinhuy.home / "so-theo-doi-don.xlsx"
    exported = cli(tinhuy, "petitions", "--xlsx", str(book))
    assert exported.returncode == 0, exported.stderr
    rows = list(load_workbook(book).active.iter_rows(values_only=True))
    assert rows[1][0] == "Số tham chiếu" and rows[2][5] == PETITIONER and mode(book) == 0o600

    for node in (tinhuy, ubnd):
        for where, text in everything_public(node).items():
            for secret in SECRETS:
                assert secret not in text, f"{secret!r} appears in {node.name}'s {where}"
            if where == "audit export":
                assert f"petition-{mid[:12]}" in text  # the opaque reference is there


def identity_key(node: TestNode) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(read_card(node.card_path.read_text()).identity_public)


def test_receiver_refuses_a_petition_its_policy_does_not_allow(network) -> None:  # type: ignore[no-untyped-def]
    """hdnd may send petitions to ubnd by its own configuration, but ubnd accepts them only
    from tinhuy: ubnd refuses the offer, signs a refusal, and hdnd keeps it (verified) with
    the petition in failed/. hdnd itself refuses to send a petition to tinhuy, and one
    without its petitioner, before anything is sealed; no audit event names the file."""
    nodes = network("hdnd", "ubnd", "tinhuy")
    hdnd, ubnd = nodes["hdnd"], nodes["ubnd"]
    allow_petitions(hdnd, ["ubnd"])
    allow_petitions(ubnd, ["tinhuy"])
    hdnd.start()
    ubnd.start()
    drop_petition(hdnd, "ubnd", FILE_NAME, SIDECAR)
    wait_for(lambda: (hdnd.home / "failed" / f"{FILE_NAME}.reason.txt").exists()
             or any(p.name.endswith(".reason.txt") for p in (hdnd.home / "failed").glob("*")),
             timeout=40, what="the refused petition in hdnd's failed/")
    reasons = [p.read_text(encoding="utf-8") for p in (hdnd.home / "failed").glob("*.reason.txt")]
    assert len(reasons) == 1 and "petition-not-allowed" in reasons[0]
    (dispatch,) = [d for d in hdnd.query("recent_dispatches", 20)
                   if d.meta.get("kind") == "petition"]
    mid = dispatch.message_id

    def refused() -> bool:
        return register(hdnd)[0]["state"] == "refused"
    wait_for(refused, timeout=30, what="ubnd's signed refusal at hdnd")
    (row,) = hdnd.query("petition_by_message", mid)
    info = verify_refusal(row.refusal_token, identity_key(ubnd), recipient=ubnd.node_id,
                          sender=hdnd.node_id, header_token=dispatch.header_token)
    assert info.code == "petition-not-allowed" and "hdnd" in info.reason
    assert not (ubnd.home / "petitions" / "inbox" / "hdnd").exists() or \
        not any((ubnd.home / "petitions" / "inbox" / "hdnd").iterdir())
    assert [e.kind for e in ubnd.query("audit_entries", kind="refusal-sent")] == ["refusal-sent"]
    assert [e.kind for e in hdnd.query("audit_entries", kind="refusal-received")] \
        == ["refusal-received"]

    # The sender's own guard: tinhuy is not allowed for petitions at hdnd; a petition without
    # its petitioner is refused too. Neither reaches the spool.
    drop_petition(hdnd, "tinhuy", "Đơn thứ hai của bà Ngọc.pdf", SIDECAR)
    drop_petition(hdnd, "ubnd", "Đơn thứ ba của bà Ngọc.pdf",
                  SIDECAR.replace(f'nguoi_viet_don = "{PETITIONER}"\n', ""))
    wait_for(lambda: len(list((hdnd.home / "failed").glob("*.reason.txt"))) == 3, timeout=30,
             what="both refusals into failed/")
    # The reason file and the audit entry are written in separate steps; wait for both.
    wait_for(lambda: len(hdnd.query("audit_entries", kind="refused")) == 2, timeout=30,
             what="both refusals audited")
    codes = sorted(json.loads(e.detail_json)["code"]
                   for e in hdnd.query("audit_entries", kind="refused"))
    assert codes == ["bad-petition", "petition-not-allowed"]
    for entry in hdnd.query("audit_entries", kind="refused"):
        detail = json.loads(entry.detail_json)
        assert detail["name"].startswith("petition-") and "Ngọc" not in entry.detail_json
    for where, text in everything_public(hdnd).items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} appears in hdnd's {where}"
