"""When a snapshot's numbers become warnings: the thresholds, the plain-language warnings an
IT officer can act on (most serious first), and the one word for the node's health.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SECURITY_KINDS = frozenset({"security-refused", "receipt-refused"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a number becomes a warning. Defaults suit an office network that is up by day."""

    disk_free_bytes: int = 1024 ** 3
    disk_free_fraction: float = 0.05
    peer_unreachable_hours: float = 4.0
    receipt_overdue_hours: float = 2.0
    recent: int = 8


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
    if snapshot.get("access_problem"):
        add("critical", "clerks-group", snapshot["access_problem"])
    for wide in snapshot.get("too_wide") or []:
        add("warning", "too-wide", too_wide_message(wide))
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
    for item in (snapshot.get("review") or {}).get("reconciliations", []):
        if item["state"] == "differs":
            add("warning", "reconciliation-differs", _differs_text(item), item["peer"])
        elif item["pending_seconds"] is not None and item["pending_seconds"] > 86400:
            add("warning", "reconciliation-pending", f"Reconciliation with {item['peer']} for "
                f"{item['period']} is still pending after {_hours(item['pending_seconds'])}: "
                f"{item['peer']} has not answered; the node keeps asking.", item["peer"])
    security = [f for f in snapshot["failures_24h"] if f["kind"] in SECURITY_KINDS]
    if security:
        codes = ", ".join(sorted({f["code"] or f["kind"] for f in security}))
        add("warning", "security-refusals", f"{sum(f['count'] for f in security)} connection(s) "
            f"or document(s) were refused for security reasons in the last 24 h ({codes}). "
            "See: lienthong audit list --kind security-refused")
    for alert in (snapshot.get("deadlines") or {}).get("alerts", []):
        add("warning", *_deadline_warning(alert), alert["office"])
    order = {"critical": 0, "warning": 1}
    return sorted(out, key=lambda w: order[w["level"]])


def _differs_text(item: Mapping[str, Any]) -> str:
    """A reconciliation that differs: documents that differ and days left uncompared (a
    busy period's overflow) are told apart, for each asks something else of the clerk."""
    peer, period = item["peer"], item["period"]
    documents, days = item["differences"], item.get("days_not_compared", 0)
    if documents and days:
        return (f"Reconciliation with {peer} for {period}: {documents} document(s) differ "
                f"between the two offices' records, and {days} day(s) not compared (reconcile "
                f"those months one by one). Nothing was changed. See: lienthong reconcile "
                f"--peer {peer} --period {period}")
    if days:
        return (f"Reconciliation with {peer} for {period}: {days} day(s) not compared "
                f"(reconcile those months one by one). Nothing was changed. See: lienthong "
                f"reconcile --peer {peer} --period {period}")
    return (f"Reconciliation with {peer} for {period}: {documents} document(s) differ between "
            f"the two offices' records. Nothing was changed. See: lienthong reconcile --peer "
            f"{peer} --period {period}")


_KIND_TEXT = {"annual": "annual programme", "quarterly": "quarterly programme",
              "monthly": "monthly programme", "weekly": "weekly programme",
              "document": "document", "conclusion": "meeting conclusion"}


def _deadline_warning(alert: Mapping[str, Any]) -> tuple[str, str]:
    """The code and sentence of one deadline alert (node/coordination/deadlines.py)."""
    what = _KIND_TEXT.get(alert["kind"], alert["kind"])
    fields = {"what": what, "period": alert["period"], "office": alert["office"],
              "owed_to": alert["owed_to"], "due": alert["due"],
              "left": alert["working_days_left"]}
    if alert["kind"] in ("document", "conclusion"):
        if alert["state"] == "due":
            return "deadline-reminder", (
                "{office} has {left} working day(s) left to process the {what} "
                "{name} from {owed_to}, due {due}.").format(name=alert["name"], **fields)
        return "deadline-overdue", (
            "{office} has not finished the {what} {name} from {owed_to}, "
            "due {due}.").format(name=alert["name"], **fields)
    if alert["state"] == "due":
        return "programme-reminder", (
            "The {what} for {period} from {office} to {owed_to} is due {due}: "
            "{left} working day(s) left.").format(**fields)
    return "programme-overdue", (
        "The {what} for {period} from {office} to {owed_to} is overdue: it was due "
        "{due}.").format(**fields)


def too_wide_message(wide: Mapping[str, Any]) -> str:
    """One folder of what others on this machine can read, and the command that fixes it."""
    who = (f"the node's user and the group {wide['group']}" if wide.get("group")
           else "the node's user")
    if wide.get("folder_mode") and wide.get("files"):
        return (f"The folder {wide['folder']} (mode {wide['folder_mode']}) and {wide['files']} "
                f"file(s) in it can be read by more people than {who}. Fix it as root: "
                f"{wide['fix']}")
    if wide.get("folder_mode"):
        return (f"The folder {wide['folder']} (mode {wide['folder_mode']}, at most "
                f"{wide['allowed_folder_mode']}) can be read by more people than {who}. Fix "
                f"it: {wide['fix']}")
    return (f"{wide['files']} file(s) in {wide['folder']} (mode "
            f"{', '.join(wide['file_modes'])}, at most {wide['allowed']}) can be read by more "
            f"people than {who}. Fix them as root: {wide['fix']} (the node gives its own "
            "files the rule at every start)")


def health_of(warnings: Iterable[Mapping[str, Any]]) -> str:
    """``critical``, ``warning`` or ``ok``: the most serious level among ``warnings``."""
    levels = {w["level"] for w in warnings}
    return "critical" if "critical" in levels else "warning" if "warning" in levels else "ok"
