"""Hostile peers, exhaustion: a flood of offers and two slow-loris connections (silent after
TLS, and one byte a second). beta must bound what it keeps and drop them within bounded time,
while alpha keeps delivering (tests/faults/arena.py).
"""
from __future__ import annotations

import os
import ssl
import time

from lienthong.protocol.events import Hello, Offer, encode_event
from tests.faults.arena import Arena, connect, tcp_closed_within
from tests.faults.hostile import HostileClient, PeerClosed, card_of, seal
from tests.integration.harness import wait_for


def test_flood_of_offers(arena: Arena) -> None:
    """40 OFFERs at once (more than the 32 allowed in flight): too-many-offers, audited; the
    partial files it leaves are bounded; alpha keeps delivering."""
    before = len(arena.audit("protocol-error", code="too-many-offers"))
    name, data = arena.honest()
    beta_card = card_of(arena.beta)
    offers = [seal(arena.mallory, beta_card, os.urandom(64), name=f"lu-{i}.bin")
              for i in range(40)]
    client = connect(arena)
    try:
        client.send_raw(b"".join(encode_event(Offer(message_id=s.message_id, envelope=s.token,
                                                    ciphertext_size=s.size, priority=3))
                                 for s in offers))
        assert client.error().code == "too-many-offers"
        arena.wait_audit("protocol-error", "too-many-offers", before)
        tcp_closed_within(client, 6)
    finally:
        client.close()
    arena.delivered(name, data)
    partials = [p for p in (arena.beta.home / "tmp" / "staging").glob("*")
                if p.suffix != ".resume"]
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
        tcp_closed_within(client, 6)
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
    client = connect(arena)
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
