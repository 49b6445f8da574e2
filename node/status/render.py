"""Drawing a status snapshot (``lienthong.node.status.snapshot``) for people, with rich.

Why rich (and not textual): ``lienthong status`` prints one screen and exits, often over SSH or
into a ticket, and ``lienthong console`` redraws that same screen every two seconds. rich
renders the same tables for both (``Console.print`` and ``rich.live.Live``), degrades to plain
text when output is not a terminal, and is one small dependency; textual would bring an
application framework, its own event loop and CSS for what is a read-only dashboard.

Everything shown that came from a peer (document names, reasons in errors, metadata) is
attacker data. It is passed through ``clean`` (control characters, bidi overrides and
zero-width characters replaced, so a name can neither move the cursor nor disguise
``invoice\u202efdp.exe``) and either put into ``rich.text.Text`` (never parsed as markup) or
escaped with ``rich.markup.escape`` where a markup string is built.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lienthong.node.core.clock import parse_rfc3339

#: Invisible characters that can reorder or hide text (Trojan Source, RLO file names).
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d"
                       "\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")
MAX_TEXT = 160


def clean(value: Any, limit: int = MAX_TEXT) -> str:
    """Peer-supplied text made harmless for a terminal: no control or invisible characters."""
    text = "" if value is None else str(value)
    out = []
    for char in text[:limit]:
        if char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out) + ("…" if len(text) > limit else "")


def safe(value: Any, limit: int = MAX_TEXT) -> str:
    """``clean`` and escaped for use inside a rich markup string."""
    return escape(clean(value, limit))


def text(value: Any, style: str = "", limit: int = MAX_TEXT) -> Text:
    """A rich Text of cleaned peer data (Text is never parsed as markup)."""
    return Text(clean(value, limit), style=style)


def size(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds // 86400:.0f} d {seconds % 86400 // 3600:.0f} h"


def when(stamp: str | None, now: float, tz: tzinfo | None = None) -> str:
    """A time as an operator reads it: "14:03" today, "25/11 14:03" before (local time)."""
    if not stamp:
        return "never"
    try:
        seconds = parse_rfc3339(stamp)
    except ValueError:
        return clean(stamp, 40)
    moment = datetime.fromtimestamp(seconds, tz) if tz else datetime.fromtimestamp(
        seconds).astimezone()
    today = datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now).astimezone()
    if moment.date() == today.date():
        return moment.strftime("%H:%M:%S")
    if moment.year == today.year:
        return moment.strftime("%d/%m %H:%M")
    return moment.strftime("%d/%m/%Y %H:%M")


def ago(stamp: str | None, now: float) -> str:
    if not stamp:
        return "never"
    try:
        return duration(now - parse_rfc3339(stamp)) + " ago"
    except ValueError:
        return "?"


# -- the status screen ---------------------------------------------------------------------------

def render_status(snapshot: Mapping[str, Any], *, peer: str | None = None,
                  tz: tzinfo | None = None, footer: RenderableType | None = None
                  ) -> RenderableType:
    """The whole status screen; ``peer`` limits peers, transfers and documents to one peer."""
    now = parse_rfc3339(snapshot["generated_at"])
    parts: list[RenderableType] = [_header(snapshot, now, tz)]
    if snapshot["warnings"]:
        parts.append(_warnings(snapshot["warnings"]))
    parts.append(_peers(snapshot, now, tz, peer))
    parts.append(_outbox(snapshot))
    parts.append(_transfers(snapshot, peer))
    parts.append(_recent_sent(snapshot, now, tz, peer))
    parts.append(_recent_received(snapshot, now, tz, peer))
    if footer is not None:
        parts.append(footer)
    else:
        parts.append(Text("One document's whole story: lienthong audit trail MESSAGE_ID_OR_NAME"
                          " · check the evidence: lienthong audit verify", style="dim"))
    return Group(*parts)


#: What a waiting member of an active/standby pair is doing (node/app/standby.py).
STANDBY_STATES = {
    "waiting": "process {pid} on {host} is waiting to take over (since {since})",
    "database-unreachable": "process {pid} on {host} cannot reach the database and is still "
                            "waiting; it takes over only once it holds the lease "
                            "(since {since})",
    "taking-over": "process {pid} on {host} holds the lease and is taking over (since {since})",
}


def _header(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None) -> Panel:
    node, daemon = snapshot["node"], snapshot["daemon"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Node ID", text(node.get("node_id")))
    if daemon["running"]:
        line = Text("● running", style="bold green")
        if daemon.get("uptime_seconds") is not None:
            line.append(f" for {duration(daemon['uptime_seconds'])}"
                        f" (since {when(daemon.get('started_at'), now, tz)})")
        line.append(f"; peers connect to {clean(node.get('listen'))}")
        if daemon.get("status_listen"):
            line.append(f"; status API http://{clean(daemon['status_listen'])}/status")
    else:
        line = Text("✗ NOT RUNNING", style="bold red")
        if daemon.get("last_stopped_at") and daemon.get("stopped_cleanly"):
            line.append(f" — stopped at {when(daemon['last_stopped_at'], now, tz)} "
                        f"({ago(daemon['last_stopped_at'], now)})")
        elif daemon.get("last_started_at"):
            line.append(f" — last started {when(daemon['last_started_at'], now, tz)}; it did "
                        "not stop cleanly (crash or power loss?)")
        else:
            line.append(" — it has never run")
        line.append(". Showing what the store knows.", style="dim")
        if daemon.get("note"):
            line.append(f" {clean(daemon['note'], 200)}", style="dim")
    grid.add_row("Daemon", line)
    for standby in snapshot.get("standby", []):
        grid.add_row("Standby", Text(STANDBY_STATES.get(str(standby.get("state")),
                                                        "{state}").format(
            pid=standby.get("pid"), host=clean(standby.get("host")),
            state=clean(standby.get("state")), since=when(standby.get("since"), now, tz))))
    health = snapshot["health"]
    count = len(snapshot["warnings"])
    grid.add_row("Health", {
        "ok": Text("✓ all good", style="bold green"),
        "warning": Text(f"⚠ {count} warning(s), see below", style="bold yellow"),
        "critical": Text(f"✗ needs attention: {count} problem(s), see below", style="bold red"),
    }[health])
    today = snapshot["today"]
    grid.add_row("Today", f"{today['received']} received · {today['sent']} sent and fully "
                          "receipted (since midnight)")
    grid.add_row("Home", text(node.get("home")))
    title = f"lienthong · [bold]{safe(node.get('name'))}[/bold]"
    if node.get("display_name") and node.get("display_name") != node.get("name"):
        title += f" — {safe(node.get('display_name'))}"
    style = {"ok": "green", "warning": "yellow", "critical": "red"}[health]
    return Panel(grid, title=title, title_align="left", border_style=style)


def _warnings(warnings: Sequence[Mapping[str, Any]]) -> Panel:
    lines = Text()
    for index, warning in enumerate(warnings):
        if index:
            lines.append("\n")
        critical = warning["level"] == "critical"
        lines.append("✗ " if critical else "⚠ ", style="bold red" if critical else "bold yellow")
        lines.append(clean(warning["message"], 400))
    return Panel(lines, title="Warnings", title_align="left", border_style="red" if any(
        w["level"] == "critical" for w in warnings) else "yellow")


def _connection(peer: Mapping[str, Any], running: bool, now: float, tz: tzinfo | None) -> Text:
    if peer["state"] == "revoked":
        return Text(f"revoked {when(peer.get('revoked_at'), now, tz)}", style="red")
    link = peer.get("link")
    if link == "connected":
        return Text("● connected", style="green")
    if link == "connecting":
        return Text("… connecting", style="yellow")
    if link == "waiting" or (peer["failures"] and running):
        out = Text("↻ retrying", style="yellow")
        if peer.get("next_attempt_at"):
            out.append(f" at {when(peer['next_attempt_at'], now, tz)}")
        if peer["failures"]:
            out.append(f" ({peer['failures']} failed)")
        return out
    if not running:
        return Text("— (daemon down)", style="dim")
    return Text("○ idle", style="dim")


def _last_seen(peer: Mapping[str, Any], now: float) -> Text:
    """When the peer was last seen, and whether it was reachable by the newest evidence (a
    ``peers test`` or a connection either way)."""
    out = Text(ago(peer.get("last_seen_at"), now) if peer.get("last_seen_at") else "never")
    reachable = peer.get("reachable")
    if reachable is not None:
        source = reachable["source"]
        if reachable["reachable"]:
            out.append(f"\n✓ reachable ({source})", style="green")
        else:
            out.append(f"\n✗ not reachable ({source} {ago(reachable['at'], now)})", style="red")
    return out


def _peers(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None,
           only: str | None) -> RenderableType:
    table = Table(title="Peers", title_justify="left", expand=True, show_lines=False)
    for column in ("Peer", "Connection", "Last seen", "Waiting", "Oldest waiting",
                   "Last error"):
        table.add_column(column, overflow="fold")
    running = snapshot["daemon"]["running"]
    shown = [p for p in snapshot["peers"] if only is None or p["name"] == only]
    for peer in shown:
        queue = peer["queue"]
        oldest = queue["oldest"]
        table.add_row(
            text(peer["name"], "bold") + Text("\n") + text(", ".join(peer["addresses"]), "dim"),
            _connection(peer, running, now, tz),
            _last_seen(peer, now),
            Text(f"{queue['count']} · {size(queue['bytes'])}" if queue["count"] else "—",
                 style="yellow" if queue["count"] else ""),
            (text(oldest["name"], limit=40) + Text(f"  {duration(oldest['age_seconds'])}",
                                                   style="yellow")) if oldest else Text("—"),
            text(peer.get("last_error") or "", "red", limit=120))
    if not shown:
        return Text("No peers enrolled yet: lienthong peers add THEIR.card" if only is None
                    else f"No peer named {clean(only)}.", style="yellow")
    return table


def _outbox(snapshot: Mapping[str, Any]) -> RenderableType:
    outbox = snapshot["outbox"]
    dispatches = outbox["dispatches"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    line = Text()
    line.append(f"{dispatches['sending']} waiting for receipts",
                style="yellow" if dispatches["sending"] else "")
    line.append(" · ")
    line.append(f"{dispatches['sent']} sent", style="green" if dispatches["sent"] else "")
    line.append(" · ")
    line.append(f"{dispatches['failed']} failed", style="red" if dispatches["failed"] else "")
    grid.add_row("Documents", line)
    folders = Text()
    waiting = outbox.get("waiting_in_outbox")
    if waiting is not None:
        folders.append(f"outbox/ {waiting} file(s) not yet taken",
                       style="yellow" if waiting and not snapshot["daemon"]["running"] else "")
    if outbox.get("failed_files") is not None:
        folders.append(f" · failed/ {outbox['failed_files']} file(s)",
                       style="red" if outbox["failed_files"] else "")
    grid.add_row("Folders", folders)
    return grid


def _transfers(snapshot: Mapping[str, Any], only: str | None) -> RenderableType:
    if not snapshot["daemon"]["running"]:
        return Text("Transfers: none (the daemon is not running)", style="dim")
    transfers = [t for t in snapshot["transfers"] if only is None or t["peer_name"] == only]
    receiving = [r for r in snapshot.get("receiving", []) if only is None
                 or r["peer_name"] == only]
    if not transfers and not receiving:
        return Text("Transfers: none in progress", style="dim")
    table = Table(title="Transfers in progress", title_justify="left", expand=True)
    for column in ("Document", "To", "Progress", "Bytes", "Rate", "ETA"):
        table.add_column(column, overflow="fold")
    for item in transfers:
        total = max(item["size"], 1)
        rate = item.get("rate_bytes_per_second")
        table.add_row(text(item["name"], limit=50), text(item["peer_name"]),
                      ProgressBar(total=total, completed=min(item["offset"], total), width=24),
                      f"{size(item['offset'])} / {size(item['size'])}",
                      f"{size(int(rate))}/s" if rate else "…",
                      duration(item["eta_seconds"]) if item.get("eta_seconds") is not None
                      else "…")
    for item in receiving:
        table.add_row(text(item["message_id"]), Text(f"from {clean(item['peer_name'])}"),
                      Text("receiving", style="cyan"), "", "", "")
    return table


def _recent_sent(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None,
                 only: str | None) -> RenderableType:
    rows = [r for r in snapshot["recent_sent"]
            if only is None or any(x["peer"] == only for x in r["recipients"])]
    if not rows:
        return Text("Latest sent: nothing yet", style="dim")
    table = Table(title="Latest documents sent", title_justify="left", expand=True)
    for column in ("Taken", "Document", "To", "Receipts"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = Text()
        for index, item in enumerate(row["recipients"]):
            if index:
                status.append("\n")
            if item["state"] == "delivered":
                status.append(f"✓ {clean(item['peer'])} {when(item['receipt_at'], now, tz)}",
                              style="green")
            elif item["state"] == "failed":
                status.append(f"✗ {clean(item['peer'])}: {clean(item['last_error'], 80)}",
                              style="red")
            else:
                status.append(f"… {clean(item['peer'])} waiting", style="yellow")
                if item["attempts"]:
                    status.append(f" ({item['attempts']} tries)")
            if item.get("processing"):
                status.append(f" · {clean(item['processing'])}", style="cyan")
        table.add_row(when(row["created_at"], now, tz), _document_cell(row),
                      text(row["target"]), status)
    return table


def _recent_received(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None,
                     only: str | None) -> RenderableType:
    rows = [r for r in snapshot["recent_received"] if only is None or r["from"] == only]
    if not rows:
        return Text("Latest received: nothing yet", style="dim")
    table = Table(title="Latest documents received", title_justify="left", expand=True)
    for column in ("Received", "From", "Document", "Size", "Receipt"):
        table.add_column(column, overflow="fold")
    for row in rows:
        receipt = (Text("✓ signed", style="green") if row["state"] == "stored"
                   else Text("being stored", style="yellow"))
        if row.get("processing"):
            receipt.append(f"\n{clean(row['processing'])}", style="cyan")
        table.add_row(when(row["received_at"], now, tz), text(row["from"]), _document_cell(row),
                      size(row["size"]), receipt)
    return table


#: Urgencies that overtake the queue, shown so they stand out.
_URGENT = {"flash": "bold red", "very-urgent": "red", "urgent": "yellow"}


def _document_cell(row: Mapping[str, Any]) -> Text:
    """Name, then what the signed metadata says it is (type · number · urgency, and the
    confidentiality when it is not normal), its subject, and the message ID."""
    cell = text(row["name"], limit=60)
    fields = row.get("document") or {}
    labels = [clean(fields[key], 40) for key in ("type", "number") if fields.get(key)]
    urgency = fields.get("urgency")
    if labels or (urgency and urgency != "normal"):
        cell.append("\n" + " · ".join(labels), style="bold")
        if urgency:
            cell.append((" · " if labels else "") + clean(urgency, 20),
                        style=_URGENT.get(str(urgency), ""))
    if fields.get("confidentiality") not in (None, "normal"):
        cell.append(f" · {clean(fields['confidentiality'], 20)}", style="magenta")
    if fields.get("subject"):
        cell.append("\n" + clean(fields["subject"], 80), style="italic")
    cell.append(f"\n{row['message_id']}", style="dim")
    return cell


# -- one document's trail ------------------------------------------------------------------------

def render_trail(trail: Mapping[str, Any], *, now: float, tz: tzinfo | None = None
                 ) -> RenderableType:
    """The story of one document: what was sent or received, then every audit event."""
    if not trail["found"]:
        return Text(f"Nothing is recorded about message {clean(trail['message_id'])}.",
                    style="yellow")
    parts: list[RenderableType] = []
    sent = trail.get("sent")
    if sent:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("Document", text(sent["name"]))
        grid.add_row("Sent to", text(sent["target"]))
        grid.add_row("Size", f"{size(sent['size'])} ({sent['size']} bytes)")
        grid.add_row("SHA-256", sent["sha256"])
        grid.add_row("Taken", when(sent["created_at"], now, tz))
        grid.add_row("State", Text(sent["state"], style={"sent": "green", "failed": "red"}.get(
            sent["state"], "yellow")))
        if sent.get("sent_path"):
            grid.add_row("Kept in", text(sent["sent_path"]))
        if sent.get("error"):
            grid.add_row("Error", text(sent["error"], "red"))
        for item in sent["recipients"]:
            grid.add_row(f"→ {clean(item['peer'])}", Text(
                f"{item['state']}" + (f", receipt {when(item['receipt_at'], now, tz)}"
                                      if item["receipt_at"] else "")
                + (f", {item['attempts']} attempt(s)" if item["attempts"] else "")
                + (f", last error: {clean(item['last_error'], 120)}"
                   if item["last_error"] else "")))
        parts.append(Panel(grid, title=f"Sent · message {trail['message_id']}",
                           title_align="left"))
    for row in trail.get("received", []):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("Document", text(row["name"]))
        grid.add_row("From", text(row["from"]))
        grid.add_row("Size", f"{size(row['size'])} ({row['size']} bytes)")
        grid.add_row("SHA-256", row["sha256"])
        grid.add_row("Received", when(row["received_at"], now, tz))
        grid.add_row("Stored as", text(row["stored_path"]))
        grid.add_row("Receipt", Text("signed and kept" if row.get("receipt") else "not yet"))
        parts.append(Panel(grid, title=f"Received · message {trail['message_id']}",
                           title_align="left"))
    table = Table(title="Audit events", title_justify="left", expand=True)
    for column in ("#", "Time", "Event", "Peer", "Details"):
        table.add_column(column, overflow="fold")
    for event in trail["events"]:
        table.add_row(str(event["seq"]), when(event["time"], now, tz), event["kind"],
                      text(event["peer"] or ""), text(describe_detail(event["detail"]),
                                                      limit=200))
    parts.append(table)
    return Group(*parts)


def describe_detail(detail: Mapping[str, Any]) -> str:
    """An audit entry's detail as one short line (``key=value``, most telling keys first)."""
    first = ("code", "reason", "name", "size", "target", "stored_as", "sent_path")
    skip = ("node_id",)  # node-started/-stopped carry our own ID: noise in a listing
    keys = [k for k in first if k in detail] + sorted(
        k for k in detail if k not in first and k not in skip)
    parts = []
    for key in keys:
        value = detail[key]
        if isinstance(value, list):
            value = f"{len(value)} item(s)"
        parts.append(f"{key}={value}")
    return " ".join(parts)
