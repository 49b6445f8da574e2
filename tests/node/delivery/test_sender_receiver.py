"""SenderProtocol and ReceiverProtocol back to back (tests/node/delivery/pairhelp.py): offer,
accept, data, end, receipt; refusals; what envelope v3 leaves readable, and its trailer.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update

from lienthong.keys import jws
from lienthong.node.delivery.links import LinkState
from lienthong.node.spool.sealing import seal_spooled
from lienthong.node.store import schema
from lienthong.node.store.records import NewDispatch
from lienthong.protocol.envelope import decode_header, sign_trailer
from lienthong.protocol.fields import new_message_id
from tests.node.delivery.pairhelp import Net, dispatch_v3, kinds, leftovers
from tests.node.runtimehelp import (
    NOW,
    FakeReactor,
    enrol,
    make_office,
)


def test_document_goes_offer_accept_data_end_receipt(net: Net) -> None:
    """A sealed document is streamed, verified, published, and receipted; alpha records it."""
    data = "Công văn số 7/UBND, hỏa tốc\n".encode() * 20_000  # several DATA frames
    mid = net.dispatch("cong-van.txt", data)
    wire = net.connect()
    assert net.link.state is LinkState.CONNECTED
    assert (net.inbox() / "cong-van.txt").read_bytes() == data
    assert net.delivered == [mid]
    (delivery,) = net.alpha.store.get_dispatch(mid).deliveries
    stored = net.beta.store.get_received(net.alpha.node_id, mid)
    assert delivery.state == "delivered" and stored.state == "stored"
    assert delivery.receipt == stored.receipt
    net.reactor.advance(1.0)   # the sidecars' hop, up to a second after the receipt
    assert (net.inbox() / "cong-van.txt.receipt.jws").read_text().strip() == stored.receipt
    assert kinds(net.beta, mid) == ["received", "receipt-issued"]
    assert "receipt-verified" in kinds(net.alpha, mid)
    assert leftovers(net.beta) == []
    # Nothing more to send: the link closes the connection after the idle timeout.
    net.reactor.advance(net.alpha.runtime.config.delivery.idle_timeout)
    wire.pump()
    assert wire.lost and net.link.state is LinkState.IDLE
    assert net.reactor.getDelayedCalls() == []


def test_offer_of_a_stored_document_gets_have_with_the_same_receipt(net: Net) -> None:
    """Offered again (the sender lost its record), the receiver answers HAVE and writes nothing."""
    data = b"Quyet dinh 12\n" * 1000
    mid = net.dispatch("quyet-dinh.txt", data)
    wire = net.connect()
    first = net.alpha.store.get_dispatch(mid).deliveries[0].receipt
    net.reactor.advance(net.alpha.runtime.config.delivery.idle_timeout)
    wire.pump()
    inbox_before = sorted(p.name for p in net.inbox().iterdir())
    with net.alpha.store.transaction() as conn:  # as if the receipt had never been recorded
        conn.execute(update(schema.deliveries).where(schema.deliveries.c.message_id == mid)
                     .values(state="queued", receipt=None, receipt_at=None))

    net.connect()
    assert sorted(p.name for p in net.inbox().iterdir()) == inbox_before
    assert net.alpha.store.get_dispatch(mid).deliveries[0].receipt == first
    assert kinds(net.beta, mid) == ["received", "receipt-issued", "duplicate"]
    verified = net.alpha.store.audit_entries(kind="receipt-verified", message_id=mid)
    assert [entry.detail["duplicate"] for entry in verified] == [False, True]
    assert net.delivered == [mid, mid]


def test_envelope_for_another_node_is_refused_for_good(net: Net, tmp_path: Path) -> None:
    """An envelope that does not name beta is rejected at the offer; alpha fails that delivery."""
    gamma = make_office(tmp_path, "gamma", FakeReactor(), port=7445)
    enrol(net.alpha, gamma)
    rt = net.alpha.runtime
    mid = new_message_id()
    folder = rt.config.spool / mid
    folder.mkdir()
    (folder / "payload").write_bytes(b"only for gamma\n" * 100)
    sealed = seal_spooled(folder, node_keys=rt.keys,
                          recipients={gamma.node_id: rt.directory.encryption_key_for(
                              gamma.node_id)},
                          name="mat.txt", message_id=mid, created=NOW)
    header = sealed.header
    net.alpha.store.add_dispatch(NewDispatch(
        message_id=mid, name="mat.txt", target="beta", spool_dir=str(folder),
        header_token=sealed.header_token, size=header.size, sha256=header.sha256,
        ciphertext_size=header.ciphertext_size, priority=3, meta={},
        recipients=(net.beta.node_id,)), NOW)

    net.connect()
    assert [m for m, _ in net.failed] == [mid]
    assert "not-addressed-to-us" in net.failed[0][1]
    assert net.alpha.store.get_dispatch(mid).deliveries[0].state == "failed"
    assert not net.inbox().exists()
    assert leftovers(net.beta) == []
    assert [e.detail["code"] for e in net.beta.store.audit_entries(kind="rejected")] == [
        "not-addressed-to-us"]


def test_damaged_ciphertext_is_rejected_and_nothing_is_published(net: Net) -> None:
    """The spooled document changes after sealing (a flipped byte): the ciphertext made while
    sending no longer matches the signed SHA-256, so the receiver refuses it at END: no
    document, no receipt, retried."""
    mid = net.dispatch("bao-cao.txt", b"Bao cao quy III\n" * 5000)
    payload = Path(net.alpha.store.get_dispatch(mid).spool_dir) / "payload"
    damaged = bytearray(payload.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    payload.write_bytes(bytes(damaged))

    net.connect()
    (delivery,) = net.alpha.store.get_dispatch(mid).deliveries
    assert delivery.state == "queued" and delivery.receipt is None
    assert net.delivered == [] and net.failed == []
    assert not (net.inbox() / "bao-cao.txt").exists()
    assert net.beta.store.get_received(net.alpha.node_id, mid) is None
    assert leftovers(net.beta) == []
    assert "rejected-by-peer" in kinds(net.alpha, mid)
    assert {e.detail["code"] for e in net.beta.store.audit_entries(kind="rejected")} == {
        "digest-mismatch"}

SECRETS = ["bao-cao-nhan-su", "nhân sự", "Trần Thị Bích", "77-BC/TU"]


def _assert_no_secrets(blob: bytes, where: str) -> None:
    for needle in SECRETS:
        for form in (needle.encode(), json.dumps(needle).strip('"').encode()):
            assert form not in blob, f"{needle!r} readable in {where}"


def test_v3_names_nothing_in_the_spool_the_store_or_on_the_wire(net: Net) -> None:
    """The envelope as stored (spool, staging, both stores' header tokens) and as sent (every
    frame byte) holds no file name, subject or metadata; beta still files it by name."""
    data = "Báo cáo nhân sự.\n".encode() * 30_000   # several DATA frames
    mid = dispatch_v3(net, "bao-cao-nhan-su.txt", data)
    spool = Path(net.alpha.store.get_dispatch(mid).spool_dir)
    envelope_files = [p for p in spool.iterdir() if p.name not in ("payload", "intake.json")
                      and not p.name.endswith(".meta.toml")]
    assert [p.name for p in envelope_files] == ["stream-ends.bin"]
    for path in envelope_files:
        _assert_no_secrets(path.read_bytes(), path.name)
    token = net.alpha.store.get_dispatch(mid).header_token
    _assert_no_secrets(token.encode() + jws.b64url_decode(token.split(".")[1]), "the header")

    tap: list[bytes] = []
    net.connect(tap=tap)
    sent = b"".join(tap)
    assert token.encode() in sent and len(sent) > len(data)   # the tap saw the transfer
    _assert_no_secrets(sent, "the frames sent")
    assert (net.inbox() / "bao-cao-nhan-su.txt").read_bytes() == data
    stored = net.beta.store.get_received(net.alpha.node_id, mid)
    assert stored.header_token == token and stored.meta["subject"].startswith("Về nhân sự")
    (received,) = net.beta.store.audit_entries(kind="received", message_id=mid)
    assert received.detail["envelope"] == 3
    assert net.delivered == [mid] and leftovers(net.beta) == []


def _rewrite_trailer(net: Net, mid: str, change: Callable[[bytes], bytes]) -> None:
    ends = Path(net.alpha.store.get_dispatch(mid).spool_dir) / "stream-ends.bin"
    data = ends.read_bytes()
    ends.write_bytes(data[:24] + change(data[24:]))


def _refused_at_end(net: Net, mid: str, code: str) -> None:
    (delivery,) = net.alpha.store.get_dispatch(mid).deliveries
    assert delivery.state == "queued" and delivery.receipt is None
    assert net.delivered == []
    assert not net.inbox().exists() or list(net.inbox().iterdir()) == []
    assert net.beta.store.get_received(net.alpha.node_id, mid) is None
    assert leftovers(net.beta) == []
    assert "rejected-by-peer" in kinds(net.alpha, mid)
    assert [e.detail["code"] for e in net.beta.store.audit_entries(kind="rejected",
                                                                   message_id=mid)] == [code]


def test_v3_trailer_altered_is_refused_at_end_and_nothing_is_published(net: Net) -> None:
    mid = dispatch_v3(net, "bao-cao-nhan-su.txt", b"Bao cao\n" * 5000)
    _rewrite_trailer(net, mid, lambda t: t[:-1] + bytes([t[-1] ^ 1]))
    net.connect()
    _refused_at_end(net, mid, "bad-trailer")


def test_v3_digest_mismatch_at_end_is_refused_and_nothing_is_published(net: Net) -> None:
    """The sender's own signature over a digest the document does not have."""
    mid = dispatch_v3(net, "bao-cao-nhan-su.txt", b"Bao cao\n" * 5000)
    row = net.alpha.store.get_dispatch(mid)
    wrong = sign_trailer(net.alpha.runtime.keys.identity,
                         decode_header(row.header_token).header_sha256, row.size, "0" * 64)
    _rewrite_trailer(net, mid, lambda t: wrong)
    net.connect()
    _refused_at_end(net, mid, "digest-mismatch")


