"""``lienthong demo``: run the three-office network once and show what happens."""
from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from twisted.internet.defer import Deferred

from lienthong.config.offices import OFFICES
from lienthong.keys.card import read_card
from lienthong.keys.errors import KeysError
from lienthong.node.cli.common import CliError, clerk_language
from lienthong.node.language.catalog import DEFAULT_LANGUAGE
from lienthong.node.language.names import name_of, show_time
from lienthong.node.language.text import Phrase
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import verify_receipt

if TYPE_CHECKING:
    from lienthong.node.store.commits import GroupCommitThread

DEADLINE_SECONDS = 50.0


class DemoFailed(CliError):
    """The demo could not run to its end: one plain sentence and exit status 1."""

    code = "demo-failed"
    exit_code = 1

    def __init__(self, error: str) -> None:
        super().__init__(Phrase("the demo stopped: {error}. Nothing was left running; run "
                                "'lienthong demo' again (an old demo folder is replaced).",
                                error=error))


def check_sent_receipts(sent_file: Path, cards: dict[str, Any],
                        lang: str = DEFAULT_LANGUAGE) -> list[str]:
    """Verify every receipt kept beside a sent document with only the peer's public card."""
    import nacl.signing
    digest = hashlib.sha256(sent_file.read_bytes()).hexdigest()
    lines = []
    for receipt_file in sorted(sent_file.parent.glob(f"{sent_file.name}.*.receipt.jws")):
        peer = receipt_file.name[len(sent_file.name) + 1:-len(".receipt.jws")]
        card = cards[peer]
        info = verify_receipt(receipt_file.read_text().strip(),
                              nacl.signing.VerifyKey(card.identity_public),
                              recipient=card.node_id)
        if info.sha256 != digest:
            raise ProtocolError(f"receipt from {peer} names another digest")
        lines.append(Phrase("{peer} signed at {time}", peer=peer,
                            time=show_time(info.time, lang)).in_language(lang))
    return lines


def _lienthong_command() -> str:
    """How the user can call us again: plain 'lienthong' if it is on PATH, else its full path."""
    import shutil
    beside = Path(sys.executable).parent / "lienthong"
    if shutil.which("lienthong") or not beside.exists():
        return "lienthong"
    return str(beside)


def _facts(meta: dict[str, Any], lang: str) -> list[str]:
    """What the signed metadata says a document is, by the clerk's names."""
    facts = []
    for key, table in (("type", "type"), ("number", None), ("urgency", "urgency")):
        if meta.get(key):
            facts.append(name_of(table, meta[key], lang) if table else str(meta[key]))
    return facts


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-network"), show_default=True,
              help="Where to create the three office homes (an old demo there is replaced).")
@click.option("--serve", is_flag=True,
              help="After the deliveries, keep the three nodes running (their web pages "
                   "open) until Ctrl-C.")
@click.option("--year", type=click.IntRange(2000, 2200), default=None,
              help="Instead: play a year of the offices' traffic through the three nodes "
                   "(programmes, directives, conclusions, statuses, recalls) and leave the "
                   "network behind for `lienthong report --year`.")
def demo(folder: Path, serve: bool, year: int | None) -> None:
    """Run a three-office demo network on loopback and show each delivery and receipt."""
    if year is not None:
        _history(folder, year)
        return
    from twisted.internet import reactor
    from twisted.internet.defer import inlineCallbacks
    from twisted.internet.task import deferLater

    from lienthong.node.app.demo import (
        SAMPLES,
        create_network,
        listening_anywhere,
        open_keys,
        prepare_folder,
        settle_address,
        settle_status_address,
        wall_now,
        write_sample,
    )
    from lienthong.node.app.node import Node, build_runtime
    from lienthong.node.core.clock import use_monotonic_timers

    lang = clerk_language()

    def say(phrase: Phrase | str) -> None:
        click.echo(phrase.in_language(lang) if isinstance(phrase, Phrase) else phrase)

    use_monotonic_timers(reactor)  # as the daemon does: timers must not follow a clock step
    folder = folder.resolve()
    started = time.monotonic()
    try:
        prepare_folder(folder)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    say(Phrase("Creating three office nodes in {folder}", folder=folder))
    homes = create_network(folder, now=wall_now())
    cards = {name: read_card(new.card_path.read_text()) for name, new in homes.items()}
    for office in OFFICES:
        new = homes[office.name]
        say(f"  {office.name:<7} {office.display_name}  ({office.english_name})")
        say(Phrase("          node ID {node_id}", node_id=new.node_id))
    nodes: dict[str, Node] = {}
    databases: dict[str, GroupCommitThread] = {}
    outcome: dict[str, Any] = {"code": 0}
    pages: dict[str, str] = {}

    @inlineCallbacks
    def scenario() -> Generator[Deferred[Any], Any, None]:
        addresses = {}
        for name, new in homes.items():
            keys = open_keys(new.config)
            runtime, databases[name] = build_runtime(reactor, listening_anywhere(new.config),
                                                     keys)
            nodes[name] = Node(runtime)
            yield nodes[name].start()
            addresses[name] = settle_address(new.config, keys, nodes[name].listening_port,
                                             now=wall_now())
            status_api = nodes[name].status_api
            if status_api is not None and status_api.address is not None:
                pages[name] = settle_status_address(new.config, status_api.address)
        for name, node in nodes.items():
            for other, address in addresses.items():
                if other != name:
                    yield node.rt.db(node.rt.store.update_peer_addresses, other, [address],
                                     node.rt.now_text())
            yield node.rt.refresh_directory()
        for office in OFFICES:
            say(Phrase("  {office} listening on {address}", office=f"{office.name:<7}",
                       address=addresses[office.name]))
        say(Phrase("All three nodes are running, enrolled with each other (mutual TLS 1.3)."))
        say("")
        pending = {}
        for sample in SAMPLES:
            path = write_sample(homes[sample.sender].config.outbox, sample)
            pending[(sample.sender, sample.name)] = sample
            size = path.stat().st_size
            say(Phrase("→ {sender} drops {name} ({size} bytes) into outbox/{target}/",
                       sender=sample.sender, name=repr(sample.name), size=f"{size:,}",
                       target=sample.target))
        say("")
        deadline = reactor.seconds() + DEADLINE_SECONDS
        while pending and reactor.seconds() < deadline:
            yield deferLater(reactor, 0.2, lambda: None)
            for key in list(pending):
                sender, name = key
                rt = nodes[sender].rt
                rows = yield rt.db(rt.store.recent_dispatches, 50)
                row = next((r for r in rows if r.name == name), None)
                if row is None or row.state != "sent" or row.sent_path is None:
                    continue
                sent_file = Path(row.sent_path)
                if not sent_file.exists():
                    continue
                try:
                    lines = check_sent_receipts(sent_file, cards, lang)
                except (ProtocolError, KeysError, OSError) as exc:
                    say(Phrase("✗ {name}: receipt check failed: {error}", name=repr(name),
                               error=exc))
                    outcome["code"] = 1
                    del pending[key]
                    continue
                recipients = [r.peer_node_id for r in row.deliveries]
                names = [rt.peer_name(n) for n in recipients]
                say(Phrase("✓ {name} from {sender} delivered to {recipients}", name=repr(name),
                           sender=sender, recipients=", ".join(names)))
                facts = _facts(row.meta, lang)
                if facts:
                    say(Phrase("    {facts} (signed inside the envelope)",
                               facts=" · ".join(facts)))
                say(f"    SHA-256 {row.sha256}")
                for line in lines:
                    say(Phrase("    receipt verified with the peer's card only: {receipt}",
                               receipt=line))
                del pending[key]
        if pending:
            outcome["code"] = 1
            for sender, name in pending:
                say(Phrase("✗ {name} from {sender} was not delivered in {seconds} s",
                           name=repr(name), sender=sender, seconds=f"{DEADLINE_SECONDS:.0f}"))

    @inlineCallbacks
    def shut_down() -> Generator[Deferred[Any], Any, None]:
        """Stop whatever was started, failed or not: a database thread left running would
        keep the process alive after the reactor stopped."""
        for node in nodes.values():
            try:
                yield node.stop()
            except Exception as exc:  # noqa: BLE001 - reported; the others must still stop
                say(Phrase("{office} could not be stopped cleanly: {error}",
                           office=node.rt.config.node.name, error=str(exc)))
        for database in databases.values():
            yield database.stop()

    def failed(failure: Any) -> None:
        outcome["code"] = 1
        outcome["error"] = failure.getErrorMessage()

    def serving(_: Any) -> Deferred[Any] | None:
        """With --serve and all delivered: say where each office's pages are and keep the
        nodes running until Ctrl-C (SIGINT; the reactor then runs the shutdown trigger)."""
        if not serve or outcome["code"] != 0 or "error" in outcome:
            return None
        say("")
        say(Phrase("Each office's web pages, in Vietnamese (docs/web.md); open one in a "
                   "browser:"))
        for office in OFFICES:
            if office.name in pages:
                say(f"  {office.name:<7} http://{pages[office.name]}/")
        say(Phrase("The three nodes keep running; press Ctrl-C to stop them."))
        sys.stdout.flush()
        waiting: Deferred[Any] = Deferred()
        reactor.addSystemEventTrigger("before", "shutdown", lambda: shut_down())
        return waiting  # never fires: the reactor's shutdown ends the demo

    def run() -> None:
        d = scenario()
        d.addErrback(failed)
        d.addCallback(serving)
        d.addBoth(lambda _: shut_down())
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    if "error" in outcome:
        raise DemoFailed(outcome["error"])
    elapsed = time.monotonic() - started
    say("")
    say(Phrase("Finished in {seconds} s. The offices' folders are in {folder}:",
               seconds=f"{elapsed:.1f}", folder=folder))
    for office in OFFICES:
        say(f"  {folder / office.name}/inbox, sent, outbox, failed")
    say(Phrase("To try it by hand, start each node in its own terminal:"))
    command = _lienthong_command()
    for office in OFFICES:
        say(f"  {command} run {folder / office.name}")
    say(Phrase("then drop a file into {outbox}/ and watch {inbox}/",
               outbox=folder / "tinhuy" / "outbox" / "hdnd",
               inbox=folder / "hdnd" / "inbox" / "tinhuy"))
    say(Phrase("Each office's web page (docs/web.md), while its node runs (the same address "
               "every time: it is written in the office's lienthong.toml):"))
    for office in OFFICES:
        if office.name in pages:
            say(f"  {office.name:<7} http://{pages[office.name]}/")
    sys.exit(outcome["code"])


def _history(folder: Path, year: int) -> None:
    """``demo --year``: a year of traffic through real nodes on an injected clock."""
    import datetime as dt

    from twisted.internet import reactor

    from lienthong.node.app.history import HistoryRun
    from lienthong.node.app.year_plan import plan_year
    from lienthong.node.core.clock import use_monotonic_timers

    today = dt.date.today()
    if year > today.year:
        raise click.ClickException(f"{year} has not begun: choose this year or an earlier one")
    use_monotonic_timers(reactor)
    plan = plan_year(year, until=today if year == today.year else None)
    folder = folder.resolve()
    run = HistoryRun(reactor, folder, plan, report=click.echo)
    try:
        run.create()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Playing {len(plan.documents)} documents and {len(plan.actions)} statuses "
               f"and recalls of {year} through three nodes in {folder}")
    started = time.monotonic()
    outcome = {"code": 0}

    def failed(failure: Any) -> None:
        outcome["code"] = 1
        click.echo(f"the history failed: {failure.getErrorMessage()}", err=True)

    def played() -> None:
        d = run.run()
        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(played)
    reactor.run()
    click.echo(f"Finished in {time.monotonic() - started:.0f} s; what was played is in "
               f"{folder / 'history.json'}. The reports:")
    command = _lienthong_command()
    for office in OFFICES:
        click.echo(f"  {command} report --home {folder / office.name} --year {year} "
                   f"--out {office.name}-{year}.html --pdf")
    sys.exit(outcome["code"])
