"""Drawing one document's trail (``lienthong.node.status.trail``) for people, with rich: what
was sent or received, then every audit event (``lienthong audit show``, the console).

Peer-supplied text goes through ``lienthong.node.status.cells`` like everywhere on a status
screen; every word is in the clerk's language.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from lienthong.node.language.catalog import DEFAULT_LANGUAGE, translate
from lienthong.node.language.names import name_of
from lienthong.node.language.text import Phrase
from lienthong.node.status.cells import clean, size, text, when


def render_trail(trail: Mapping[str, Any], *, now: float, tz: tzinfo | None = None,
                 lang: str = DEFAULT_LANGUAGE) -> RenderableType:
    """The story of one document in ``lang``: what was sent or received, then every audit
    event."""
    if not trail["found"]:
        return Text(Phrase("Nothing is recorded about message {message_id}.",
                           message_id=clean(trail["message_id"])).in_language(lang),
                    style="yellow")
    parts: list[RenderableType] = []
    sent = trail.get("sent")
    if sent:
        grid = _document_grid(sent, translate(lang, "Sent to"), sent["target"], lang)
        grid.add_row(translate(lang, "Taken"), when(sent["created_at"], now, tz, lang))
        grid.add_row(translate(lang, "State"), Text(
            name_of("state", sent["state"], lang),
            style={"sent": "green", "failed": "red"}.get(sent["state"], "yellow")))
        if sent.get("sent_path"):
            grid.add_row(translate(lang, "Kept in"), text(sent["sent_path"]))
        if sent.get("error"):
            grid.add_row(translate(lang, "Error"), text(sent["error"], "red"))
        for item in sent["recipients"]:
            said = [name_of("state", item["state"], lang)]
            if item["receipt_at"]:
                said.append(Phrase("receipt {time}", time=when(item["receipt_at"], now, tz,
                                                               lang)).in_language(lang))
            if item["attempts"]:
                said.append(Phrase("{count} attempt(s)", count=item["attempts"]
                                   ).in_language(lang))
            if item["last_error"]:
                said.append(Phrase("last error: {error}", error=clean(item["last_error"], 120)
                                   ).in_language(lang))
            grid.add_row(f"→ {clean(item['peer'])}", Text(", ".join(said)))
        parts.append(Panel(grid, title=Phrase("Sent · message {message_id}",
                                              message_id=trail["message_id"]
                                              ).in_language(lang), title_align="left"))
    for row in trail.get("received", []):
        grid = _document_grid(row, translate(lang, "From"), row["from"], lang)
        grid.add_row(translate(lang, "Received"), when(row["received_at"], now, tz, lang))
        grid.add_row(translate(lang, "Stored as"), text(row["stored_path"]))
        grid.add_row(translate(lang, "Receipt"), Text(
            translate(lang, "signed and kept") if row.get("receipt")
            else translate(lang, "not yet")))
        parts.append(Panel(grid, title=Phrase("Received · message {message_id}",
                                              message_id=trail["message_id"]
                                              ).in_language(lang), title_align="left"))
    table = Table(title=translate(lang, "Audit events"), title_justify="left", expand=True)
    for column in ("#", translate(lang, "Time"), translate(lang, "Event"),
                   translate(lang, "Peer"), translate(lang, "Details")):
        table.add_column(column, overflow="fold")
    for event in trail["events"]:
        table.add_row(str(event["seq"]), when(event["time"], now, tz, lang), event["kind"],
                      text(event["peer"] or ""), text(describe_detail(event["detail"]),
                                                      limit=200))
    parts.append(table)
    return Group(*parts)


def _document_grid(document: Mapping[str, Any], party_label: str, party: Any,
                   lang: str) -> Table:
    """The first rows of a sent or received document's panel: its name, the other office
    (peer-supplied text, made inert), its size and SHA-256."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(translate(lang, "Document"), text(document["name"]))
    grid.add_row(party_label, text(party))
    grid.add_row(translate(lang, "Size"), Phrase("{size} ({count} bytes)",
                                                 size=size(document["size"]),
                                                 count=document["size"]).in_language(lang))
    grid.add_row("SHA-256", document["sha256"])
    return grid


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
