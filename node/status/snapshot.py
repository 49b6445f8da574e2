"""What the node is doing, as one plain dict: the status screen, ``--json`` and ``/status``.

Theory of operation
-------------------
``build_snapshot`` reads the store (what waits for whom, what was delivered and received, what
failed) and merges two optional inputs that the store cannot know:

* ``live``: what the running daemon holds only in memory - link states, transfers in flight
  with their progress - from ``live_from_links`` (in the daemon) or fetched over the local
  status API (by the CLI);
* ``probe``: the state of the home folder on disk (free space, folders writable, files
  waiting in ``outbox/``), from ``probe_home``.

It then turns the numbers into warnings an office's IT officer can act on. It never reads the
clock (``now`` is passed in) and never renders anything: ``lienthong.node.status.render`` draws
the dict
for people and the status API serves it as JSON. Everything in it is JSON-serialisable, and
text that came from peers (document names, error reasons) is kept as data, never as markup.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from lienthong.node.core.clock import parse_rfc3339, rfc3339, rfc3339_ms

SNAPSHOT_VERSION = 1
#: Audit kinds that count as failures (metrics label them with their ``code``).
FAILURE_KINDS = ("rejected", "security-refused", "protocol-error", "rejected-by-peer",
                 "receipt-refused", "refused", "storage-error", "dispatch-failed", "timeout",
                 "spool-damaged")
SECURITY_KINDS = frozenset({"security-refused", "receipt-refused"})
#: Counting files waiting in outbox/ stops here (the number is shown as "N+").
OUTBOX_COUNT_CAP = 10_000
WRITABLE_FOLDERS = ("state", "spool", "tmp", "inbox", "sent", "failed", "outbox")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a number becomes a warning. Defaults suit an office network that is up by day."""

    disk_free_bytes: int = 1024 ** 3
    disk_free_fraction: float = 0.05
    peer_unreachable_hours: float = 4.0
    receipt_overdue_hours: float = 2.0
    recent: int = 8


# -- the daemon's live part ------------------------------------------------------------------

def live_from_links(links: Mapping[str, Any], *, node_id: str, now: float, started_at: float,
                    uptime: float, monotonic: float, status_listen: str | None = None,
                    receiving: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The in-memory state of a running node as plain values (reactor thread, no I/O).

    ``links`` maps peer node IDs to ``PeerLink``s; each has ``state``, ``proto``,
    ``last_error`` and ``progress`` (``Progress``: message_id, name, size, offset,
    started_monotonic, started_offset). ``now`` and ``started_at`` are wall-clock epoch
    seconds (shown, and compared with stored times); ``uptime`` and the transfer rates are
    measured on the timer clock, of which ``monotonic`` is the current reading, so a step of
    the wall clock neither makes the uptime negative nor a rate absurd.
    """
    peers: dict[str, Any] = {}
    transfers = []
    for peer, link in sorted(links.items()):
        state = getattr(link.state, "value", str(link.state))
        peers[peer] = {"link": state, "connected": state == "connected",
                       "last_error": link.last_error, "offered": len(getattr(link, "offered", {}))}
        for progress in list(link.progress.values()):
            elapsed = max(monotonic - progress.started_monotonic, 0.0)
            moved = max(progress.offset - progress.started_offset, 0)
            rate = moved / elapsed if elapsed > 0.5 else None
            left = max(progress.size - progress.offset, 0)
            transfers.append({
                "peer": peer, "message_id": progress.message_id, "name": progress.name,
                "size": progress.size, "offset": progress.offset, "elapsed_seconds": elapsed,
                "rate_bytes_per_second": rate,
                "eta_seconds": left / rate if rate else None})
    return {"node_id": node_id, "now": now, "started_at": started_at,
            "uptime_seconds": max(uptime, 0.0), "status_listen": status_listen,
            "peers": peers, "transfers": transfers,
            "receiving": [{"peer": peer, "message_id": mid} for peer, mid in sorted(receiving)]}


# -- the disk ----------------------------------------------------------------------------------

def probe_home(home: Path) -> dict[str, Any]:
    """Free space, writable folders and files waiting in outbox/ (blocking I/O)."""
    try:
        usage = shutil.disk_usage(home)
        disk = {"free_bytes": usage.free, "total_bytes": usage.total}
    except OSError as exc:
        disk = {"free_bytes": None, "total_bytes": None, "error": exc.strerror}
    not_writable = [name for name in WRITABLE_FOLDERS
                    if not (home / name).is_dir() or not os.access(home / name, os.W_OK)]
    store_files = [p for p in (home / "state").glob("*.db") if not os.access(p, os.W_OK)] \
        if (home / "state").is_dir() else []
    not_writable += [str(p.relative_to(home)) for p in store_files]
    return {"disk": disk, "not_writable": not_writable,
            "outbox_waiting": _count_waiting(home / "outbox"),
            "failed_files": _count_files(home / "failed", skip_suffix=".reason.txt")}


def _visible(name: str) -> bool:
    return not name.startswith((".", "~$")) and not name.endswith((".part", ".tmp", "~"))


def _count_waiting(outbox: Path) -> int:
    count = 0
    try:
        targets = [e for e in os.scandir(outbox) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    for target in targets:
        try:
            with os.scandir(target.path) as entries:
                for entry in entries:
                    if _visible(entry.name):
                        count += 1
                        if count >= OUTBOX_COUNT_CAP:
                            return count
        except OSError:
            continue
    return count


def _count_files(folder: Path, *, skip_suffix: str) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if _visible(e.name) and not e.name.endswith(skip_suffix))
    except OSError:
        return 0


# -- the snapshot ------------------------------------------------------------------------------

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


def build_snapshot(store: Any, *, node: Mapping[str, Any], home: Path, now: float,
                   daemon: Mapping[str, Any], live: Mapping[str, Any] | None = None,
                   probe: Mapping[str, Any] | None = None,
                   thresholds: Thresholds = Thresholds(),
                   tz: tzinfo | None = None) -> dict[str, Any]:
    """Everything the status screen shows, from the store plus the optional live part.

    ``node`` holds name, display_name, node_id and listen; ``daemon`` at least ``running``
    (bool) and ``note`` (why we think so). Blocking: call on the database thread or the CLI.
    """
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
    snapshot = {
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
        "recent_sent": [_sent_row(row, names, store) for row in store.recent_dispatches(
            thresholds.recent)],
        "recent_received": [_received_row(row, names, store, node.get("node_id"))
                            for row in store.recent_received(thresholds.recent)],
        "today": {"since": since_day, "received": store.count_received_since(since_day),
                  "sent": store.count_sent_since(since_day)},
        "failures_24h": [{"kind": k, "code": c, "peer": p, "count": n}
                         for (k, c, p), n in sorted(grouped.items(), key=lambda i: (
                             i[0][0], i[0][1] or "", i[0][2] or ""))],
        "audit": {"entries": seq, "last_signed_seq": heads[-1].seq if heads else 0,
                  "last_signed_at": heads[-1].time if heads else None},
        "disk": (probe or {}).get("disk"),
        "not_writable": list((probe or {}).get("not_writable", [])),
    }
    snapshot["warnings"] = warnings_for(snapshot, thresholds)
    levels = {w["level"] for w in snapshot["warnings"]}
    snapshot["health"] = ("critical" if "critical" in levels else
                          "warning" if "warning" in levels else "ok")
    return snapshot


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


def _daemon(store: Any, daemon: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
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


#: The signed metadata fields a clerk recognises a document by (docs/documents.md); the rest
#: (signer, dates, reply-to) is in the document's trail.
DOCUMENT_FIELDS = ("type", "number", "urgency", "confidentiality", "subject", "kind")


def document_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata shown beside a document in status and console. It came from the signed
    envelope, but from a peer it is still data: renderers escape it."""
    return {key: meta[key] for key in DOCUMENT_FIELDS if meta.get(key) not in (None, "")}


def peer_names(records: Iterable[Any]) -> dict[str, str]:
    """Node ID -> peer name, former identities included: documents delivered, statuses
    signed and audit entries made before a peer's identity rotation name its former node ID
    (docs/keys.md §3), and they are still that office's."""
    names: dict[str, str] = {}
    for record in records:
        for key in record.peer.all_identity_keys():
            names[key.kid] = record.peer.name
        names[record.peer.node_id] = record.peer.name
    return names


def _same_office(names: Mapping[str, str], node_id: str) -> list[str]:
    """Every node ID (current and former) of the office ``node_id`` names."""
    name = names.get(node_id)
    return [other for other, n in names.items() if n == name] if name else [node_id]


def _sent_row(row: Any, names: Mapping[str, str], store: Any) -> dict[str, Any]:
    return {"message_id": row.message_id, "name": row.name, "target": row.target,
            "size": row.size, "sha256": row.sha256, "state": row.state,
            "created_at": row.created_at, "finished_at": row.finished_at, "error": row.error,
            "document": document_fields(row.meta),
            "recipients": [{"peer": names.get(d.peer_node_id, d.peer_node_id),
                            "node_id": d.peer_node_id, "state": d.state,
                            "receipt_at": d.receipt_at, "attempts": d.attempts,
                            "last_error": d.last_error,
                            "processing": store.last_processing_status(
                                row.message_id, _same_office(names, d.peer_node_id))}
                           for d in row.deliveries]}


def _received_row(row: Any, names: Mapping[str, str], store: Any,
                  own_node_id: str | None) -> dict[str, Any]:
    return {"message_id": row.message_id, "name": row.name,
            "from": names.get(row.sender_node_id, row.sender_node_id),
            "sender_node_id": row.sender_node_id, "received_at": row.received_at,
            "size": row.size, "sha256": row.sha256, "stored_path": row.stored_path,
            "state": row.state, "document": document_fields(row.meta),
            "processing": (store.last_processing_status(row.message_id, own_node_id)
                           if own_node_id else None)}


# -- warnings ----------------------------------------------------------------------------------

def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def warnings_for(snapshot: Mapping[str, Any], th: Thresholds) -> list[dict[str, Any]]:
    """Plain-language warnings, most serious first, from a snapshot's numbers."""
    out: list[dict[str, Any]] = []

    def add(level: str, code: str, message: str, peer: str | None = None) -> None:
        out.append({"level": level, "code": code, "message": message, "peer": peer})

    daemon = snapshot["daemon"]
    if not daemon["running"]:
        add("critical", "daemon-down", "The node is NOT running: nothing is sent or received. "
            f"Start it with: lienthong run {snapshot['node'].get('home', 'HOME')} "
            "(or its system service).")
    disk = snapshot.get("disk") or {}
    if disk.get("free_bytes") is not None and disk.get("total_bytes"):
        free, total = disk["free_bytes"], disk["total_bytes"]
        if free < th.disk_free_bytes or free < total * th.disk_free_fraction:
            add("critical", "disk-low", f"Disk space is low: {free / 1024 ** 3:.1f} GiB free of "
                f"{total / 1024 ** 3:.0f} GiB. When the store cannot be written the node stops "
                "taking documents.")
    for folder in snapshot.get("not_writable", []):
        add("critical", "not-writable", f"{folder} is not writable by this user: the node "
            "cannot record or store documents there.")
    unreachable = th.peer_unreachable_hours * 3600
    overdue = th.receipt_overdue_hours * 3600
    for peer in snapshot["peers"]:
        queue = peer["queue"]
        if peer["state"] != "trusted" or not queue["count"]:
            continue
        oldest = queue["oldest"] or {}
        waited = oldest.get("age_seconds") or 0.0
        seen_age = peer["last_seen_age"]
        silent = seen_age if seen_age is not None else waited
        error = f" Last error: {peer['last_error']}." if peer.get("last_error") else ""
        if silent > unreachable and peer.get("connected") is not True:
            add("warning", "peer-unreachable",
                f"{peer['name']} has not been reachable for {_hours(silent)}; "
                f"{queue['count']} document(s) wait for it, the oldest for {_hours(waited)}."
                f"{error}", peer["name"])
        elif waited > overdue:
            add("warning", "receipt-overdue",
                f"{queue['count']} document(s) for {peer['name']} have waited more than "
                f"{_hours(overdue)} for a receipt (oldest {_hours(waited)}).{error}",
                peer["name"])
    failed = sum(f["count"] for f in snapshot["failures_24h"] if f["kind"] == "dispatch-failed")
    if failed:
        add("warning", "documents-failed", f"{failed} document(s) could not be delivered in the "
            "last 24 h; each is in failed/ with a .reason.txt beside it.")
    security = [f for f in snapshot["failures_24h"] if f["kind"] in SECURITY_KINDS]
    if security:
        codes = ", ".join(sorted({f["code"] or f["kind"] for f in security}))
        add("warning", "security-refusals", f"{sum(f['count'] for f in security)} connection(s) "
            f"or document(s) were refused for security reasons in the last 24 h ({codes}). "
            "See: lienthong audit list --kind security-refused")
    order = {"critical": 0, "warning": 1}
    return sorted(out, key=lambda w: order[w["level"]])



# -- one document's trail ------------------------------------------------------------------------

def build_trail(store: Any, message_id: str) -> dict[str, Any]:
    """Everything recorded about one message: the dispatch or receptions, and every audit event.

    Blocking; peer node IDs are given with their directory names. Receipts are included as
    stored (``audit verify`` and ``receipt verify`` check them).
    """
    names = peer_names(store.list_peers())
    dispatch = store.get_dispatch(message_id)
    received = store.received_for_message(message_id)
    events = store.audit_search(message_ids=[message_id])
    return {
        "message_id": message_id,
        "found": bool(dispatch or received or events),
        "sent": dict(_sent_row(dispatch, names, store), spool_dir=dispatch.spool_dir,
                     sent_path=dispatch.sent_path, meta=dict(dispatch.meta),
                     receipts={names.get(d.peer_node_id, d.peer_node_id): d.receipt
                               for d in dispatch.deliveries if d.receipt})
        if dispatch else None,
        "received": [dict(_received_row(row, names, store, None), receipt=row.receipt,
                          meta=dict(row.meta))
                     for row in received],
        "events": [{"seq": e.seq, "time": e.time, "kind": e.kind,
                    "peer": names.get(e.peer, e.peer) if e.peer else None,
                    "digest": e.digest, "detail": e.detail} for e in events],
    }
