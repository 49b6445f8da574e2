"""Hostile peers at the TLS door: a HELLO naming another node, unknown and revoked identities,
TLS below 1.3, and a client without a certificate. None gets a HELLO it should not, each
leaves a security event, nothing it sent is kept (tests/faults/arena.py).
"""
from __future__ import annotations

import json
import ssl
import time

from lienthong.keys.card import read_card
from tests.faults.arena import Arena, tcp_closed_within
from tests.faults.hostile import HostileClient, Identity, attempt_handshake, enrol, make_identity
from tests.integration.harness import NOW, wait_for


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



def _nothing_written_for(arena: Arena, identity: Identity) -> None:
    prefix = identity.node_id.split("-", 1)[0]
    assert not list((arena.beta.home / "tmp" / "staging").glob(f"*-{prefix}*"))
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
        tcp_closed_within(client, 6)
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
