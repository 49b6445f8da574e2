"""``lienthong deadlines`` and ``lienthong programmes consolidate``: the regulation's work.

``deadlines`` lists every obligation this office can see (programmes owed to the consolidating
office, documents with a due date, meeting conclusions awaiting registration) with its state
today; ``programmes consolidate`` merges the offices' programmes for a period, lists the
clashes, and writes the consolidated draft (docs/coordination.md).
"""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lienthong.node.cli.common import CliError, clerk_language, home_option, open_config
from lienthong.node.coordination.consolidate import gather, write_draft
from lienthong.node.coordination.deadlines import DeadlineEngine, DeadlineQuery, parse_periods
from lienthong.node.coordination.obligations import local_today
from lienthong.node.core.access import access_policy
from lienthong.node.documents.periods import KINDS
from lienthong.node.documents.programme_items import VIETNAM
from lienthong.node.language.catalog import translate
from lienthong.node.language.names import (
    name_of,
    period_phrase,
    show_date,
    show_period,
    show_time,
)
from lienthong.node.language.text import Phrase, _
from lienthong.node.store.database import open_store

#: A clash between two offices' programme items (node/coordination/clashes.py), as a clerk
#: reads it.
CLASH_KINDS = {"event-time": _("same event, different time"),
               "leader": _("same leader, overlapping times"),
               "place": _("same place, overlapping times")}
STATE_STYLE = {"on-time": "green", "late": "yellow", "due": "cyan", "overdue": "bold red",
               "missing": "red"}


def _kind_text(row: dict, language: str) -> str:
    """A programme's kind, or the document type of a due-date document ("Document with a due
    date: Directive")."""
    kind = name_of("deadline_kind", row["kind"], language)
    if row["kind"] == "document" and row.get("doc_type"):
        return Phrase("{kind}: {doc_type}", kind=kind,
                      doc_type=name_of("type", row["doc_type"], language)).in_language(language)
    return kind


def periods_of(texts: tuple[str, ...] | list[str]) -> tuple:
    """``--period`` values as periods; a bad one is said as one sentence naming it."""
    for text in texts:
        try:
            parse_periods([text])
        except ValueError:
            raise CliError(Phrase("--period {text!r} is not a period; write 2027 (year), "
                                  "2027-Q1 (quarter), 2027-01 (month) or 2027-W05 (ISO week, "
                                  "Monday to Sunday)", text=text)) from None
    return parse_periods(texts)


def parse_day(text: str, today: dt.date) -> dt.date | None:
    """A clerk's date: 30/11/2026, 2026-11-30, or 30/11 (in ``today``'s year); else None."""
    value = text.strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    try:
        day_month = dt.datetime.strptime(f"{value}/{today.year}", "%d/%m/%Y")
    except ValueError:
        return None
    return day_month.date()


def noon_of(day: dt.date) -> float:
    """Midday of ``day`` in Vietnam, as a timestamp: the engine's "today" is that day."""
    return dt.datetime.combine(day, dt.time(12), VIETNAM).timestamp()


def _state_text(row: dict, language: str) -> str:
    if row["state"] == "due":
        left = row["working_days_left"]
        return (Phrase("due today") if left == 0 else
                Phrase("due in {days} working day(s)", days=left)).in_language(language)
    return name_of("deadline_state", row["state"], language)


@click.command()
@click.option("--office", "offices", multiple=True, help="Only this office (repeatable).")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice([*KINDS, "document", "conclusion"]),
              help="Only this kind (repeatable).")
@click.option("--period", "periods", multiple=True,
              help="Only this period: 2027, 2027-Q1, 2027-01 or 2027-W05 (repeatable).")
@click.option("--on", "on_day", default=None, metavar="DATE",
              help="Evaluate as of this day (30/11/2026, 2026-11-30, or 30/11 for this year) "
                   "instead of today: what was due, sent and late on that day.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def deadlines(offices: tuple[str, ...], kinds: tuple[str, ...], periods: tuple[str, ...],
              on_day: str | None, as_json: bool, home: Path | None) -> None:
    """Programme deadlines and due dates: who owes what to whom, by when, and its state."""
    config = open_config(home)
    language = clerk_language(config)
    query = DeadlineQuery(offices=offices, kinds=kinds, periods=periods_of(periods))
    now = time.time()
    if on_day is not None:
        day = parse_day(on_day, local_today(now))
        if day is None:
            raise CliError(Phrase("--on {on_day!r} is not a date; write it as 30/11/2026, "
                                  "2026-11-30, or 30/11 for this year", on_day=on_day))
        now = noon_of(day)
    as_of = local_today(now)
    store = open_store(config.store.url)
    try:
        engine = DeadlineEngine(store, config.coordination, own_name=config.node.name)
        rows = [row.as_json() for row in engine.rows(now, query)]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"office": config.node.name, "as_of": as_of.isoformat(),
                               "consolidating_office": config.coordination.consolidating_office,
                               "deadlines": rows}, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(Phrase("No deadlines match.").in_language(language))
        return
    title = (Phrase("Deadlines seen by {office}", office=config.node.name) if on_day is None
             else Phrase("Deadlines seen by {office} as of {day}", office=config.node.name,
                         day=show_date(as_of, language)))
    table = Table(title=title.in_language(language))
    for heading in (Phrase("Period"), Phrase("Office"), Phrase("Kind"), Phrase("Due"),
                    Phrase("Sent"), Phrase("Received"), Phrase("State")):
        table.add_column(heading.in_language(language))
    for row in rows:
        due = Text(show_date(row["due"], language))
        if row["due_day_off"]:
            due.append("\n" + Phrase("(day off: {day_off})", day_off=row["due_day_off"]
                                      ).in_language(language), style="yellow")
        table.add_row(Text(show_period(row["period"], language)),
                      Text(f"{row['office']} → {row['owed_to']}"),
                      Text(_kind_text(row, language)), due,
                      Text(show_time(row["sent_at"], language) or "—"),
                      Text(show_time(row["received_at"], language) or "—"),
                      Text(_state_text(row, language), style=STATE_STYLE[row["state"]]))
    Console().print(table)


@click.group()
def programmes() -> None:
    """Work programmes (chương trình công tác): consolidation at the consolidating office."""


@programmes.command()
@click.option("--period", required=True, help="2027, 2027-Q1, 2027-01 or 2027-W05.")
@click.option("--own", "own_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="This office's own programme file (.ics or .xlsx) to merge too (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder for the draft (default: HOME/consolidated/PERIOD).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@home_option
def consolidate(period: str, own_files: tuple[Path, ...], out_dir: Path | None, as_json: bool,
                home: Path | None) -> None:
    """Merge the programmes received for PERIOD, list clashes, write the consolidated draft."""
    config = open_config(home)
    language = clerk_language(config)
    (wanted,) = periods_of([period])
    name, office = config.node.name, config.coordination.consolidating_office
    if name != office:
        raise CliError(Phrase("this office ({name}) is not the consolidating office ({office}); "
                              "programmes are consolidated there", name=name, office=office))
    store = open_store(config.store.url)
    try:
        result = gather(store, wanted, home=config.home, own_name=config.node.name,
                        own_files=own_files)
    finally:
        store.close()
    folder = out_dir or config.home / "consolidated" / str(wanted)
    written = write_draft(result, folder, access_policy(config.node.clerks_group),
                          now=time.time())
    clashes = [{"kind": c.kind, "subject": c.subject, "day": c.first.item.day.isoformat(),
                "first": {"office": c.first.office, "activity": c.first.item.activity,
                          "source": c.first.source},
                "second": {"office": c.second.office, "activity": c.second.item.activity,
                           "source": c.second.source}} for c in result.clashes]
    if as_json:
        click.echo(json.dumps({
            "period": result.period, "items": len(result.items), "clashes": clashes,
            "sources": [{"office": s.office, "name": s.name, "items": s.items,
                         "problem": s.problem} for s in result.sources],
            "written": [str(p) for p in written]}, ensure_ascii=False, indent=2))
        return
    console = Console()

    def say(text: Phrase, style: str = "") -> None:
        console.print(Text(text.in_language(language), style=style))
    for source in result.sources:
        if source.problem:
            say(Phrase("✗ {office}: {name} — not merged: {problem}", office=source.office,
                       name=source.name, problem=source.problem), "yellow")
        else:
            say(Phrase("✓ {office}: {name} — {count} item(s)", office=source.office,
                       name=source.name, count=source.items))
    if not result.sources:
        say(Phrase("No programme for {period} has been received yet.",
                   period=period_phrase(result.period)))
    if clashes:
        say(Phrase("{count} clash(es) to settle before sending the draft:",
                   count=len(clashes)), "bold red")
        for c in result.clashes:
            kind = translate(language, CLASH_KINDS[c.kind]) if c.kind in CLASH_KINDS else c.kind
            console.print(Text(f"  {show_date(c.first.item.day, language)} {kind} "
                               f"({c.subject}): {c.first.office} «{c.first.item.activity}» ↔ "
                               f"{c.second.office} «{c.second.item.activity}»"))
    else:
        say(Phrase("No clashes found."), "green")
    say(Phrase("Draft written to {folder} ({count} item(s)). Settle the clashes, then copy the "
               ".xlsx or .ics with its .meta.toml into outbox/<office>/ to notify the offices.",
               folder=folder, count=len(result.items)))
