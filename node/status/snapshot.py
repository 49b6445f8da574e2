"""What the node is doing, as one plain dict: the status screen, ``--json`` and ``/status``.

Theory of operation
-------------------
``build_snapshot`` reads the store (what waits for whom, what was delivered and received, what
failed) and merges two optional inputs that the store cannot know:

* ``live``: what the running daemon holds only in memory - link states, transfers in flight
  with their progress - from ``status.live.live_from_links`` (in the daemon) or fetched over
  the local status API (by the CLI, ``status.gather``);
* ``probe``: the state of the home folder on disk (free space, folders writable, files
  waiting in ``outbox/``, what others on the machine could read), from
  ``status.probe.probe_home``.

It then turns the numbers into warnings an office's IT officer can act on (``status.health``).
It never reads the clock (``now`` is passed in) and never renders anything:
``lienthong.node.status.render`` draws the dict for people and the status API serves it as
JSON. Everything in it is JSON-serialisable, and text that came from peers (document names,
error reasons) is kept as data, never as markup.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from lienthong.config.schema import CoordinationSection
from lienthong.node.coordination.deadlines import DeadlineEngine, summary
from lienthong.node.core.clock import parse_rfc3339, rfc3339, rfc3339_ms
from lienthong.node.status.health import Thresholds, health_of, warnings_for
from lienthong.node.status.review import review_status
from lienthong.node.status.rows import peer_names, received_row, sent_row
from lienthong.node.store.database import Store
from lienthong.node.store.reports import is_control

SNAPSHOT_VERSION = 1
#: Audit kinds that count as failures (metrics label them with their ``code``).
FAILURE_KINDS = ("rejected", "security-refused", "protocol-error", "rejected-by-peer",
                 "receipt-refused", "refused", "storage-error", "dispatch-failed", "timeout",
                 "spool-damaged")


def local_day_start(now: float, tz: tzinfo | None = None) -> str:
    """Midnight of ``now``'s day in ``tz`` (the machine's zone by default), as RFC 3339 UTC."""
    moment = datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now).astimezone()
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return rfc3339(midnight.timestamp())


def _age(now: float, when: str | None) -> float | None:
    if not when:
        return None
    try:
        return max(now - parse_rfc3339(when), 0.0)
    except ValueError:
        return None


def build_snapshot(store: Store, *, node: Mapping[str, Any], home: Path, now: float,
                   daemon: Mapping[str, Any], live: Mapping[str, Any] | None = None,
                   probe: Mapping[str, Any] | None = None,
                   thresholds: Thresholds | None = None,
                   tz: tzinfo | None = None,
                   coordination: CoordinationSection | None = None) -> dict[str, Any]:
    """Everything the status screen shows, from the store plus the optional live part.

    ``node`` holds name, display_name, node_id and listen; ``daemon`` at least ``running``
    (bool) and ``note`` (why we think so); ``coordination``: the regulation's rules, whose
    reminders and overdue programmes become warnings (node/coordination/deadlines.py).
    Blocking: call on the database thread or the CLI.
    """
    thresholds = thresholds or Thresholds()
    live = live or {}
    live_peers = live.get("peers", {})
    records = store.list_peers()
    names = peer_names(records)
    queues = {q.peer_node_id: q for q in store.peer_queues()}
    traffic = {t.peer_node_id: t for t in store.traffic_by_peer()}
    schedules = {s.node_id: s for s in store.schedules()}
    peers = []
    for record in records:
        peer = record.peer
        schedule = schedules.get(peer.node_id)
        queue = queues.get(peer.node_id)
        moved = traffic.get(peer.node_id)
        link = live_peers.get(peer.node_id, {})
        peers.append({
            "name": peer.name, "node_id": peer.node_id, "state": peer.state,
            "addresses": list(peer.addresses), "revoked_at": peer.revoked_at,
            "connected": link.get("connected") if live else None,
            "link": link.get("link") if live else None,
            "last_seen_at": schedule.last_seen_at if schedule else None,
            "last_seen_age": _age(now, schedule.last_seen_at if schedule else None),
            "last_connected_at": schedule.last_connected_at if schedule else None,
            "failures": schedule.failures if schedule else 0,
            "next_attempt_at": (rfc3339(schedule.next_attempt_at)
                                if schedule and schedule.next_attempt_at else None),
            "last_error": _last_error(link, schedule),
            "reachable": _reachable(store, peer.node_id, link, schedule),
            "queue": _queue(queue, now),
            "sent": {"documents": moved.sent_documents if moved else 0,
                     "bytes": moved.sent_bytes if moved else 0},
            "received": {"documents": moved.received_documents if moved else 0,
                         "bytes": moved.received_bytes if moved else 0}})
    since_day = local_day_start(now, tz)
    since_24h = rfc3339_ms(now - 86400)
    _, failures = store.failure_events(FAILURE_KINDS, since=since_24h)
    grouped: dict[tuple[str, str | None, str | None], int] = {}
    for event in failures:
        key = (event.kind, event.code, names.get(event.peer or "", event.peer))
        grouped[key] = grouped.get(key, 0) + 1
    heads = store.audit_heads()
    seq, _ = store.audit_tip()
    snapshot: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "generated_at": rfc3339(now),
        "node": dict(node),
        "daemon": _daemon(store, daemon, live),
        "peers": peers,
        "outbox": {"dispatches": store.dispatches_by_state(),
                   "deliveries": store.delivery_counts(),
                   "waiting_in_outbox": (probe or {}).get("outbox_waiting"),
                   "failed_files": (probe or {}).get("failed_files")},
        "transfers": [dict(t, peer_name=names.get(t["peer"], t["peer"]))
                      for t in live.get("transfers", [])],
        "receiving": [dict(r, peer_name=names.get(r["peer"], r["peer"]))
                      for r in live.get("receiving", [])],
        # Documents only: the node's own statuses and recalls travel the same path but are
        # not what a clerk calls a document.
        "recent_sent": [sent_row(row, names, store) for row in store.recent_dispatches(
            thresholds.recent * 3) if not is_control(dict(row.meta))][:thresholds.recent],
        "recent_received": [received_row(row, names, store, node.get("node_id"))
                            for row in store.recent_received(thresholds.recent * 3)
                            if not is_control(dict(row.meta))][:thresholds.recent],
        "today": {"since": since_day, "received": store.count_received_since(since_day),
                  "sent": store.count_sent_since(since_day)},
        "failures_24h": [{"kind": k, "code": c, "peer": p, "count": n}
                         for (k, c, p), n in sorted(grouped.items(), key=lambda i: (
                             i[0][0], i[0][1] or "", i[0][2] or ""))],
        "audit": {"entries": seq, "last_signed_seq": heads[-1].seq if heads else 0,
                  "last_signed_at": heads[-1].time if heads else None},
        "disk": (probe or {}).get("disk"),
        "standby": list((probe or {}).get("standby", [])),
        "not_writable": list((probe or {}).get("not_writable", [])),
        "too_wide": (probe or {}).get("too_wide"),
        "access_problem": (probe or {}).get("access_problem"),
        "review": review_status(store, names, now),
        "deadlines": (summary(DeadlineEngine(store, coordination, own_name=str(node["name"]))
                              .rows(now)) if coordination is not None and node.get("name")
                      else None),
    }
    snapshot["warnings"] = warnings_for(snapshot, thresholds)
    snapshot["health"] = health_of(snapshot["warnings"])
    return snapshot


def _reachable(store: Store, node_id: str, link: Mapping[str, Any],
               schedule: Any) -> dict[str, Any] | None:
    """Whether the peer could be reached, by the newest evidence: a connection open now, the
    last ``peers test`` (audited as ``peer-tested``), or the last connection either way
    (``last_seen_at``); None when there is none yet."""
    if link.get("connected"):
        return {"reachable": True, "at": None, "source": "connected now", "reason": None}
    tests = store.audit_search(peers=[node_id], kinds=["peer-tested"], limit=1, newest=True)
    test = tests[-1] if tests else None
    seen = schedule.last_seen_at if schedule is not None else None
    if test is not None and (seen is None or test.time >= seen):
        detail = test.detail
        return {"reachable": detail.get("result") == "ok", "at": test.time, "source": "test",
                "reason": None if detail.get("result") == "ok" else detail.get("reason")}
    if seen is not None:
        return {"reachable": True, "at": seen, "source": "connection", "reason": None}
    return None


def _last_error(link: Mapping[str, Any], schedule: Any) -> str | None:
    """The link's own error while the daemon runs; else why the last connection failed."""
    if link.get("connected"):
        return None
    if link.get("last_error"):
        return str(link["last_error"])
    return schedule.last_error if schedule is not None and schedule.failures else None


def _queue(queue: Any, now: float) -> dict[str, Any]:
    if queue is None:
        return {"count": 0, "bytes": 0, "oldest": None}
    return {"count": queue.count, "bytes": queue.bytes, "oldest": {
        "message_id": queue.oldest_message_id, "name": queue.oldest_name,
        "created_at": queue.oldest_created_at,
        "age_seconds": _age(now, queue.oldest_created_at),
        "attempts": queue.oldest_attempts, "offered_at": queue.oldest_offered_at,
        "last_error": queue.oldest_last_error}}


def _daemon(store: Store, daemon: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    started = store.last_audit_of(["node-started"])
    stopped = store.last_audit_of(["node-stopped"])
    out = {"running": bool(daemon.get("running")), "note": daemon.get("note", ""),
           "last_started_at": started.time if started else None,
           "last_stopped_at": stopped.time if stopped else None,
           "stopped_cleanly": bool(stopped and started and stopped.seq > started.seq),
           "started_at": rfc3339(live["started_at"]) if live.get("started_at") else None,
           "uptime_seconds": live.get("uptime_seconds"),
           "status_listen": live.get("status_listen") or daemon.get("status_listen")}
    return out
