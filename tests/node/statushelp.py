"""A node home for the status tests: the honest home of the audit tests, plus a peer that is
down with a document waiting, a hostile name received, and audited failures."""
from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest
from rich.console import Console

from lienthong.keys.card import make_card, read_card
from lienthong.keys.directory import Peer
from lienthong.keys.identity import generate_node_keys
from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.status.probe import probe_home
from lienthong.node.status.render import render_status
from lienthong.node.status.snapshot import build_snapshot
from lienthong.node.store.records import NewDispatch, NewReceived
from tests.node.audit.test_verify import T0, T2, Home, make_honest_home

HOSTILE = "[bold red]GIẢ[/bold red]\x1b[2J\u202etxt.exe"
#: Two hours and a bit after the honest home's events.
NOW = parse_rfc3339(T2) + 2 * 3600 + 300


@dataclass
class Office:
    honest: Home
    ubnd_id: str
    queued_id: str

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return self.honest.config

    def store(self):  # type: ignore[no-untyped-def]
        return self.honest.store()


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    """The honest home, plus a peer 'ubnd' that is down with one document waiting for it, a
    document with a hostile name received from hdnd, and some audited failures."""
    honest = make_honest_home(tmp_path)
    ubnd = generate_node_keys("ubnd", now=T0)
    card = read_card(make_card(ubnd, addresses=["127.0.0.1:7703"], now=T0))
    store = honest.store()
    queued_id = "c3" * 16
    try:
        store.add_peer(Peer.from_card(card, now=T0), card.token, T0)
        store.add_dispatch(NewDispatch(
            message_id=queued_id, name="Tờ trình 7.pdf", target="ubnd",
            spool_dir=str(honest.home / "spool" / queued_id), header_token="h.e.s", size=2048,
            sha256="d" * 64, ciphertext_size=2100, priority=3, meta={},
            recipients=(card.node_id,)), T0)
        store.record_connect_failure(card.node_id, "Connection refused", parse_rfc3339(T2) + 60,
                                     T2)
        store.begin_publish(NewReceived(
            sender_node_id=honest.peer.node_id, message_id="e4" * 16, name=HOSTILE,
            stored_path="inbox/hdnd/x", size=5, sha256="e" * 64, header_token="h.x.y",
            meta={}), T2)
        store.append_audit("security-refused", "2026-11-25T09:00:00.000Z",
                           detail={"code": "tls-unknown-key"})
        store.append_audit("rejected-by-peer", "2026-11-25T09:00:01.000Z",
                           peer=honest.peer.node_id, message_id=queued_id,
                           detail={"code": 'evil"\ncode', "reason": HOSTILE})
    finally:
        store.close()
    yield Office(honest, card.node_id, queued_id)


def snapshot_of(office: Office, *, now: float = NOW, live: dict | None = None,
                probe: dict | None = None, running: bool = False) -> dict:
    store = office.store()
    try:
        return build_snapshot(
            store, node={"name": "tinhuy", "display_name": "Văn phòng Tỉnh ủy",
                         "node_id": office.honest.keys.node_id, "listen": "0.0.0.0:7701",
                         "home": str(office.honest.home)},
            home=office.honest.home, now=now, daemon={"running": running, "note": ""},
            live=live, probe=probe if probe is not None else probe_home(office.honest.home, None),
            tz=UTC)
    finally:
        store.close()


def rendered(snapshot: dict, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """The screen as text; in English unless ``lang`` says otherwise (tests of wording)."""
    kwargs.setdefault("lang", "en")
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_status(snapshot, **kwargs))
    return console.export_text()


def peer(snapshot: dict, name: str) -> dict:
    return next(p for p in snapshot["peers"] if p["name"] == name)
