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
from lienthong.node.cli.common import CliError
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
        super().__init__(f"the demo stopped: {error}. Nothing was left running; run "
                         "'lienthong demo' again (an old demo folder is replaced).")


def check_sent_receipts(sent_file: Path, cards: dict[str, Any]) -> list[str]:
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
        lines.append(f"{peer} signed at {info.time}")
    return lines


def _lienthong_command() -> str:
    """How the user can call us again: plain 'lienthong' if it is on PATH, else its full path."""
    import shutil
    beside = Path(sys.executable).parent / "lienthong"
    if shutil.which("lienthong") or not beside.exists():
        return "lienthong"
    return str(beside)


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-network"), show_default=True,
              help="Where to create the three office homes (an old demo there is replaced).")
@click.option("--year", type=click.IntRange(2000, 2200), default=None,
              help="Instead: play a year of the offices' traffic through the three nodes "
                   "(programmes, directives, conclusions, statuses, recalls) and leave the "
                   "network behind for `lienthong report --year`.")
def demo(folder: Path, year: int | None) -> None:
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
        wall_now,
        write_sample,
    )
    from lienthong.node.app.node import Node, build_runtime
    from lienthong.node.core.clock import use_monotonic_timers

    use_monotonic_timers(reactor)  # as the daemon does: timers must not follow a clock step
    folder = folder.resolve()
    started = time.monotonic()
    try:
        prepare_folder(folder)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Creating three office nodes in {folder}")
    homes = create_network(folder, now=wall_now())
    cards = {name: read_card(new.card_path.read_text()) for name, new in homes.items()}
    for office in OFFICES:
        new = homes[office.name]
        click.echo(f"  {office.name:<7} {office.display_name}  ({office.english_name})")
        click.echo(f"          node ID {new.node_id}")
    nodes: dict[str, Node] = {}
    databases: dict[str, GroupCommitThread] = {}
    outcome: dict[str, Any] = {"code": 0}

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
        for name, node in nodes.items():
            for other, address in addresses.items():
                if other != name:
                    yield node.rt.db(node.rt.store.update_peer_addresses, other, [address],
                                     node.rt.now_text())
            yield node.rt.refresh_directory()
        for office in OFFICES:
            click.echo(f"  {office.name:<7} listening on {addresses[office.name]}")
        click.echo("All three nodes are running, enrolled with each other (mutual TLS 1.3).")
        click.echo("")
        pending = {}
        for sample in SAMPLES:
            path = write_sample(homes[sample.sender].config.outbox, sample)
            pending[(sample.sender, sample.name)] = sample
            size = path.stat().st_size
            click.echo(f"→ {sample.sender} drops {sample.name!r} ({size:,} bytes) into "
                       f"outbox/{sample.target}/")
        click.echo("")
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
                    lines = check_sent_receipts(sent_file, cards)
                except (ProtocolError, KeysError, OSError) as exc:
                    click.echo(f"✗ {name!r}: receipt check failed: {exc}")
                    outcome["code"] = 1
                    del pending[key]
                    continue
                recipients = [r.peer_node_id for r in row.deliveries]
                names = [rt.peer_name(n) for n in recipients]
                click.echo(f"✓ {name!r} from {sender} delivered to {', '.join(names)}")
                facts = [f"{key} {row.meta[key]}" for key in ("type", "number", "urgency")
                         if row.meta.get(key)]
                if facts:
                    click.echo(f"    {' · '.join(facts)} (signed inside the envelope)")
                click.echo(f"    SHA-256 {row.sha256}")
                for line in lines:
                    click.echo(f"    receipt verified with the peer's card only: {line}")
                del pending[key]
        if pending:
            outcome["code"] = 1
            for sender, name in pending:
                click.echo(f"✗ {name!r} from {sender} was not delivered in "
                           f"{DEADLINE_SECONDS:.0f} s")

    @inlineCallbacks
    def shut_down() -> Generator[Deferred[Any], Any, None]:
        """Stop whatever was started, failed or not: a database thread left running would
        keep the process alive after the reactor stopped."""
        for node in nodes.values():
            try:
                yield node.stop()
            except Exception:  # noqa: BLE001 - the others must still be stopped
                pass
        for database in databases.values():
            yield database.stop()

    def failed(failure: Any) -> None:
        outcome["code"] = 1
        outcome["error"] = failure.getErrorMessage()

    def run() -> None:
        d = scenario()
        d.addErrback(failed)
        d.addBoth(lambda _: shut_down())
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    if "error" in outcome:
        raise DemoFailed(outcome["error"])
    elapsed = time.monotonic() - started
    click.echo("")
    click.echo(f"Finished in {elapsed:.1f} s. The offices' folders are in {folder}:")
    for office in OFFICES:
        click.echo(f"  {folder / office.name}/inbox, sent, outbox, failed")
    click.echo("To try it by hand, start each node in its own terminal:")
    command = _lienthong_command()
    for office in OFFICES:
        click.echo(f"  {command} run {folder / office.name}")
    click.echo(f"then drop a file into {folder / 'tinhuy' / 'outbox' / 'hdnd'}/ and watch "
               f"{folder / 'hdnd' / 'inbox' / 'tinhuy'}/")
    click.echo("Each office's web pages (docs/web.md), while its node runs: open http:// and "
               "the address the node writes into its state/status.port:")
    for office in OFFICES:
        click.echo(f"  {office.name}: {folder / office.name / 'state' / 'status.port'}")
    sys.exit(outcome["code"])


def _history(folder: Path, year: int) -> None:
    """``demo --year``: a year of traffic through real nodes on an injected clock."""
    import datetime as dt

    from twisted.internet import reactor

    from lienthong.node.app.history import HistoryRun, plan_year
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
