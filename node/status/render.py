"""Drawing a status snapshot (``lienthong.node.status.snapshot``) for people, with rich.

Why rich (and not textual): ``lienthong status`` prints one screen and exits, often over SSH or
into a ticket, and ``lienthong console`` redraws that same screen every two seconds. rich
renders the same tables for both (``Console.print`` and ``rich.live.Live``), degrades to plain
text when output is not a terminal, and is one small dependency; textual would bring an
application framework, its own event loop and CSS for what is a read-only dashboard.

Everything shown that came from a peer (document names, reasons in errors, metadata) is
attacker data: it goes through ``lienthong.node.status.cells`` (``clean``, ``text``, ``safe``),
which makes it inert. One document's trail is drawn by ``lienthong.node.status.render_trail``.

Every word is in the clerk's language (``lang``, Vietnamese by default; the catalog in
node/language/): static words through ``translate``, sentences with numbers as one ``Phrase``
each, document types, urgencies, classes and statuses by their names (``name_of``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.language.catalog import DEFAULT_LANGUAGE, translate
from lienthong.node.language.names import name_of
from lienthong.node.language.text import Phrase, _
from lienthong.node.status.cells import ago, clean, duration, safe, size, text, when

# -- the status screen ---------------------------------------------------------------------------

def render_status(snapshot: Mapping[str, Any], *, peer: str | None = None,
                  tz: tzinfo | None = None, footer: RenderableType | None = None,
                  lang: str = DEFAULT_LANGUAGE) -> RenderableType:
    """The whole status screen in ``lang``; ``peer`` limits peers, transfers and documents
    to one peer."""
    now = parse_rfc3339(snapshot["generated_at"])
    parts: list[RenderableType] = [_header(snapshot, now, tz, lang)]
    if snapshot["warnings"]:
        parts.append(_warnings(snapshot["warnings"], lang))
    parts.append(_peers(snapshot, now, tz, peer, lang))
    parts.append(_outbox(snapshot, lang))
    parts.append(_transfers(snapshot, peer, lang))
    parts.append(_recent_sent(snapshot, now, tz, peer, lang))
    parts.append(_recent_received(snapshot, now, tz, peer, lang))
    if footer is not None:
        parts.append(footer)
    else:
        parts.append(Text(translate(lang, "One document's whole story: lienthong audit trail "
                                          "MESSAGE_ID_OR_NAME · check the evidence: lienthong "
                                          "audit verify"), style="dim"))
    return Group(*parts)


#: What a waiting member of an active/standby pair is doing (node/app/standby.py).
STANDBY_STATES = {
    "waiting": _("process {pid} on {host} is waiting to take over (since {since})"),
    "database-unreachable": _("process {pid} on {host} cannot reach the database and is still "
                              "waiting; it takes over only once it holds the lease "
                              "(since {since})"),
    "taking-over": _("process {pid} on {host} holds the lease and is taking over "
                     "(since {since})"),
}


def _header(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None, lang: str) -> Panel:
    node, daemon = snapshot["node"], snapshot["daemon"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(translate(lang, "Node ID"), text(node.get("node_id")))
    if daemon["running"]:
        line = Text(translate(lang, "● running"), style="bold green")
        if daemon.get("uptime_seconds") is not None:
            line.append(Phrase(" for {duration} (since {time})",
                               duration=duration(daemon["uptime_seconds"], lang),
                               time=when(daemon.get("started_at"), now, tz, lang)
                               ).in_language(lang))
        line.append(Phrase("; peers connect to {address}", address=clean(node.get("listen"))
                           ).in_language(lang))
        if daemon.get("status_listen"):
            line.append(Phrase("; web page http://{address}/ (status API: /status)",
                               address=clean(daemon["status_listen"])).in_language(lang))
    else:
        line = Text(translate(lang, "✗ NOT RUNNING"), style="bold red")
        if daemon.get("last_stopped_at") and daemon.get("stopped_cleanly"):
            line.append(Phrase(" — stopped at {time} ({ago})",
                               time=when(daemon["last_stopped_at"], now, tz, lang),
                               ago=ago(daemon["last_stopped_at"], now, lang)).in_language(lang))
        elif daemon.get("last_started_at"):
            line.append(Phrase(" — last started {time}; it did not stop cleanly (crash or "
                               "power loss?)", time=when(daemon["last_started_at"], now, tz,
                                                         lang)).in_language(lang))
        else:
            line.append(translate(lang, " — it has never run"))
        line.append(translate(lang, ". Showing what the store knows."), style="dim")
        if daemon.get("note"):
            line.append(f" {clean(daemon['note'], 200)}", style="dim")
    grid.add_row(translate(lang, "Daemon"), line)
    for standby in snapshot.get("standby", []):
        grid.add_row(translate(lang, "Standby"), Text(Phrase(
            STANDBY_STATES.get(str(standby.get("state")), "{state}"),
            pid=standby.get("pid"), host=clean(standby.get("host")),
            state=clean(standby.get("state")),
            since=when(standby.get("since"), now, tz, lang)).in_language(lang)))
    health = snapshot["health"]
    count = len(snapshot["warnings"])
    grid.add_row(translate(lang, "Health"), {
        "ok": Text(translate(lang, "✓ all good"), style="bold green"),
        "warning": Text(Phrase("⚠ {count} warning(s), see below", count=count
                               ).in_language(lang), style="bold yellow"),
        "critical": Text(Phrase("✗ needs attention: {count} problem(s), see below",
                                count=count).in_language(lang), style="bold red"),
    }[health])
    today = snapshot["today"]
    grid.add_row(translate(lang, "Today"), Phrase(
        "{received} received · {sent} sent and fully receipted (since midnight)",
        received=today["received"], sent=today["sent"]).in_language(lang))
    grid.add_row(translate(lang, "Home"), text(node.get("home")))
    title = f"lienthong · [bold]{safe(node.get('name'))}[/bold]"
    if node.get("display_name") and node.get("display_name") != node.get("name"):
        title += f" — {safe(node.get('display_name'))}"
    style = {"ok": "green", "warning": "yellow", "critical": "red"}[health]
    return Panel(grid, title=title, title_align="left", border_style=style)


def warning_text(warning: Mapping[str, Any], lang: str) -> str:
    """A health warning in ``lang`` (its phrase, node/status/health.py), else its message."""
    if warning.get("text"):
        try:
            return Phrase.from_json(warning["text"]).in_language(lang)
        except (KeyError, IndexError, ValueError, TypeError):
            pass  # a snapshot from another version: its English message is still right
    return str(warning["message"])


def _warnings(warnings: Sequence[Mapping[str, Any]], lang: str) -> Panel:
    lines = Text()
    for index, warning in enumerate(warnings):
        if index:
            lines.append("\n")
        critical = warning["level"] == "critical"
        lines.append("✗ " if critical else "⚠ ", style="bold red" if critical else "bold yellow")
        lines.append(clean(warning_text(warning, lang), 400))
    return Panel(lines, title=translate(lang, "Warnings"), title_align="left",
                 border_style="red" if any(w["level"] == "critical" for w in warnings)
                 else "yellow")


def _connection(peer: Mapping[str, Any], running: bool, now: float, tz: tzinfo | None,
                lang: str) -> Text:
    if peer["state"] == "revoked":
        return Text(Phrase("revoked {time}", time=when(peer.get("revoked_at"), now, tz, lang)
                           ).in_language(lang), style="red")
    link = peer.get("link")
    if link == "connected":
        return Text(translate(lang, "● connected"), style="green")
    if link == "connecting":
        return Text(translate(lang, "… connecting"), style="yellow")
    if link == "waiting" or (peer["failures"] and running):
        out = Text(translate(lang, "↻ retrying"), style="yellow")
        if peer.get("next_attempt_at"):
            out.append(Phrase(" at {time}", time=when(peer["next_attempt_at"], now, tz, lang)
                              ).in_language(lang))
        if peer["failures"]:
            out.append(Phrase(" ({count} failed)", count=peer["failures"]).in_language(lang))
        return out
    if not running:
        return Text(translate(lang, "— (daemon down)"), style="dim")
    return Text(translate(lang, "○ idle"), style="dim")


def _last_seen(peer: Mapping[str, Any], now: float, lang: str) -> Text:
    """When the peer was last seen, and whether it was reachable by the newest evidence (a
    ``peers test`` or a connection either way)."""
    out = Text(ago(peer.get("last_seen_at"), now, lang) if peer.get("last_seen_at")
               else translate(lang, "never"))
    reachable = peer.get("reachable")
    if reachable is not None:
        source = name_of("reachability", reachable["source"], lang)
        if reachable["reachable"]:
            out.append("\n" + Phrase("✓ reachable ({source})", source=source
                                     ).in_language(lang), style="green")
        else:
            out.append("\n" + Phrase("✗ not reachable ({source} {ago})", source=source,
                                     ago=ago(reachable["at"], now, lang)).in_language(lang),
                       style="red")
    return out


def _peers(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None,
           only: str | None, lang: str) -> RenderableType:
    table = Table(title=translate(lang, "Peers"), title_justify="left", expand=True,
                  show_lines=False)
    for column in (translate(lang, "Peer"), translate(lang, "Connection"),
                   translate(lang, "Last seen"), translate(lang, "Waiting"),
                   translate(lang, "Oldest waiting"), translate(lang, "Last error")):
        table.add_column(column, overflow="fold")
    running = snapshot["daemon"]["running"]
    shown = [p for p in snapshot["peers"] if only is None or p["name"] == only]
    for peer in shown:
        queue = peer["queue"]
        oldest = queue["oldest"]
        table.add_row(
            text(peer["name"], "bold") + Text("\n") + text(", ".join(peer["addresses"]), "dim"),
            _connection(peer, running, now, tz, lang),
            _last_seen(peer, now, lang),
            Text(f"{queue['count']} · {size(queue['bytes'])}" if queue["count"] else "—",
                 style="yellow" if queue["count"] else ""),
            (text(oldest["name"], limit=40) + Text(f"  {duration(oldest['age_seconds'], lang)}",
                                                   style="yellow")) if oldest else Text("—"),
            text(peer.get("last_error") or "", "red", limit=120))
    if not shown:
        return Text(translate(lang, "No peers enrolled yet: lienthong peers add THEIR.card")
                    if only is None else Phrase("No peer named {name}.", name=clean(only)
                                                ).in_language(lang), style="yellow")
    return table


def _outbox(snapshot: Mapping[str, Any], lang: str) -> RenderableType:
    outbox = snapshot["outbox"]
    dispatches = outbox["dispatches"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    line = Text()
    line.append(Phrase("{count} waiting for receipts", count=dispatches["sending"]
                       ).in_language(lang), style="yellow" if dispatches["sending"] else "")
    line.append(" · ")
    line.append(Phrase("{count} sent", count=dispatches["sent"]).in_language(lang),
                style="green" if dispatches["sent"] else "")
    line.append(" · ")
    line.append(Phrase("{count} failed", count=dispatches["failed"]).in_language(lang),
                style="red" if dispatches["failed"] else "")
    grid.add_row(translate(lang, "Documents"), line)
    folders = Text()
    waiting = outbox.get("waiting_in_outbox")
    if waiting is not None:
        folders.append(Phrase("outbox/ {count} file(s) not yet taken", count=waiting
                              ).in_language(lang),
                       style="yellow" if waiting and not snapshot["daemon"]["running"] else "")
    if outbox.get("failed_files") is not None:
        folders.append(Phrase(" · failed/ {count} file(s)", count=outbox["failed_files"]
                              ).in_language(lang),
                       style="red" if outbox["failed_files"] else "")
    grid.add_row(translate(lang, "Folders"), folders)
    return grid


def _transfers(snapshot: Mapping[str, Any], only: str | None, lang: str) -> RenderableType:
    if not snapshot["daemon"]["running"]:
        return Text(translate(lang, "Transfers: none (the daemon is not running)"), style="dim")
    transfers = [t for t in snapshot["transfers"] if only is None or t["peer_name"] == only]
    receiving = [r for r in snapshot.get("receiving", []) if only is None
                 or r["peer_name"] == only]
    if not transfers and not receiving:
        return Text(translate(lang, "Transfers: none in progress"), style="dim")
    table = Table(title=translate(lang, "Transfers in progress"), title_justify="left",
                  expand=True)
    for column in (translate(lang, "Document"), translate(lang, "To"),
                   translate(lang, "Progress"), translate(lang, "Bytes"),
                   translate(lang, "Rate"), translate(lang, "ETA")):
        table.add_column(column, overflow="fold")
    for item in transfers:
        total = max(item["size"], 1)
        rate = item.get("rate_bytes_per_second")
        table.add_row(text(item["name"], limit=50), text(item["peer_name"]),
                      ProgressBar(total=total, completed=min(item["offset"], total), width=24),
                      f"{size(item['offset'])} / {size(item['size'])}",
                      f"{size(int(rate))}/s" if rate else "…",
                      duration(item["eta_seconds"], lang)
                      if item.get("eta_seconds") is not None else "…")
    for item in receiving:
        table.add_row(text(item["message_id"]), Text(Phrase(
            "from {peer}", peer=clean(item["peer_name"])).in_language(lang)),
            Text(translate(lang, "receiving"), style="cyan"), "", "", "")
    return table


def _recent_sent(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None,
                 only: str | None, lang: str) -> RenderableType:
    rows = [r for r in snapshot["recent_sent"]
            if only is None or any(x["peer"] == only for x in r["recipients"])]
    if not rows:
        return Text(translate(lang, "Latest sent: nothing yet"), style="dim")
    table = Table(title=translate(lang, "Latest documents sent"), title_justify="left",
                  expand=True)
    for column in (translate(lang, "Taken"), translate(lang, "Document"), translate(lang, "To"),
                   translate(lang, "Receipts")):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = Text()
        for index, item in enumerate(row["recipients"]):
            if index:
                status.append("\n")
            if item["state"] == "delivered":
                status.append(f"✓ {clean(item['peer'])} "
                              f"{when(item['receipt_at'], now, tz, lang)}", style="green")
            elif item["state"] == "failed":
                status.append(f"✗ {clean(item['peer'])}: {clean(item['last_error'], 80)}",
                              style="red")
            else:
                status.append(Phrase("… {peer} waiting", peer=clean(item["peer"])
                                     ).in_language(lang), style="yellow")
                if item["attempts"]:
                    status.append(Phrase(" ({count} tries)", count=item["attempts"]
                                         ).in_language(lang))
            if item.get("processing"):
                status.append(f" · {clean(name_of('status', item['processing'], lang))}",
                              style="cyan")
        table.add_row(when(row["created_at"], now, tz, lang), _document_cell(row, lang),
                      text(row["target"]), status)
    return table


def _recent_received(snapshot: Mapping[str, Any], now: float, tz: tzinfo | None,
                     only: str | None, lang: str) -> RenderableType:
    rows = [r for r in snapshot["recent_received"] if only is None or r["from"] == only]
    if not rows:
        return Text(translate(lang, "Latest received: nothing yet"), style="dim")
    table = Table(title=translate(lang, "Latest documents received"), title_justify="left",
                  expand=True)
    for column in (translate(lang, "Received"), translate(lang, "From"),
                   translate(lang, "Document"), translate(lang, "Size"),
                   translate(lang, "Receipt")):
        table.add_column(column, overflow="fold")
    for row in rows:
        receipt = (Text(translate(lang, "✓ signed"), style="green") if row["state"] == "stored"
                   else Text(translate(lang, "being stored"), style="yellow"))
        if row.get("processing"):
            receipt.append(f"\n{clean(name_of('status', row['processing'], lang))}",
                           style="cyan")
        table.add_row(when(row["received_at"], now, tz, lang), text(row["from"]),
                      _document_cell(row, lang), size(row["size"]), receipt)
    return table


#: Urgencies that overtake the queue, shown so they stand out.
_URGENT = {"flash": "bold red", "very-urgent": "red", "urgent": "yellow"}


def _document_cell(row: Mapping[str, Any], lang: str = DEFAULT_LANGUAGE) -> Text:
    """Name, then what the signed metadata says it is (type · number · urgency, and the
    confidentiality when it is not normal), its subject, and the message ID; types, urgencies
    and classes by their names in ``lang``."""
    cell = text(row["name"], limit=60)
    fields = row.get("document") or {}
    labels = [clean(name_of("type", fields["type"], lang) if key == "type" else fields[key], 40)
              for key in ("type", "number") if fields.get(key)]
    urgency = fields.get("urgency")
    if labels or (urgency and urgency != "normal"):
        cell.append("\n" + " · ".join(labels), style="bold")
        if urgency:
            cell.append((" · " if labels else "") + clean(name_of("urgency", urgency, lang), 20),
                        style=_URGENT.get(str(urgency), ""))
    if fields.get("confidentiality") not in (None, "normal"):
        cell.append(f" · {clean(name_of('confidentiality', fields['confidentiality'], lang), 20)}",
                    style="magenta")
    if fields.get("subject"):
        cell.append("\n" + clean(fields["subject"], 80), style="italic")
    cell.append(f"\n{row['message_id']}", style="dim")
    return cell
