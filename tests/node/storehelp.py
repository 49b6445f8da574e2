"""Shared builders for the store tests: deterministic peers and documents."""
from __future__ import annotations

import hashlib
from typing import Any

import nacl.public
import nacl.signing
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from lienthong.keys.directory import Peer, PeerKey
from lienthong.keys.identity import encryption_kid
from lienthong.keys.jws import b64url_encode
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.store.postgresql import postgresql_url
from lienthong.node.store.records import PRIORITY_NORMAL, NewDispatch, NewReceived

T0 = "2026-01-05T08:00:00Z"
T1 = "2026-01-05T08:00:01Z"
T2 = "2026-01-05T08:00:02Z"
T3 = "2026-01-05T08:00:03Z"


def encryption_key(seed: int, since: str) -> PeerKey:
    public = bytes(nacl.public.PrivateKey(bytes([seed]) * 32).public_key)
    return PeerKey("encryption", b64url_encode(public), encryption_kid(public), since)


def tls_key(seed: int, since: str) -> PeerKey:
    pin = hashlib.sha256(b"tls-%d" % seed).hexdigest()
    return PeerKey("tls", pin, pin[:16], since)


def make_peer(name: str, seed: int, since: str = T0) -> Peer:
    identity = bytes(nacl.signing.SigningKey(bytes([seed]) * 32).verify_key)
    node_id = node_id_from_public_key(identity)
    keys = (PeerKey("identity", b64url_encode(identity), node_id, since),
            encryption_key(seed + 100, since), tls_key(seed, since))
    return Peer(name=name, node_id=node_id, addresses=(f"{name}.example.vn:7443",),
                state="trusted", keys=keys)


def make_dispatch(number: int, recipients: tuple[str, ...], priority: int = PRIORITY_NORMAL,
                  name: str = "Công văn số 12.pdf") -> NewDispatch:
    message_id = f"{number:032x}"
    return NewDispatch(message_id=message_id, name=name, target="so-tu-phap",
                       spool_dir=f"spool/{message_id}", header_token=f"header.{number}.sig",
                       size=1000 + number, sha256=hashlib.sha256(b"%d" % number).hexdigest(),
                       ciphertext_size=1100 + number, priority=priority,
                       meta={"urgency": "normal", "số": number}, recipients=recipients)


def make_received(number: int, sender: str) -> NewReceived:
    message_id = f"{number:032x}"
    return NewReceived(sender_node_id=sender, message_id=message_id,
                       name="Quyết định 7.pdf", stored_path=f"inbox/so-tu-phap/{number}.pdf",
                       size=42, sha256=hashlib.sha256(b"r%d" % number).hexdigest(),
                       header_token=f"h.{number}.s", meta={"confidentiality": "confidential"})


def raw_engine(url: str) -> Engine:
    """A plain engine on a store's database, beside the store (psycopg 3 for PostgreSQL)."""
    if make_url(url).get_backend_name() == "postgresql":
        return create_engine(postgresql_url(url))
    return create_engine(url)


def raw_sql(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement straight on the database (a tamperer, or an older lienthong)."""
    engine = raw_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()
