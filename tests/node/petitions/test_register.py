"""The petition register on a real SQLite store: states from this office's decisions and from
the handling office's signed statuses, limits in working or calendar days, complex cases,
overdue limits, a kept refusal, and the spreadsheet."""
from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from openpyxl import load_workbook

from lienthong.config.loader import parse_config
from lienthong.node.control.asking import ask_status
from lienthong.node.control.requests import RequestRefused
from lienthong.node.petitions.decisions import decide
from lienthong.node.petitions.export import write_register
from lienthong.node.petitions.register import PetitionRegister, RegisterQuery, summary
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import NewStatus
from tests.node.storehelp import make_received

PEER = "peer-node-id"
MID = "a" * 32
OTHER = "b" * 32
PETITION = {"kind": "complaint", "received": "2026-11-30", "number": "12/ĐKN",
            "petitioner": {"name": "=HYPERLINK(\"x\")"}, "subject": "Đất đai"}


def at(day: str) -> float:
    """09:00 in Vietnam on ``day``, as a timestamp."""
    return dt.datetime.fromisoformat(f"{day}T09:00:00+07:00").timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def register(store: Store, tmp_path: Path, **petitions: object) -> PetitionRegister:
    config = parse_config({"config_version": 1,
                           "node": {"name": "ubnd", "listen": "127.0.0.1:9"},
                           "petitions": {"peers": ["tinhuy"], **petitions}},
                          home=tmp_path, source=tmp_path / "lienthong.toml")
    return PetitionRegister(store, config, peer_name=lambda node_id: "tinhuy")


def test_received_petition_accept_limit_in_working_days_then_overdue(store: Store,
                                                                   tmp_path: Path) -> None:
    # Received on Tuesday 1 December 2026 (the day this office got it counts, not the day the
    # citizen wrote): ten working days end on Tuesday 15 December.
    store.record_petition("received", PEER, MID, PETITION, "2026-12-01T02:00:00Z")
    assert not store.record_petition("received", PEER, MID, PETITION, "2026-12-02T02:00:00Z")
    (line,) = register(store, tmp_path).lines(at("2026-12-03"))
    assert (line.state, line.accept_limit and line.accept_limit.due) == ("received", "2026-12-15")
    assert line.accept_limit.state == "due" and line.accept_limit.days_left == 8
    (late,) = register(store, tmp_path).lines(at("2026-12-16"))
    assert late.accept_limit is not None and late.accept_limit.state == "overdue"
    assert summary([late])["overdue"] == 1
    (calendar,) = register(store, tmp_path, working_days=False).lines(at("2026-12-03"))
    assert calendar.accept_limit is not None and calendar.accept_limit.due == "2026-12-11"


def test_accepted_complex_case_gets_the_longer_resolution_limit(store: Store,
                                                                tmp_path: Path) -> None:
    store.record_petition("received", PEER, MID, PETITION, "2026-12-01T02:00:00Z")
    store.decide_petition(PEER, MID, field="accepted_at", now="2026-12-04T02:00:00Z",
                          complex_case=True)
    plain = register(store, tmp_path, working_days=False, complaint=[10, 30, 45])
    (line,) = plain.lines(at("2026-12-05"))
    assert line.state == "accepted" and line.accept_limit is not None
    assert line.accept_limit.state == "on-time"
    assert line.resolve_limit is not None and line.resolve_limit.due == "2027-01-18"
    store.decide_petition(PEER, MID, field="resolved_at", now="2027-01-20T02:00:00Z")
    (done,) = plain.lines(at("2027-01-21"))
    assert done.state == "resolved" and done.resolve_limit is not None
    assert done.resolve_limit.state == "late"


def _status(mid: str, status: str, time: str, number: int) -> NewStatus:
    return NewStatus(message_id=mid, peer_node_id=PEER, sender_node_id="us", status=status,
                     note="", register_number="1/VP" if status == "registered" else None,
                     token=f"t{number}", token_sha256=f"{number:064x}",
                     receipt_sha256="0" * 64, time=time)


def test_forwarded_petition_follows_the_handling_offices_statuses(store: Store,
                                                                   tmp_path: Path) -> None:
    store.record_petition("sent", PEER, MID, PETITION, "2026-12-01T02:00:00Z")
    store.record_petition("sent", PEER, OTHER, dict(PETITION, kind="denunciation"),
                          "2026-12-01T02:00:00Z")
    book = register(store, tmp_path)
    assert {line.state for line in book.lines(at("2026-12-02"))} == {"forwarded"}
    for number, (status, time) in enumerate([("registered", "2026-12-02T01:00:00Z"),
                                             ("in-progress", "2026-12-03T01:00:00Z"),
                                             ("completed", "2026-12-10T01:00:00Z")]):
        store.record_status(_status(MID, status, time, number), time)
        (line,) = book.lines(at("2026-12-11"), RegisterQuery(kinds=("complaint",)))
        assert line.state == ("taken-over", "accepted", "resolved")[number]
    assert line.accepted_at == "2026-12-03T01:00:00Z"
    assert line.resolve_limit is not None and line.resolve_limit.state == "on-time"
    assert store.record_petition_refusal(PEER, OTHER, token="tok", code="petition-not-allowed",
                                         reason="không nhận")
    (refused,) = book.lines(at("2026-12-11"), RegisterQuery(states=("refused",)))
    assert refused.message_id == OTHER and refused.accept_limit is None
    assert refused.refusal == "petition-not-allowed: không nhận"
    assert not store.record_petition_refusal(PEER, "c" * 32, token="t", code="x", reason="y")

    path = tmp_path / "so.xlsx"
    write_register(book.lines(at("2026-12-11")), path, office="ubnd")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rows = list(load_workbook(path).active.iter_rows(values_only=True))
    assert rows[0][0] == "Sổ theo dõi đơn — ubnd" and len(rows) == 4
    assert rows[2][5] == "'=HYPERLINK(\"x\")"  # a formula is written as text


def test_a_petitions_status_carries_no_free_note_and_decisions_go_in_order(
        store: Store) -> None:

    item = replace(make_received(7, PEER), meta={"kind": "petition", "petition_ref": "p"})
    store.begin_publish(item, "2026-12-01T02:00:00Z")
    store.mark_stored(PEER, item.message_id, "receipt", "2026-12-01T02:00:01Z")
    store.record_petition("received", PEER, item.message_id, PETITION, "2026-12-01T02:00:01Z")
    with pytest.raises(RequestRefused, match="carries no free note"):
        ask_status(store, item.message_id, "completed", note="Bà B đã rút đơn",
                   register_number=None, now="2026-12-02T00:00:00Z")
    with pytest.raises(RequestRefused, match="only after it was accepted"):
        decide(store, item.message_id, "resolve", now="2026-12-02T00:00:00Z")
    done = decide(store, item.message_id, "accept", now="2026-12-02T00:00:00Z")
    assert done.status == "in-progress"
    (request,) = store.control_requests()
    assert (request.message_id, request.payload["status"], request.payload["note"]) == (
        item.message_id, "in-progress", "Đã thụ lý đơn")
    (row,) = store.petition_by_message(item.message_id)
    assert row.accepted_at == "2026-12-02T00:00:00Z"
