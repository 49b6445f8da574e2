"""What each page shows, read from the store as plain values (run on the status thread).

Every function here takes the ``Store`` first and returns dicts, lists and strings only, so
it runs as one unit of work on the status API's read-only thread (status/reads.py) and
nothing of the store crosses back to the reactor. Phrase that came from peers (names,
subjects, reasons) is returned as it is: the templates escape it.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.config.schema import CoordinationSection, NodeConfig
from lienthong.keys.card import verification_code
from lienthong.keys.identity import NodeKeys
from lienthong.node.audit.report import AuditFailed
from lienthong.node.control.lifecycle import lifecycle
from lienthong.node.coordination.deadlines import DeadlineEngine
from lienthong.node.petitions.register import PetitionRegister
from lienthong.node.report.figures import YearFigures, collect
from lienthong.node.store.database import Store
from lienthong.node.store.records import PROCESSING_TRANSITIONS

#: How many of the newest sent and received documents a search looks through.
SEARCH_DEPTH = 5000
#: How many rows a page lists.
PAGE_ROWS = 200
CONTROL_KINDS = ("status", "recall")


@dataclass(frozen=True, slots=True)
class DocumentQuery:
    """The documents page's search form; empty fields match everything."""

    text: str = ""
    number: str = ""
    type: str = ""
    office: str = ""
    date_from: str = ""
    date_to: str = ""
    direction: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> DocumentQuery:
        return cls(**{key: args.get(key, "").strip()[:200] for key in (
            "text", "number", "type", "office", "date_from", "date_to", "direction")})


def _names(store: Store) -> dict[str, str]:
    return {record.peer.node_id: record.peer.name for record in store.list_peers()}


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _matches(row: Mapping[str, Any], query: DocumentQuery) -> bool:
    meta = row["meta"]
    if query.direction and row["direction"] != query.direction:
        return False
    if query.number and query.number.casefold() not in str(meta.get("number", "")).casefold():
        return False
    if query.type and meta.get("type") != query.type:
        return False
    if query.office and query.office not in row["offices"]:
        return False
    if query.text:
        haystack = " ".join([str(meta.get("subject", "")), row["name"],
                             str(meta.get("number", ""))]).casefold()
        if query.text.casefold() not in haystack:
            return False
    when = _day(str(meta.get("date") or row["time"] or "")[:10])
    start, end = _day(query.date_from), _day(query.date_to)
    if (start or end) and when is None:
        return False
    if start and when and when < start:
        return False
    return not (end and when and when > end)


def documents(store: Store, query: DocumentQuery) -> list[dict[str, Any]]:
    """Sent and received documents matching ``query``, newest first."""
    names = _names(store)
    rows: list[dict[str, Any]] = []
    for sent in store.recent_dispatches(SEARCH_DEPTH):
        if sent.meta.get("kind") in CONTROL_KINDS or sent.meta.get("control"):
            continue
        offices = [names.get(d.peer_node_id, d.peer_node_id) for d in sent.deliveries]
        rows.append({"direction": "sent", "message_id": sent.message_id, "name": sent.name,
                     "meta": dict(sent.meta), "offices": offices, "state": sent.state,
                     "time": sent.created_at,
                     "delivered": sum(d.state == "delivered" for d in sent.deliveries),
                     "recipients": len(sent.deliveries)})
    for got in store.recent_received(SEARCH_DEPTH):
        if got.meta.get("kind") in CONTROL_KINDS or got.meta.get("control"):
            continue
        sender = names.get(got.sender_node_id, got.sender_node_id)
        marked = [s.status for s in store.statuses_for(got.message_id)
                  if s.status in PROCESSING_TRANSITIONS]
        rows.append({"direction": "received", "message_id": got.message_id, "name": got.name,
                     "meta": dict(got.meta), "offices": [sender], "state": got.state,
                     "time": got.received_at, "status": marked[-1] if marked else None})
    rows.sort(key=lambda r: str(r["time"] or ""), reverse=True)
    return [row for row in rows if _matches(row, query)][:PAGE_ROWS]


def document(store: Store, message_id: str) -> dict[str, Any] | None:
    info = lifecycle(store, message_id)
    return info if "direction" in info else None


def peers(store: Store, own_node_id: str) -> list[dict[str, Any]]:
    schedules = {s.node_id: s for s in store.schedules()}
    out = []
    for record in store.list_peers():
        peer = record.peer
        schedule = schedules.get(peer.node_id)
        out.append({
            "name": peer.name, "node_id": peer.node_id, "state": peer.state,
            "addresses": list(peer.addresses), "revoked_at": peer.revoked_at,
            "reason": peer.reason, "added_at": record.added_at,
            "code": verification_code(own_node_id, peer.node_id),
            "key_list": [{"kind": k.kind, "kid": k.kid, "valid_from": k.valid_from,
                      "valid_until": k.valid_until} for k in peer.keys],
            "last_seen_at": schedule.last_seen_at if schedule else None,
            "last_connected_at": schedule.last_connected_at if schedule else None,
            "failures": schedule.failures if schedule else 0})
    return out


@dataclass(frozen=True, slots=True)
class AuditQuery:
    kind: str = ""
    peer: str = ""
    message_id: str = ""
    limit: int = PAGE_ROWS

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, limit: int = PAGE_ROWS) -> AuditQuery:
        return cls(kind=args.get("kind", "").strip()[:64], peer=args.get("peer", "").strip()[:200],
                   message_id=args.get("message_id", "").strip().lower()[:32], limit=limit)


def audit_entries(store: Store, query: AuditQuery) -> list[dict[str, Any]]:
    """The newest entries matching ``query``, newest first."""
    tip, _ = store.audit_tip()
    after = max(0, tip - 20000)
    entries = store.audit_entries(after_seq=after, kind=query.kind or None,
                                  peer=query.peer or None,
                                  message_id=query.message_id or None)
    return [{"seq": e.seq, "time": e.time, "kind": e.kind, "peer": e.peer,
             "message_id": e.message_id, "digest": e.digest, "detail": e.detail,
             "detail_text": json.dumps(e.detail, ensure_ascii=False, sort_keys=True),
             "hash": e.hash} for e in reversed(entries[-query.limit:])]


def audit_verify(store: Store, home: Path, own_card: Any) -> dict[str, Any]:
    """``lienthong audit verify``'s result, as the audit page shows it."""
    from lienthong.node.audit.verify import verify_store
    names = _names(store)
    try:
        report = verify_store(store, home=home, own_card=own_card,
                              peer_name=lambda node_id: names.get(node_id, node_id))
    except AuditFailed as failed:
        return dict(failed.report.as_dict(), ok=False)
    return dict(report.as_dict(), ok=True)


def deadlines(store: Store, section: CoordinationSection, own_name: str,
              now: float) -> list[dict[str, Any]]:
    engine = DeadlineEngine(store, section, own_name=own_name)
    return [row.as_json() for row in engine.rows(now)]


def petitions(store: Store, config: NodeConfig, now: float) -> list[dict[str, Any]]:
    """The petition register (petition staff only: the page checks who asks)."""
    names = _names(store)
    register = PetitionRegister(store, config,
                                peer_name=lambda node_id: names.get(node_id, node_id))
    return [line.as_json() for line in register.lines(now)]


def report_figures(store: Store, year: int, own_name: str, own_node_id: str,
                   coordination: CoordinationSection, now: float,
                   keys: NodeKeys) -> YearFigures:
    """The yearly report's figures, computed exactly as ``lienthong report`` computes them
    (node/report/figures.py); ``ReportError`` for a year with nothing to report."""
    return collect(store, year=year, own_name=own_name, own_node_id=own_node_id,
                   coordination=coordination, now=now, keys=keys)
