"""The arena shared by the hostile-peer modules (``test_hostile_*.py``).

alpha (an honest office), beta (the victim) and mallory, an identity enrolled at both (so TLS
lets it in) that speaks raw frames (tests/faults/hostile.py). Each module that asks for the
``arena`` fixture (tests/faults/conftest.py) gets its own arena (module scope), so each attack
family starts from clean nodes while the attacks of one family share a pair, as they always did.

Every attack must get a specific error (an ERROR or REJECT code), leave an audit event at the
victim, leave the victim's socket really closed (not waiting forever for the attacker's TLS
close_notify), and must not stop beta serving alpha: each test runs an honest delivery from
alpha while the attack is under way and checks it arrived exactly once with a valid receipt
(``Arena.honest`` and ``Arena.delivered``).
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from lienthong.protocol.events import Hello
from lienthong.protocol.receipt import verify_receipt
from tests.faults.hostile import FrameSocket, HostileClient, Identity, card_of
from tests.integration.harness import TestNode, is_document, sha256, wait_for


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
            return [p for p in folder.iterdir() if is_document(p)
                    and p.stat().st_size == len(data) and
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


def connect(arena: Arena) -> HostileClient:
    """A connection from mallory to beta, past the HELLOs."""
    client = HostileClient(arena.beta, arena.mallory)
    client.hello()
    return client


def tcp_closed_within(client: FrameSocket, seconds: float) -> None:
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


def attack_with_frames(arena: Arena, payload: bytes, code: str, *, before_hello: bool = False
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
        tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)
