"""``lienthong petitions``: the petition register (sổ theo dõi đơn), for the petition staff.

Lists and filters the register (``--json`` for programs, ``--xlsx FILE`` for the periodic
reports), and records the handling office's decisions (``accept``, ``reject``, ``resolve``),
which the running node sends back as signed statuses (docs/petitions.md). Every command first
checks that the caller is petition staff (node/petitions/access.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lienthong.config.schema import PETITION_KINDS
from lienthong.node.cli.common import (
    CliError,
    clerk_language,
    home_option,
    open_config,
    wall_clock_now,
)
from lienthong.node.control.requests import RequestRefused
from lienthong.node.language.catalog import translate
from lienthong.node.language.names import name_of, show_date
from lienthong.node.language.text import Phrase, _, from_error
from lienthong.node.petitions.access import check_petition_staff
from lienthong.node.petitions.decisions import decide
from lienthong.node.petitions.export import write_register
from lienthong.node.petitions.register import STATES, PetitionRegister, RegisterQuery, summary
from lienthong.node.store.database import open_store

LIMIT_STYLE = {"on-time": "green", "late": "yellow", "due": "cyan", "overdue": "bold red"}


#: What each decision is called when the CLI says it was recorded.
DECISIONS = {"accept": _("accepted (thụ lý)"), "reject": _("not accepted (không thụ lý)"),
             "resolve": _("resolved")}


def _limit_text(limit: dict | None, language: str) -> Text:
    if limit is None:
        return Text("—")
    return Text(f"{show_date(limit['due'], language)} "
                f"{name_of('deadline_state', limit['state'], language)}",
                style=LIMIT_STYLE.get(limit["state"], ""))


@click.group(invoke_without_command=True)
@click.option("--kind", "kinds", multiple=True, type=click.Choice(PETITION_KINDS),
              help="Only this kind: complaint (khiếu nại), denunciation (tố cáo), "
                   "recommendation (kiến nghị), reflection (phản ánh). Repeatable.")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES),
              help="Only petitions in this state (repeatable).")
@click.option("--direction", type=click.Choice(["received", "sent"]), default=None,
              help="Only petitions received here, or forwarded from here.")
@click.option("--from", "received_from", default=None, help="Received on or after (YYYY-MM-DD).")
@click.option("--until", "received_until", default=None,
              help="Received on or before (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--xlsx", "xlsx", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the listed petitions to this spreadsheet (.xlsx) instead.")
@home_option
@click.pass_context
def petitions(ctx: click.Context, kinds: tuple[str, ...], states: tuple[str, ...],
              direction: str | None, received_from: str | None, received_until: str | None,
              as_json: bool, xlsx: Path | None, home: Path | None) -> None:
    """The petition register (sổ theo dõi đơn): list, filter, export; petition staff only."""
    if ctx.invoked_subcommand is not None:
        return
    config = open_config(home)
    check_petition_staff(config)
    query = RegisterQuery(direction=direction, kinds=kinds, states=states,
                          received_from=received_from, received_until=received_until)
    store = open_store(config.store.url)
    try:
        directory = store.directory()
        names = {key.kid: peer.name for peer in directory.peers
                 for key in peer.all_identity_keys()}
        register = PetitionRegister(store, config,
                                    peer_name=lambda node_id: names.get(node_id, node_id))
        lines = register.lines(time.time(), query)
    finally:
        store.close()
    language = clerk_language(config)
    if xlsx is not None:
        write_register(lines, xlsx, office=config.node.name)
        click.echo(Phrase("Wrote {count} petition(s) to {file}.", count=len(lines), file=xlsx
                          ).in_language(language))
        return
    if as_json:
        click.echo(json.dumps({"office": config.node.name, "summary": summary(lines),
                               "petitions": [line.as_json() for line in lines]},
                              ensure_ascii=False, indent=2))
        return
    if not lines:
        click.echo(Phrase("No petitions match.").in_language(language))
        return
    table = Table(title=Phrase("Petition register of {office}", office=config.node.name
                               ).in_language(language))
    for heading in (Phrase("Reference"), Phrase("Received"), Phrase("Kind"),
                    Phrase("Petitioner"), Phrase("Office"), Phrase("State"),
                    Phrase("Accept by"), Phrase("Resolve by")):
        table.add_column(heading.in_language(language))
    for line in lines:
        data = line.as_json()
        arrow = "←" if line.direction == "received" else "→"
        table.add_row(Text(line.reference), Text(show_date(line.received, language)),
                      Text(name_of("petition_kind", line.kind, language)),
                      Text(line.petitioner), Text(f"{arrow} {line.office}"),
                      Text(name_of("petition_state", line.state, language)),
                      _limit_text(data["accept_limit"], language),
                      _limit_text(data["resolve_limit"], language))
    Console().print(table)


def _decide(home: Path | None, message_id: str, decision: str, *, complex_case: bool = False,
            outcome: str | None = None) -> None:
    config = open_config(home)
    check_petition_staff(config)
    store = open_store(config.store.url)
    try:
        matches = sorted({row.message_id for row in store.petitions(direction="received")
                          if row.message_id.startswith(message_id.lower())})
        if len(matches) != 1:
            raise CliError(Phrase("{message_id} names {count} petitions received here; give "
                                  "more of the message ID (lienthong petitions --direction "
                                  "received)", message_id=message_id, count=len(matches)))
        try:
            done = decide(store, matches[0], decision, now=wall_clock_now(),
                          complex_case=complex_case, outcome=outcome)
        except RequestRefused as exc:
            raise CliError(from_error(exc)) from None
    finally:
        store.close()
    language = clerk_language(config)
    click.echo(Phrase("{reference}: recorded as {decision}; the node sends the signed status "
                      "\"{status}\" back to the office it came from.",
                      reference=done.row.message_id[:12],
                      decision=translate(language, DECISIONS[decision]),
                      status=name_of("status", done.status, language)).in_language(language))


@petitions.command()
@click.argument("message_id")
@click.option("--complex", "complex_case", is_flag=True,
              help="A complex case (vụ việc phức tạp): the longer limit to resolve it.")
@home_option
def accept(message_id: str, complex_case: bool, home: Path | None) -> None:
    """Accept a received petition for resolution (thụ lý)."""
    _decide(home, message_id, "accept", complex_case=complex_case)


@petitions.command()
@click.argument("message_id")
@click.option("--reason", required=True,
              help="Why it is not accepted; kept in this office's register only.")
@home_option
def reject(message_id: str, reason: str, home: Path | None) -> None:
    """Do not accept a received petition (không thụ lý)."""
    _decide(home, message_id, "reject", outcome=reason)


@petitions.command()
@click.argument("message_id")
@click.option("--outcome", default=None, help="The result; kept in this register only.")
@home_option
def resolve(message_id: str, outcome: str | None, home: Path | None) -> None:
    """Record that an accepted petition is resolved (đã giải quyết)."""
    _decide(home, message_id, "resolve", outcome=outcome)
