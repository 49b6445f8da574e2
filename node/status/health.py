"""When a snapshot's numbers become warnings: the thresholds, the plain-language warnings an
IT officer can act on (most serious first), and the one word for the node's health.

Each warning is a ``Phrase`` (node/language/text.py): the snapshot carries its English text for
scripts and the phrase itself, so ``lienthong status``, the console and the web page show it in
the reader's language.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.node.language.catalog import DEFAULT_LANGUAGE
from lienthong.node.language.names import period_phrase, show_date
from lienthong.node.language.text import Phrase, _

SECURITY_KINDS = frozenset({"security-refused", "receipt-refused"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a number becomes a warning. Defaults suit an office network that is up by day."""

    disk_free_bytes: int = 1024 ** 3
    disk_free_fraction: float = 0.05
    peer_unreachable_hours: float = 4.0
    receipt_overdue_hours: float = 2.0
    recent: int = 8


def _hours(seconds: float) -> Phrase:
    if seconds < 3600:
        return Phrase("{minutes} min", minutes=int(seconds // 60))
    if seconds < 86400 * 2:
        return Phrase("{hours} h", hours=f"{seconds / 3600:.1f}")
    return Phrase("{days} days", days=f"{seconds / 86400:.1f}")


def warnings_for(snapshot: Mapping[str, Any], th: Thresholds) -> list[dict[str, Any]]:
    """Plain-language warnings, most serious first, from a snapshot's numbers: each with its
    English ``message`` (scripts, logs) and its ``text``, the phrase a renderer shows in the
    reader's language (``Phrase.as_json``)."""
    out: list[dict[str, Any]] = []

    def add(level: str, code: str, message: Phrase, peer: str | None = None) -> None:
        out.append({"level": level, "code": code, "message": str(message),
                    "text": message.as_json(), "peer": peer})

    daemon = snapshot["daemon"]
    if not daemon["running"]:
        add("critical", "daemon-down", Phrase(
            "The node is NOT running: nothing is sent or received. Start it with: lienthong "
            "run {home} (or its system service).", home=snapshot["node"].get("home", "HOME")))
    disk = snapshot.get("disk") or {}
    if disk.get("free_bytes") is not None and disk.get("total_bytes"):
        free, total = disk["free_bytes"], disk["total_bytes"]
        if free < th.disk_free_bytes or free < total * th.disk_free_fraction:
            add("critical", "disk-low", Phrase(
                "Disk space is low: {free} GiB free of {total} GiB. When the store cannot be "
                "written the node stops taking documents.", free=f"{free / 1024 ** 3:.1f}",
                total=f"{total / 1024 ** 3:.0f}"))
    for folder in snapshot.get("not_writable", []):
        add("critical", "not-writable", Phrase(
            "{folder} is not writable by this user: the node cannot record or store documents "
            "there.", folder=folder))
    problem = snapshot.get("access_problem")
    if problem:
        add("critical", "clerks-group", Phrase.from_json(problem) if isinstance(problem, Mapping)
            else Phrase("{problem}", problem=problem))
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
        error = Phrase(" Last error: {error}.", error=peer["last_error"]) \
            if peer.get("last_error") else ""
        if silent > unreachable and peer.get("connected") is not True:
            add("warning", "peer-unreachable", Phrase(
                "{peer} has not been reachable for {silent}; {count} document(s) wait for it, "
                "the oldest for {waited}.{error}", peer=peer["name"], silent=_hours(silent),
                count=queue["count"], waited=_hours(waited), error=error), peer["name"])
        elif waited > overdue:
            add("warning", "receipt-overdue", Phrase(
                "{count} document(s) for {peer} have waited more than {overdue} for a receipt "
                "(oldest {waited}).{error}", count=queue["count"], peer=peer["name"],
                overdue=_hours(overdue), waited=_hours(waited), error=error), peer["name"])
    failed = sum(f["count"] for f in snapshot["failures_24h"] if f["kind"] == "dispatch-failed")
    if failed:
        add("warning", "documents-failed", Phrase(
            "{count} document(s) could not be delivered in the last 24 h; each is in failed/ "
            "with a .reason.txt beside it.", count=failed))
    for item in (snapshot.get("review") or {}).get("reconciliations", []):
        if item["state"] == "differs":
            add("warning", "reconciliation-differs", _differs_text(item), item["peer"])
        elif item["pending_seconds"] is not None and item["pending_seconds"] > 86400:
            add("warning", "reconciliation-pending", Phrase(
                "Reconciliation with {peer} for {period} is still pending after {waited}: "
                "{peer} has not answered; the node keeps asking.", peer=item["peer"],
                period=item["period"], waited=_hours(item["pending_seconds"])), item["peer"])
    security = [f for f in snapshot["failures_24h"] if f["kind"] in SECURITY_KINDS]
    if security:
        codes = ", ".join(sorted({f["code"] or f["kind"] for f in security}))
        add("warning", "security-refusals", Phrase(
            "{count} connection(s) or document(s) were refused for security reasons in the "
            "last 24 h ({codes}). See: lienthong audit list --kind security-refused",
            count=sum(f["count"] for f in security), codes=codes))
    for alert in (snapshot.get("deadlines") or {}).get("alerts", []):
        add("warning", *_deadline_warning(alert), alert["office"])
    order = {"critical": 0, "warning": 1}
    return sorted(out, key=lambda w: order[w["level"]])


def _differs_text(item: Mapping[str, Any]) -> Phrase:
    """A reconciliation that differs: documents that differ and days left uncompared (a
    busy period's overflow) are told apart, for each asks something else of the clerk."""
    peer, period = item["peer"], item["period"]
    documents, days = item["differences"], item.get("days_not_compared", 0)
    if documents and days:
        return Phrase("Reconciliation with {peer} for {period}: {count} document(s) differ "
                      "between the two offices' records, and {days} day(s) not compared "
                      "(reconcile those months one by one). Nothing was changed. See: lienthong "
                      "reconcile --peer {peer} --period {period}", peer=peer, period=period,
                      count=documents, days=days)
    if days:
        return Phrase("Reconciliation with {peer} for {period}: {days} day(s) not compared "
                      "(reconcile those months one by one). Nothing was changed. See: lienthong "
                      "reconcile --peer {peer} --period {period}", peer=peer, period=period,
                      days=days)
    return Phrase("Reconciliation with {peer} for {period}: {count} document(s) differ between "
                  "the two offices' records. Nothing was changed. See: lienthong reconcile "
                  "--peer {peer} --period {period}", peer=peer, period=period, count=documents)


_KIND_TEXT = {"annual": _("annual programme"), "quarterly": _("quarterly programme"),
              "monthly": _("monthly programme"), "weekly": _("weekly programme"),
              "document": _("document"), "conclusion": _("meeting conclusion")}


def _deadline_warning(alert: Mapping[str, Any]) -> tuple[str, Phrase]:
    """The code and sentence of one deadline alert (node/coordination/deadlines.py)."""
    kind = _KIND_TEXT.get(alert["kind"])
    what: Phrase | str = Phrase(kind) if kind else alert["kind"]
    fields = {"what": what, "period": period_phrase(alert["period"]), "office": alert["office"],
              "owed_to": alert["owed_to"], "due": show_date(alert["due"], DEFAULT_LANGUAGE),
              "left": alert["working_days_left"]}
    if alert["kind"] in ("document", "conclusion"):
        if alert["state"] == "due":
            return "deadline-reminder", Phrase(
                "{office} has {left} working day(s) left to process the {what} {name} from "
                "{owed_to}, due {due}.", name=alert["name"], **fields)
        return "deadline-overdue", Phrase(
            "{office} has not finished the {what} {name} from {owed_to}, due {due}.",
            name=alert["name"], **fields)
    if alert["state"] == "due":
        return "programme-reminder", Phrase(
            "The {what} for {period} from {office} to {owed_to} is due {due}: {left} working "
            "day(s) left.", **fields)
    return "programme-overdue", Phrase(
        "The {what} for {period} from {office} to {owed_to} is overdue: it was due {due}.",
        **fields)


def too_wide_message(wide: Mapping[str, Any]) -> Phrase:
    """One folder of what others on this machine can read, and the command that fixes it."""
    who = (Phrase("the node's user and the group {group}", group=wide["group"])
           if wide.get("group") else Phrase("the node's user"))
    if wide.get("folder_mode") and wide.get("files"):
        return Phrase("The folder {folder} (mode {mode}) and {count} file(s) in it can be read "
                      "by more people than {who}. Fix it as root: {fix}", folder=wide["folder"],
                      mode=wide["folder_mode"], count=wide["files"], who=who, fix=wide["fix"])
    if wide.get("folder_mode"):
        return Phrase("The folder {folder} (mode {mode}, at most {allowed}) can be read by more "
                      "people than {who}. Fix it: {fix}", folder=wide["folder"],
                      mode=wide["folder_mode"], allowed=wide["allowed_folder_mode"], who=who,
                      fix=wide["fix"])
    return Phrase("{count} file(s) in {folder} (mode {modes}, at most {allowed}) can be read by "
                  "more people than {who}. Fix them as root: {fix} (the node gives its own files "
                  "the rule at every start)", count=wide["files"], folder=wide["folder"],
                  modes=", ".join(wide["file_modes"]), allowed=wide["allowed"], who=who,
                  fix=wide["fix"])


def health_of(warnings: Iterable[Mapping[str, Any]]) -> str:
    """``critical``, ``warning`` or ``ok``: the most serious level among ``warnings``."""
    levels = {w["level"] for w in warnings}
    return "critical" if "critical" in levels else "warning" if "warning" in levels else "ok"
