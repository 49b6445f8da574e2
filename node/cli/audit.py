"""``lienthong audit`` (list, trail, verify, export); ``lienthong receipt verify`` is in
node/cli/receipt.py.

The audit log is evidence, so these commands only read: the store (on its reader connection,
safe beside a running daemon), the kept files and the cards. ``audit verify`` and ``receipt
verify`` exit with status 1 when anything does not verify, naming exactly what, so a script or
an auditor can rely on the exit status alone.

Exports are for auditors' own tools. In CSV only the ``detail`` column can hold text that came
from a peer, and it is always a JSON object (it starts with ``{``), so no cell can start with
``=``, ``+``, ``-`` or ``@`` and be taken for a spreadsheet formula. The JSON export carries
each entry's fields exactly as hashed, plus the signed heads, so the chain can be recomputed
without lienthong (docs/audit.md).
"""
from __future__ import annotations

import csv
import json
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click

from lienthong.node.audit.report import VerifyReport
from lienthong.node.cli.common import (
    CliError,
    CommandFunction,
    clerk_language,
    home_argument,
    open_config,
)
from lienthong.node.core.clock import rfc3339_ms
from lienthong.node.language.text import Phrase
from lienthong.node.status.gather import own_card
from lienthong.node.status.rows import peer_names as status_peer_names
from lienthong.node.store.audit_chain import AuditEntry
from lienthong.node.store.database import Store, open_store

EXPORT_PAGE = 1000
CSV_COLUMNS = ("seq", "time", "kind", "peer", "peer_name", "message_id", "digest", "detail",
               "prev_hash", "hash")


class DefaultToList(click.Group):
    """``lienthong audit [HOME]`` means ``lienthong audit list [HOME]``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def parse_when(text: str | None, *, end: bool = False) -> str | None:
    """A date or time typed by a person (local time unless it says otherwise) as the audit
    log writes times; a bare date as ``--until`` means the end of that day."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(Phrase("{text!r} is not a date or time; write 2026-11-25 or "
                              "2026-11-25T14:30", text=text)) from None
    if end and len(text.strip()) == 10:
        moment += timedelta(days=1)
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return rfc3339_ms(moment.timestamp())


def peer_names(store: Store) -> dict[str, str]:
    """Node ID -> name, former identities included (``status.rows.peer_names``)."""
    return status_peer_names(store.list_peers())


def resolve_peers(names: dict[str, str], wanted: tuple[str, ...]) -> list[str]:
    """Node IDs for names or node IDs; a name stands for every identity that office has had,
    so filtering by it also finds entries from before an identity rotation."""
    by_name: dict[str, list[str]] = {}
    for node_id, name in names.items():
        by_name.setdefault(name, []).append(node_id)
    out = []
    for item in wanted:
        if item in by_name:
            out.extend(by_name[item])
        elif item in names or "-" in item:
            out.append(item.upper())
        else:
            raise CliError(Phrase("there is no peer named {item!r} (give its name or node ID)",
                                  item=item))
    return out


def resolve_document(store: Store, text: str) -> list[str]:
    """Message IDs named by a message ID (or 6+ leading characters), a SHA-256 or a name part."""
    text = unicodedata.normalize("NFC", text.strip())
    lowered = text.lower()
    if len(lowered) == 32 and all(c in "0123456789abcdef" for c in lowered):
        return [lowered]
    return store.find_message_ids(text)


def _document_name(store: Store, message_id: str) -> str:
    """The name a document was sent or received under, to tell look-alike IDs apart."""
    dispatch = store.get_dispatch(message_id)
    if dispatch is not None:
        return dispatch.name
    received = store.received_for_message(message_id)
    return received[0].name if received else "?"


def filter_options(function: CommandFunction) -> CommandFunction:
    options = [
        click.option("--peer", "peers", multiple=True, help="Peer name or node ID (repeatable)."),
        click.option("--since", default=None, help="From this date/time (local), e.g. 2026-11-01."),
        click.option("--until", default=None,
                     help="Up to this date/time (a date: that whole day)."),
        click.option("--kind", "--state", "kinds", multiple=True,
                     help="Event kind, e.g. received, receipt-verified, rejected (repeatable)."),
        click.option("--document", default=None,
                     help="Documents whose name contains this, or with this SHA-256 or "
                          "message ID."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def search_args(store: Store, names: dict[str, str], peers: tuple[str, ...], since: str | None,
                until: str | None, kinds: tuple[str, ...], document: str | None
                ) -> dict[str, Any] | None:
    """Filters for ``store.audit_search``; None when the document matches nothing."""
    args: dict[str, Any] = {"peers": resolve_peers(names, peers), "kinds": list(kinds),
                            "since": parse_when(since), "until": parse_when(until, end=True)}
    if document:
        lowered = document.strip().lower()
        if len(lowered) == 64 and all(c in "0123456789abcdef" for c in lowered):
            args["digest"] = lowered
        else:
            ids = resolve_document(store, document)
            if not ids:
                return None
            args["message_ids"] = ids
    return args


def entry_dict(entry: AuditEntry, names: dict[str, str]) -> dict[str, Any]:
    return {"seq": entry.seq, "time": entry.time, "kind": entry.kind, "peer": entry.peer,
            "peer_name": names.get(entry.peer) if entry.peer else None,
            "message_id": entry.message_id, "digest": entry.digest, "detail": entry.detail,
            "prev_hash": entry.prev_hash, "hash": entry.hash}


@click.group(cls=DefaultToList)
def audit() -> None:
    """The tamper-evident audit log: list, trail, verify, export."""


@audit.command("list")
@home_argument
@filter_options
@click.option("--limit", default=50, show_default=True, help="Show the last N matching events.")
@click.option("--all", "show_all", is_flag=True, help="Show every matching event.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(home_arg: Path | None, home: Path | None, peers: tuple[str, ...], since: str | None,
          until: str | None, kinds: tuple[str, ...], document: str | None, limit: int,
          show_all: bool, as_json: bool) -> None:
    """List audit events, newest last, filtered by peer, date range, kind or document."""
    from rich.console import Console
    from rich.table import Table

    from lienthong.node.status.cells import text, when
    from lienthong.node.status.render_trail import describe_detail
    config = open_config(home_arg or home)
    store = open_store(config.store.url)
    try:
        names = peer_names(store)
        args = search_args(store, names, peers, since, until, kinds, document)
        entries = [] if args is None else store.audit_search(
            **args, limit=None if show_all else limit, newest=True)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([entry_dict(e, names) for e in entries], ensure_ascii=False,
                              indent=2))
        return
    if not entries:
        click.echo("No audit events match.")
        return
    import time
    now = time.time()
    table = Table(expand=True)
    for column in ("#", "Time", "Event", "Peer", "Message", "Details"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(str(entry.seq), when(entry.time, now), entry.kind,
                      text(names.get(entry.peer, entry.peer) if entry.peer else ""),
                      (entry.message_id or "")[:12], text(describe_detail(entry.detail),
                                                          limit=200))
    Console(highlight=False).print(table)


@audit.command("trail")
@click.argument("document")
@home_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def trail(document: str, home_arg: Path | None, home: Path | None, as_json: bool) -> None:
    """Everything recorded about one document (message ID, its first characters, SHA-256 or
    part of its name)."""
    import time

    from rich.console import Console

    from lienthong.node.status.render_trail import render_trail
    from lienthong.node.status.trail import build_trail
    config = open_config(home_arg or home)
    store = open_store(config.store.url)
    try:
        ids = resolve_document(store, document)
        if not ids:
            raise CliError(Phrase("no document matches {document!r}", document=document))
        if len(ids) > 1:
            listed = "; ".join(f"{mid} ({_document_name(store, mid)})" for mid in ids[:10])
            raise CliError(Phrase("{count} documents match {document!r}: {listed}{value}; give "
                                  "more of the message ID", count=len(ids), document=document,
                                  listed=listed, value=' ...' if len(ids) > 10 else ''))
        story = build_trail(store, ids[0])
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(story, ensure_ascii=False, indent=2))
        return
    Console(highlight=False).print(render_trail(story, now=time.time(),
                                                lang=clerk_language(config)))


@audit.command("verify")
@home_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--peer-heads", "peer_heads", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A peer's export of the heads it holds for this office (lienthong audit "
                   "witnesses --held-for NAME --json, run at the peer); may be repeated.")
def verify(home_arg: Path | None, home: Path | None, as_json: bool,
           peer_heads: tuple[Path, ...]) -> None:
    """Check the hash chain, the signed heads, every stored receipt, the heads peers
    witnessed, and every kept file.

    Exits 1 and names each wrong entry, receipt or file if anything does not verify."""
    from lienthong.node.audit.verify import AuditFailed, verify_store
    from lienthong.node.audit.witness_check import read_held_heads
    config = open_config(home_arg or home)
    card = own_card(config)
    try:
        held = [read_held_heads(path) for path in peer_heads]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = open_store(config.store.url)
    try:
        names = peer_names(store)
        try:
            report = verify_store(store, home=config.home, own_card=card,
                                  peer_name=lambda node_id: names.get(node_id, node_id),
                                  held=held)
            failed = False
        except AuditFailed as exc:
            report, failed = exc.report, True
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    if failed:
        sys.exit(1)


def _print_report(report: VerifyReport) -> None:
    from lienthong.node.status.cells import clean
    if any(problem.check == "chain" for problem in report.problems):
        click.echo(f"Audit log:  read {report.entries} entries; the chain is broken (see "
                   f"below); {report.heads} signed head(s) verified.")
    else:
        click.echo(f"Audit log:  {report.entries} entries; {report.heads} signed head(s) "
                   f"verified (last covers entry {report.last_signed_seq}).")
    if len(report.head_signers) > 1:  # after an identity rotation: say who signed what
        click.echo("Signed by:  " + "; ".join(f"{node_id}: {count} head(s)"
                                              for node_id, count in report.head_signers.items()))
    click.echo(f"Receipts:   {report.receipts} checked.")
    witnessed = "; ".join(f"{clean(name, 64)} up to entry {seq}"
                          for name, seq in sorted(report.witnessed_by.items()))
    click.echo(f"Witnessed:  {report.witnesses} head(s) held by peers checked against the log"
               + (f" ({witnessed})." if witnessed else "."))
    click.echo(f"Kept files: {report.files} checked against their recorded SHA-256"
               + (f"; {report.missing_files} no longer in place." if report.missing_files
                  else "."))
    for note in report.notes:
        click.echo(f"Note: {clean(note, 2000)}")
    if report.problems:
        click.echo("")
        for problem in report.problems:
            click.echo(f"✗ {clean(problem.where, 400)}: {clean(problem.what, 600)}")
        click.echo("")
        click.echo(f"FAILED: {len(report.problems)} problem(s). The store does not match what "
                   "was recorded; keep a copy of it as it is and investigate.")
    else:
        click.echo("✓ Verified: the audit chain is intact, every receipt's signature holds, "
                   "and every kept document still has its recorded digest.")


@audit.command("export")
@home_argument
@filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
def export(home_arg: Path | None, home: Path | None, peers: tuple[str, ...], since: str | None,
           until: str | None, kinds: tuple[str, ...], document: str | None, fmt: str,
           output: Path | None) -> None:
    """Export audit events (all, or filtered) as CSV or JSON for an auditor's own tools."""
    config = open_config(home_arg or home)
    store = open_store(config.store.url)
    try:
        names = peer_names(store)
        args = search_args(store, names, peers, since, until, kinds, document)
        entries = _all_entries(store, args)
        handle = output.open("w", encoding="utf-8", newline="") if output else None
        sink = handle or sys.stdout
        try:
            if fmt == "csv":
                write_csv(sink, entries, names)
            else:
                heads = [{"seq": h.seq, "hash": h.hash, "time": h.time, "signature": h.signature}
                         for h in store.audit_heads()]
                write_json(sink, entries, names, heads=heads, node={
                    "name": config.node.name, "node_id": own_card(config).node_id})
        finally:
            if handle is not None:
                handle.close()
    finally:
        store.close()


def _all_entries(store: Store, args: dict[str, Any] | None) -> Iterator[AuditEntry]:
    if args is None:
        return
    after = 0
    while page := store.audit_search(**args, after_seq=after, limit=EXPORT_PAGE):
        yield from page
        after = page[-1].seq


def write_csv(sink: TextIO, entries: Iterable[AuditEntry], names: dict[str, str]) -> None:
    writer = csv.writer(sink)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow([entry.seq, entry.time, entry.kind, entry.peer or "",
                         names.get(entry.peer, "") if entry.peer else "",
                         entry.message_id or "", entry.digest or "", entry.detail_json,
                         entry.prev_hash, entry.hash])


def write_json(sink: TextIO, entries: Iterable[AuditEntry], names: dict[str, str], *,
               heads: list[dict[str, Any]], node: dict[str, str]) -> None:
    """One JSON document, written entry by entry (bounded memory for a long log)."""
    sink.write('{"node": ' + json.dumps(node, ensure_ascii=False) + ',\n "heads": '
               + json.dumps(heads, ensure_ascii=False) + ',\n "entries": [')
    for index, entry in enumerate(entries):
        sink.write(("\n  " if index == 0 else ",\n  ")
                   + json.dumps(entry_dict(entry, names), ensure_ascii=False, sort_keys=True))
    sink.write("\n ]}\n")
