"""Hostile peers: an enrolled identity that misbehaves, and strangers at the TLS door.

One arena per module: alpha (an honest office), beta (the victim) and mallory, an identity
enrolled at both (so TLS lets it in) that speaks raw frames (tests/faults/hostile.py). Every
attack must get a specific error (an ERROR or REJECT code), leave an audit event at the victim,
leave the victim's socket really closed (not waiting forever for the attacker's TLS
close_notify), and must not stop beta serving alpha: each test runs an honest delivery from
alpha while the attack is under way and checks it arrived exactly once with a valid receipt.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import pytest

from keys import jws
from keys.card import read_card
from protocol.envelope import ENVELOPE_TYP
from protocol.events import (Accept, Data, End, Error, Have, Hello, Offer, Receipt, Reject,
                             encode_event)
from protocol.frames import HEADER, MAX_DATA, FrameKind
from protocol.receipt import verify_receipt
from tests.faults.hostile import (FrameSocket, HostileClient, HostileReceiver, Identity,
                                  PeerClosed, attempt_handshake, card_of, enrol, forged_receipt,
                                  make_identity, raw_frame, receive_transfer, resign, seal)
from tests.integration.harness import (NOW, TestNode, free_port, make_network, sha256,
                                       wait_for)


@dataclass
class Arena:
    alpha: TestNode
    beta: TestNode
    mallory: Identity
    mallory_port: int
    base: Path
    honest_count: int = 0

    def honest(self) -> tuple[str, bytes]:
        """Drop one honest document at alpha for beta; returns its name and bytes."""
        self.honest_count += 1
        name = f"honest-{self.honest_count:03d}.txt"
        data = f"Van ban hop le so {self.honest_count}\n".encode() * 200 + os.urandom(16)
        self.alpha.drop("beta", name, data)
        return name, data

    def delivered(self, name: str, data: bytes) -> None:
        """The honest document is in beta's inbox exactly once with a receipt that verifies."""
        folder = self.beta.inbox / "alpha"

        def copies() -> list[Path]:
            if not folder.exists():
                return []
            return [p for p in folder.iterdir() if not p.name.endswith((".meta.json",
                    ".receipt.jws")) and p.stat().st_size == len(data) and
                    sha256(p.read_bytes()) == sha256(data)]

        wait_for(lambda: copies() and copies()[0].with_name(copies()[0].name + ".receipt.jws")
                 .exists(), timeout=30, what=f"honest {name} to reach beta during the attack")
        found = copies()
        assert len(found) == 1, f"{name} arrived {len(found)} times"
        card = card_of(self.beta)
        token = found[0].with_name(found[0].name + ".receipt.jws").read_text().strip()
        info = verify_receipt(token, nacl.signing.VerifyKey(card.identity_public),
                              recipient=self.beta.node_id)
        assert info.sha256 == sha256(data)

    def audit(self, kind: str, *, code: str | None = None) -> list[dict]:
        """beta's audit events of ``kind`` about mallory (optionally with detail code)."""
        entries = self.beta.query("audit_entries", kind=kind, peer=self.mallory.node_id)
        details = [json.loads(e.detail_json) | {"_message_id": e.message_id} for e in entries]
        return [d for d in details if code is None or d.get("code") == code]

    def wait_audit(self, kind: str, code: str, before: int = 0) -> None:
        wait_for(lambda: len(self.audit(kind, code=code)) > before, timeout=15,
                 what=f"beta to audit {kind} {code} for mallory")


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    base = tmp_path_factory.mktemp("hostile")
    nodes = make_network(base, ["alpha", "beta"])
    alpha, beta = nodes["alpha"], nodes["beta"]
    port = free_port()
    mallory = make_identity(base / "mallory", "mallory", addresses=[f"127.0.0.1:{port}"])
    enrol(beta, mallory)
    enrol(alpha, mallory)
    beta.start()
    alpha.start()
    try:
        yield Arena(alpha, beta, mallory, port, base)
    finally:
        alpha.kill()
        beta.kill()


def _connect(arena: Arena) -> HostileClient:
    client = HostileClient(arena.beta, arena.mallory)
    client.hello()
    return client


def _tcp_closed_within(client: FrameSocket, seconds: float) -> None:
    """The victim really closed the TCP connection (FIN or RST), not only the TLS session."""
    probe = socket.socket(fileno=os.dup(client.sock.fileno()))
    try:
        probe.setblocking(False)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if probe.recv(1 << 16) == b"":
                    return
            except BlockingIOError:
                time.sleep(0.05)
            except ConnectionError:
                return
        raise AssertionError(f"beta still holds the TCP connection {seconds} s after ending it")
    finally:
        probe.close()


def _attack_with_frames(arena: Arena, payload: bytes, code: str, *, before_hello: bool = False
                        ) -> None:
    """Send ``payload`` raw; expect ERROR ``code``, an audit entry, a closed socket, and an
    honest delivery meanwhile."""
    before = len(arena.audit("protocol-error", code=code))
    name, data = arena.honest()
    client = HostileClient(arena.beta, arena.mallory)
    try:
        if before_hello:
            client.expect(Hello)
        else:
            client.hello()
        client.send_raw(payload)
        error = client.error(timeout=10)
        assert error.code == code, error
        arena.wait_audit("protocol-error", code, before)
        _tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)


# -- 2. malformed traffic ----------------------------------------------------------------------

MALFORMED = {
    "offer-not-json": (raw_frame(FrameKind.OFFER, b"{not json"), "bad-message"),
    "offer-extra-member": (raw_frame(FrameKind.OFFER, jws.canonical_json(
        {"message_id": "0" * 32, "envelope": "a.b.c", "ciphertext_size": 1, "priority": 3,
         "extra": 1})), "bad-message"),
    "offer-duplicate-key": (raw_frame(FrameKind.OFFER, b'{"priority":3,"priority":0}'),
                            "bad-message"),
    "unknown-kind": (raw_frame(99, b"{}"), "bad-frame"),
    "data-without-ciphertext": (raw_frame(FrameKind.DATA, b"\0" * 24), "bad-message"),
    "utf8-overlong": (raw_frame(FrameKind.PING, b'{"nonce":1,"x":"\xc0\xaf"}'), "bad-message"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frame(arena: Arena, case: str) -> None:
    """A malformed frame gets its own ERROR code and a protocol-error audit; alpha still delivers."""
    payload, code = MALFORMED[case]
    _attack_with_frames(arena, payload, code)


TOO_LARGE = {
    "data-one-byte-over": HEADER.pack(1, FrameKind.DATA, 24 + MAX_DATA + 1),
    "length-2-32-minus-1": HEADER.pack(1, FrameKind.OFFER, 2 ** 32 - 1),
    "ping-over-its-ceiling": HEADER.pack(1, FrameKind.PING, 257),
}


@pytest.mark.parametrize("case", sorted(TOO_LARGE))
def test_length_beyond_the_maximum(arena: Arena, case: str) -> None:
    """A header announcing too many bytes is refused at once, before any payload is sent."""
    _attack_with_frames(arena, TOO_LARGE[case], "frame-too-large")


def test_large_frame_before_hello(arena: Arena) -> None:
    """Before the HELLOs only small frames are accepted: a 1 MiB OFFER header is refused."""
    _attack_with_frames(arena, HEADER.pack(1, FrameKind.OFFER, 1 << 20), "frame-too-large",
                        before_hello=True)


def test_wrong_frame_version(arena: Arena) -> None:
    """A frame with version byte 2 gets unsupported-version."""
    _attack_with_frames(arena, raw_frame(FrameKind.PING, b'{"nonce":1}', version=2),
                        "unsupported-version")


def test_wrong_protocol_in_hello(arena: Arena) -> None:
    """A HELLO claiming protocol 2 gets unsupported-version."""
    before = len(arena.audit("protocol-error", code="unsupported-version"))
    name, data = arena.honest()
    client = HostileClient(arena.beta, arena.mallory)
    try:
        client.hello(protocol=2)
        assert client.error().code == "unsupported-version"
        arena.wait_audit("protocol-error", "unsupported-version", before)
        _tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)


def test_hello_naming_another_node(arena: Arena) -> None:
    """mallory's certificate with alpha's node ID in HELLO: wrong-peer, a security event."""
    before = len(arena.audit("security-refused", code="wrong-peer"))
    name, data = arena.honest()
    client = HostileClient(arena.beta, arena.mallory)
    try:
        client.hello(node_id=arena.alpha.node_id)
        assert client.error().code == "wrong-peer"
        arena.wait_audit("security-refused", "wrong-peer", before)
    finally:
        client.close()
    arena.delivered(name, data)


def _accepted(client: HostileClient, arena: Arena, size: int = 600_000):  # type: ignore[no-untyped-def]
    sealed = seal(arena.mallory, card_of(arena.beta), os.urandom(size), name="bait.bin")
    answer = client.offer(sealed)
    assert isinstance(answer, Accept) and answer.offset == 0, answer
    return sealed


ORDER_CASES = ["gap", "overlap", "beyond-size", "end-too-early", "never-offered"]


@pytest.mark.parametrize("case", ORDER_CASES)
def test_chunks_out_of_order(arena: Arena, case: str) -> None:
    """DATA that skips, repeats, overruns, ends early or names no transfer: its own ERROR code."""
    code = {"gap": "out-of-order", "overlap": "out-of-order", "beyond-size": "data-beyond-size",
            "end-too-early": "premature-end", "never-offered": "unknown-transfer"}[case]
    before = len(arena.audit("protocol-error", code=code))
    name, data = arena.honest()
    client = _connect(arena)
    try:
        sealed = _accepted(client, arena)
        mid, ct = sealed.message_id, sealed.ciphertext
        client.send(Data(message_id=mid, offset=0, data=ct[:1000]))
        if case == "gap":
            client.send(Data(message_id=mid, offset=2000, data=ct[2000:3000]))
        elif case == "overlap":
            client.send(Data(message_id=mid, offset=500, data=ct[500:1500]))
        elif case == "beyond-size":
            client.send(Data(message_id=mid, offset=1000, data=ct[1000:] + b"x" * 10))
        elif case == "end-too-early":
            client.send(End(message_id=mid))
        else:
            client.send(Data(message_id="f" * 32, offset=0, data=b"x"))
        assert client.error().code == code
        arena.wait_audit("protocol-error", code, before)
        _tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)
    assert not list((arena.beta.inbox).glob("mallory/bait*")), "a broken transfer was published"


# -- envelopes that lie ------------------------------------------------------------------------

def test_envelope_claiming_another_sender(arena: Arena) -> None:
    """An envelope naming alpha as sender, signed by mallory: REJECT sender-mismatch, audited
    as a security event, nothing stored."""
    name, data = arena.honest()
    client = _connect(arena)
    try:
        genuine = seal(arena.mallory, card_of(arena.beta), b"gia mao\n" * 100, name="gia.txt")
        keys = jws.decode(genuine.token, ENVELOPE_TYP).payload["keys"]
        keys[arena.alpha.node_id] = keys.pop(arena.mallory.node_id)
        forged = resign(genuine, arena.mallory, sender=arena.alpha.node_id,
                        kid=arena.alpha.node_id, keys=keys)
        answer = client.offer(forged)
        assert isinstance(answer, Reject) and answer.code == "sender-mismatch", answer
        wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                          message_id=forged.message_id),
                 timeout=15, what="a security event for the forged sender")
    finally:
        client.close()
    arena.delivered(name, data)
    assert not list(arena.beta.inbox.glob("*/gia.txt"))


def test_genuine_envelope_relayed_by_another_peer(arena: Arena) -> None:
    """alpha's real, correctly signed header offered over mallory's connection: REJECT
    sender-mismatch (no relaying: the signer must be the TLS peer)."""
    name, data = arena.honest()
    arena.delivered(name, data)
    row = next(r for r in arena.alpha.query("recent_dispatches", 50) if r.name == name)
    client = _connect(arena)
    try:
        client.send(Offer(message_id=row.message_id, envelope=row.header_token,
                          ciphertext_size=row.ciphertext_size, priority=3))
        answer = client.next_event()
        assert isinstance(answer, Reject) and answer.code == "sender-mismatch", answer
        wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                          message_id=row.message_id),
                 timeout=15, what="a security event for the relayed envelope")
    finally:
        client.close()


def test_envelope_signed_with_the_wrong_key(arena: Arena) -> None:
    """An envelope that names mallory but is signed by another key: REJECT bad-signature."""
    client = _connect(arena)
    try:
        impostor = make_identity(arena.base / "impostor", "impostor")
        genuine = seal(arena.mallory, card_of(arena.beta), b"x" * 100, name="sai-khoa.txt")
        forged = resign(genuine, impostor, kid=arena.mallory.node_id)
        answer = client.offer(forged)
        assert isinstance(answer, Reject) and answer.code == "bad-signature", answer
    finally:
        client.close()


def test_replay_of_a_delivered_envelope_returns_the_same_receipt(arena: Arena) -> None:
    """Replaying a delivered envelope (new connection) gets HAVE with the byte-identical receipt,
    a 'duplicate' audit entry, and no second file."""
    payload = b"Quyet dinh phat lai\n" * 300
    sealed = seal(arena.mallory, card_of(arena.beta), payload, name="phat-lai.txt")
    client = _connect(arena)
    try:
        first = client.deliver(sealed)
        assert isinstance(first, Receipt), first
    finally:
        client.close()
    name, data = arena.honest()
    client = _connect(arena)
    try:
        again = client.offer(sealed)
        assert isinstance(again, Have) and again.receipt == first.receipt, again
    finally:
        client.close()
    wait_for(lambda: arena.beta.query("audit_entries", kind="duplicate",
                                      message_id=sealed.message_id),
             timeout=15, what="a duplicate audit entry")
    copies = [p for p in (arena.beta.inbox / "mallory").iterdir()
              if p.is_file() and p.read_bytes() == payload]
    assert len(copies) == 1
    arena.delivered(name, data)


def test_same_message_id_with_different_content_is_refused(arena: Arena) -> None:
    """A second envelope reusing a delivered message ID for other content must be REFUSED and
    raised as a security event, not answered with the first document's receipt."""
    sealed = seal(arena.mallory, card_of(arena.beta), b"ban goc\n" * 100, name="goc.txt")
    client = _connect(arena)
    try:
        assert isinstance(client.deliver(sealed), Receipt)
        other = seal(arena.mallory, card_of(arena.beta), b"ban khac\n" * 100, name="goc.txt",
                     message_id=sealed.message_id)
        answer = client.offer(other)
        assert isinstance(answer, Reject), (
            f"beta answered {type(answer).__name__} to a different document under a delivered "
            "message ID (it must compare the envelope with the one it stored)")
    finally:
        client.close()
    wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                      message_id=sealed.message_id),
             timeout=15, what="a security event for the reused message ID")


def test_flood_of_offers(arena: Arena) -> None:
    """40 OFFERs at once (more than the 32 allowed in flight): too-many-offers, audited; the
    partial files it leaves are bounded; alpha keeps delivering."""
    before = len(arena.audit("protocol-error", code="too-many-offers"))
    name, data = arena.honest()
    beta_card = card_of(arena.beta)
    offers = [seal(arena.mallory, beta_card, os.urandom(64), name=f"lu-{i}.bin")
              for i in range(40)]
    client = _connect(arena)
    try:
        client.send_raw(b"".join(encode_event(Offer(message_id=s.message_id, envelope=s.token,
                                                    ciphertext_size=s.size, priority=3))
                                 for s in offers))
        assert client.error().code == "too-many-offers"
        arena.wait_audit("protocol-error", "too-many-offers", before)
        _tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)
    partials = list((arena.beta.home / "tmp" / "receiving").glob("*/*.part"))
    assert len(partials) <= 32 + 16, f"{len(partials)} partial files after the flood"


def test_slow_loris_silent_after_tls(arena: Arena) -> None:
    """TLS done, then silence (no HELLO): beta drops it within its connect timeout and audits."""
    before = len(arena.audit("timeout"))
    name, data = arena.honest()
    client = HostileClient(arena.beta, arena.mallory)
    try:
        client.expect(Hello)
        waited = client.wait_closed(timeout=20)
        assert waited < 12, f"a silent connection was kept {waited:.1f} s"
        _tcp_closed_within(client, 6)
    finally:
        client.close()
    wait_for(lambda: len(arena.audit("timeout")) > before, timeout=10,
             what="beta to audit the timeout")
    arena.delivered(name, data)


def test_slow_loris_dribbling_one_byte_a_second(arena: Arena) -> None:
    """After HELLO, an OFFER dribbled a byte per second never completes: beta must drop the
    connection within a bounded time (a few idle timeouts), not reset its timer per byte."""
    name, data = arena.honest()
    sealed = seal(arena.mallory, card_of(arena.beta), b"cham\n" * 10, name="cham.txt")
    frame = encode_event(Offer(message_id=sealed.message_id, envelope=sealed.token,
              ciphertext_size=sealed.size, priority=3))
    client = _connect(arena)
    started = time.monotonic()
    dropped_after = None
    try:
        for byte in frame:
            if time.monotonic() - started > 35:
                break
            try:
                client.send_raw(bytes([byte]))
            except (OSError, ssl.SSLError):
                dropped_after = time.monotonic() - started
                break
            try:
                client.next_event(timeout=1.0)
            except TimeoutError:
                continue
            except PeerClosed:
                dropped_after = time.monotonic() - started
                break
        arena.delivered(name, data)
        assert dropped_after is not None and dropped_after < 35, (
            "beta kept a connection that sent one byte a second for "
            f"{time.monotonic() - started:.0f} s (its idle timer restarts on every byte)")
    finally:
        client.close()


# -- a hostile receiver: receipts that lie -----------------------------------------------------

def _lying_receiver(arena: Arena, make_token):  # type: ignore[no-untyped-def]
    def answer(conn: FrameSocket, offer: Offer) -> None:
        receive_transfer(conn, offer)
        conn.send(Receipt(message_id=offer.message_id, receipt=make_token(offer.envelope)))
        conn.next_event(timeout=10)  # alpha's verdict (an ERROR) or its close
    return HostileReceiver(arena.mallory, arena.mallory_port, answer)


@pytest.mark.parametrize("lie", ["wrong-digest", "wrong-signer", "wrong-message"])
def test_receipt_that_does_not_match_is_refused(arena: Arena, lie: str) -> None:
    """alpha sends to mallory; mallory returns a receipt for the wrong digest, signed by someone
    else, or for another message: alpha audits receipt-refused, keeps the document pending
    (not in sent/), and keeps delivering to beta meanwhile."""
    eve = make_identity(arena.base / f"eve-{lie}", "eve")

    def token(header_token: str) -> str:
        if lie == "wrong-digest":
            return forged_receipt(arena.mallory, header_token, sha256="0" * 64)
        if lie == "wrong-message":
            return forged_receipt(arena.mallory, header_token, message_id="e" * 32)
        return jws.sign(eve.keys.identity, "lienthong-receipt/1",
                        jws.decode(forged_receipt(arena.mallory, header_token),
                                   "lienthong-receipt/1").payload, kid=arena.mallory.node_id)

    before = len(arena.alpha.query("audit_entries", kind="receipt-refused",
                                   peer=arena.mallory.node_id))
    receiver = _lying_receiver(arena, token)
    try:
        document = f"cho-mallory-{lie}.txt"
        arena.alpha.drop("mallory", document, b"gui mallory\n" * 100)
        name, data = arena.honest()
        wait_for(lambda: len(arena.alpha.query("audit_entries", kind="receipt-refused",
                                                peer=arena.mallory.node_id)) > before,
                 timeout=30, what="alpha to refuse the lying receipt")
        arena.delivered(name, data)
    finally:
        receiver.stop()
    assert not receiver.errors, receiver.errors
    row = next(r for r in arena.alpha.query("recent_dispatches", 100) if r.name == document)
    assert row.state != "sent"
    assert all(d.state != "delivered" for d in row.deliveries)
    assert not (arena.alpha.home / "sent" / "mallory" / document).exists()


# -- 3. strangers, the revoked, and weak TLS ---------------------------------------------------

def _nothing_written_for(arena: Arena, identity: Identity) -> None:
    prefix = identity.node_id.split("-", 1)[0]
    assert not (arena.beta.home / "tmp" / "receiving" / prefix).exists()
    assert not (arena.beta.inbox / identity.name).exists()


def _tls_refusals(arena: Arena, identity: Identity) -> list[dict]:
    pin = read_card(identity.card).tls_spki_sha256
    entries = arena.beta.query("audit_entries", kind="security-refused")
    return [d for d in (json.loads(e.detail_json) for e in entries) if d.get("pin") == pin]


def test_unknown_peer_is_refused_at_the_handshake(arena: Arena) -> None:
    """A valid but unenrolled identity: no HELLO, nothing written, a security event with its pin."""
    stranger = make_identity(arena.base / "stranger", "stranger")
    name, data = arena.honest()
    outcome = attempt_handshake(arena.beta, stranger)
    assert outcome != "hello", "beta said HELLO to an unknown key"
    wait_for(lambda: _tls_refusals(arena, stranger), timeout=10,
             what="a security event for the unknown key")
    _nothing_written_for(arena, stranger)
    arena.delivered(name, data)


def test_revoked_peer_is_dropped_and_then_refused(arena: Arena) -> None:
    """A connected peer is revoked: its live connection gets ERROR revoked within a few seconds,
    its next handshake is refused and audited, and nothing it sent is kept."""
    trudy = make_identity(arena.base / "trudy", "trudy")
    enrol(arena.beta, trudy)
    time.sleep(1.5)  # the node re-reads its directory every second
    client = HostileClient(arena.beta, trudy)
    try:
        client.hello()
        store = arena.beta.store()
        try:
            store.revoke_peer("trudy", "key stolen", NOW)
        finally:
            store.close()
        assert client.error(timeout=10).code == "revoked"
        _tcp_closed_within(client, 6)
    finally:
        client.close()
    name, data = arena.honest()
    assert attempt_handshake(arena.beta, trudy) != "hello"
    wait_for(lambda: _tls_refusals(arena, trudy), timeout=10,
             what="a security event for the revoked key")
    _nothing_written_for(arena, trudy)
    arena.delivered(name, data)


def test_tls_below_1_3_is_refused(arena: Arena) -> None:
    """An enrolled key over TLS 1.2 is refused at the handshake (real ssl client)."""
    outcome = attempt_handshake(arena.beta, arena.mallory, max_version=ssl.TLSVersion.TLSv1_2)
    assert outcome.startswith("handshake"), outcome


def test_client_without_certificate_is_refused(arena: Arena) -> None:
    """A TLS 1.3 client that presents no certificate never gets a HELLO."""
    name, data = arena.honest()
    outcome = attempt_handshake(arena.beta, None)
    assert outcome != "hello", outcome
    arena.delivered(name, data)


def test_envelope_header_typed_as_something_else(arena: Arena) -> None:
    """A correctly signed token of another type (a receipt) offered as an envelope: refused."""
    client = _connect(arena)
    try:
        sealed = seal(arena.mallory, card_of(arena.beta), b"x" * 10)
        fields = jws.decode(sealed.token, ENVELOPE_TYP).payload
        token = jws.sign(arena.mallory.keys.identity, "lienthong-receipt/1", fields,
                         kid=arena.mallory.node_id)
        client.send(Offer(message_id=sealed.message_id, envelope=token,
                          ciphertext_size=sealed.size, priority=3))
        answer = client.next_event()
        assert isinstance(answer, (Reject, Error)) and answer.code == "envelope-wrong-type", answer
    finally:
        client.close()
