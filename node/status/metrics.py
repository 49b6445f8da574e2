"""Prometheus metrics for ``/metrics``: derived from the store at scrape time, not counted on the
hot path.

Theory of operation
-------------------
Almost every number an operator graphs is already recorded durably: queue depths and traffic
in ``deliveries``/``received``, failures as audit events with a ``code``, receipt latency as
``receipt_at - created_at`` of each delivered delivery. Reading them at scrape time means the
counters survive restarts, agree with ``lienthong status`` and cost the delivery path nothing.

Two things are kept in memory between scrapes (``MetricsState``), both because the store only
ever grows there: failure counters are *folded* from the append-only audit log (each scrape
reads only the entries after the last one seen), and the latency histogram is recomputed only
when the number of delivered deliveries changed (a delivered row is final).

Label values are escaped per the exposition format. Codes in failure events can come from a
peer (a REJECT code), so a code is used as a label only if it looks like one of ours and only
the first ``MAX_CODES`` distinct codes get their own series: a hostile peer can neither inject
text into the exposition nor blow up the number of series.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.status.snapshot import FAILURE_KINDS
from lienthong.node.store.database import Store

#: Receipt latency buckets (seconds): from "the peer was up" to "the peer was away for days".
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0,
                   259200.0)
LINK_STATES = ("idle", "waiting", "connecting", "connected", "stopped")
MAX_CODES = 64
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative bucket counts (Prometheus ``le`` semantics), sum and count."""

    buckets: tuple[float, ...]
    cumulative: tuple[int, ...]
    total: float
    count: int


def histogram(values: Iterable[float], buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
    counts = [0] * len(buckets)
    total = 0.0
    count = 0
    for value in values:
        count += 1
        total += value
        for index, bound in enumerate(buckets):
            if value <= bound:
                counts[index] += 1
                break
    cumulative, running = [], 0
    for number in counts:
        running += number
        cumulative.append(running)
    return Histogram(tuple(buckets), tuple(cumulative), total, count)


def latencies(pairs: Iterable[tuple[str, str]]) -> list[float]:
    """Seconds from taken to receipt for each (created_at, receipt_at); bad times skipped."""
    out = []
    for created, receipt in pairs:
        try:
            out.append(max(parse_rfc3339(receipt) - parse_rfc3339(created), 0.0))
        except (TypeError, ValueError):
            continue
    return out


def label_code(code: str | None, known: set[str]) -> str:
    """A failure code fit to be a label value: ours, bounded in number, or ``other``."""
    if code is None:
        return "none"
    if not _CODE.fullmatch(code):
        return "other"
    if code not in known:
        if len(known) >= MAX_CODES:
            return "other"
        known.add(code)
    return code


@dataclass
class MetricsState:
    """What the daemon remembers between scrapes (touched on the database thread only)."""

    after_seq: int = 0
    failures: dict[tuple[str, str, str], int] = field(default_factory=dict)
    codes: set[str] = field(default_factory=set)
    delivered: int = -1
    latency: Histogram = field(default_factory=lambda: histogram(()))

    def refresh(self, store: Store, names: Mapping[str, str]) -> None:
        """Fold new failure events and, if deliveries were receipted, recompute latency."""
        self.after_seq, events = store.failure_events(FAILURE_KINDS, after_seq=self.after_seq)
        for event in events:
            peer = names.get(event.peer, "unknown") if event.peer else "none"
            key = (event.kind, label_code(event.code, self.codes), peer)
            self.failures[key] = self.failures.get(key, 0) + 1
        delivered = store.delivery_counts()["delivered"]
        if delivered != self.delivered:
            self.latency = histogram(latencies(store.receipt_latency_pairs()))
            self.delivered = delivered


def escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, metric: str, value: float | int | None, **labels: str) -> None:
        if value is None:
            return
        text = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels.items())
        number = repr(float(value)) if isinstance(value, float) else str(int(value))
        self.lines.append(f"{metric}{{{text}}} {number}" if text else f"{metric} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(snapshot: Mapping[str, Any], state: MetricsState) -> str:
    """The Prometheus text exposition of a status snapshot plus the folded counters."""
    out = _Exposition()
    node = snapshot["node"]
    out.family("lienthong_info", "gauge", "This node (always 1).")
    out.sample("lienthong_info", 1, name=node.get("name", ""), node_id=node.get("node_id", ""))
    out.family("lienthong_uptime_seconds", "gauge", "Seconds since the daemon started.")
    out.sample("lienthong_uptime_seconds", snapshot["daemon"].get("uptime_seconds"))
    _peer_metrics(out, snapshot["peers"])
    _outbox_metrics(out, snapshot)
    out.family("lienthong_failures_total", "counter",
               "Audited failures by kind, code and peer, since the store was created.")
    for (kind, code, peer), count in sorted(state.failures.items()):
        out.sample("lienthong_failures_total", count, kind=kind, code=code, peer=peer)
    name = "lienthong_receipt_latency_seconds"
    out.family(name, "histogram", "Time from taking a document to a verified receipt, per "
               "recipient.")
    for bound, count in zip(state.latency.buckets, state.latency.cumulative, strict=True):
        out.sample(f"{name}_bucket", count, le=repr(bound))
    out.sample(f"{name}_bucket", state.latency.count, le="+Inf")
    out.sample(f"{name}_sum", float(state.latency.total))
    out.sample(f"{name}_count", state.latency.count)
    warnings: dict[str, int] = {}
    for warning in snapshot["warnings"]:
        warnings[warning["code"]] = warnings.get(warning["code"], 0) + 1
    out.family("lienthong_warnings", "gauge", "Warnings the status screen shows, by code.")
    for code, count in sorted(warnings.items()):
        out.sample("lienthong_warnings", count, code=code)
    _deadline_metrics(out, snapshot.get("deadlines"))
    audit = snapshot["audit"]
    out.family("lienthong_audit_entries", "gauge", "Entries in the audit log.")
    out.sample("lienthong_audit_entries", audit["entries"])
    out.family("lienthong_audit_signed_seq", "gauge", "Last audit entry covered by a signed "
               "head.")
    out.sample("lienthong_audit_signed_seq", audit["last_signed_seq"])
    disk = snapshot.get("disk") or {}
    out.family("lienthong_disk_free_bytes", "gauge", "Free bytes on the disk holding the home.")
    out.sample("lienthong_disk_free_bytes", disk.get("free_bytes"))
    return out.text()


def _deadline_metrics(out: _Exposition, deadlines: Mapping[str, Any] | None) -> None:
    """Obligations per office and state (docs/coordination.md): overdue, missing, due, ..."""
    if deadlines is None:
        return
    out.family("lienthong_obligations", "gauge", "Programme and document deadlines in view, "
               "by office and state (on-time, late, due, overdue, missing).")
    for office, states in sorted(deadlines["by_office"].items()):
        for state, count in sorted(states.items()):
            out.sample("lienthong_obligations", count, office=office, state=state)
    reminders: dict[str, int] = {}
    for alert in deadlines["alerts"]:
        if alert["state"] == "due":
            reminders[alert["office"]] = reminders.get(alert["office"], 0) + 1
    out.family("lienthong_obligations_reminders", "gauge", "Deadlines within the reminder "
               "window (working days), by office.")
    for office, count in sorted(reminders.items()):
        out.sample("lienthong_obligations_reminders", count, office=office)


def _connected(peer: Mapping[str, Any]) -> int | None:
    return None if peer["connected"] is None else int(peer["connected"])


def _last_seen(peer: Mapping[str, Any]) -> float | None:
    return parse_rfc3339(peer["last_seen_at"]) if peer["last_seen_at"] else None


def _oldest_age(peer: Mapping[str, Any]) -> float:
    oldest = peer["queue"]["oldest"]
    return float(oldest["age_seconds"] or 0.0) if oldest else 0.0


#: (name, type, help, value of one peer's snapshot entry); ``None`` means "no sample".
PEER_FAMILIES: tuple[tuple[str, str, str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("lienthong_peer_connected", "gauge", "1 while a sending connection to the peer is up.",
     _connected),
    ("lienthong_peer_connect_failures", "gauge", "Consecutive failed attempts to connect.",
     lambda p: p["failures"]),
    ("lienthong_peer_last_seen_timestamp_seconds", "gauge", "When the peer was last seen.",
     _last_seen),
    ("lienthong_queue_depth", "gauge", "Documents waiting for the peer's receipt.",
     lambda p: p["queue"]["count"]),
    ("lienthong_queue_bytes", "gauge", "Plaintext bytes waiting for the peer.",
     lambda p: p["queue"]["bytes"]),
    ("lienthong_queue_oldest_age_seconds", "gauge", "Age of the oldest waiting document.",
     _oldest_age),
    ("lienthong_documents_sent_total", "counter", "Documents the peer receipted.",
     lambda p: p["sent"]["documents"]),
    ("lienthong_document_bytes_sent_total", "counter", "Plaintext bytes the peer receipted.",
     lambda p: p["sent"]["bytes"]),
    ("lienthong_documents_received_total", "counter", "Documents received from the peer.",
     lambda p: p["received"]["documents"]),
    ("lienthong_document_bytes_received_total", "counter",
     "Plaintext bytes received from the peer.", lambda p: p["received"]["bytes"]),
)


def _peer_metrics(out: _Exposition, peers: Sequence[Mapping[str, Any]]) -> None:
    for name, kind, help_text, value in PEER_FAMILIES:
        out.family(name, kind, help_text)
        for peer in peers:
            out.sample(name, value(peer), peer=peer["name"])
    out.family("lienthong_peer_link_state", "gauge", "The sending link's state (one series "
               "per peer is 1).")
    for peer in peers:
        if peer["link"] is not None:
            for state in LINK_STATES:
                out.sample("lienthong_peer_link_state", int(peer["link"] == state),
                           peer=peer["name"], state=state)


def _outbox_metrics(out: _Exposition, snapshot: Mapping[str, Any]) -> None:
    outbox = snapshot["outbox"]
    out.family("lienthong_dispatches", "gauge", "Documents taken, by state.")
    for state, count in sorted(outbox["dispatches"].items()):
        out.sample("lienthong_dispatches", count, state=state)
    out.family("lienthong_deliveries", "gauge", "Deliveries (one per recipient), by state.")
    for state, count in sorted(outbox["deliveries"].items()):
        out.sample("lienthong_deliveries", count, state=state)
    out.family("lienthong_outbox_waiting_files", "gauge", "Files in outbox/ not yet taken.")
    out.sample("lienthong_outbox_waiting_files", outbox.get("waiting_in_outbox"))
    out.family("lienthong_failed_files", "gauge", "Documents parked in failed/.")
    out.sample("lienthong_failed_files", outbox.get("failed_files"))
    transfers = snapshot["transfers"]
    out.family("lienthong_transfers_in_flight", "gauge", "Outgoing transfers in progress.")
    out.sample("lienthong_transfers_in_flight", len(transfers))
    out.family("lienthong_transfer_bytes_remaining", "gauge",
               "Bytes still to send in transfers in progress.")
    out.sample("lienthong_transfer_bytes_remaining",
               sum(max(t["size"] - t["offset"], 0) for t in transfers))
