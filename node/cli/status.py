"""``lienthong status`` and ``lienthong console``: what the node is doing, for its IT officer.

Both work whether the daemon runs or not: the snapshot is gathered from the store, with the
daemon's live part when it answers (node/status/gather.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lienthong.node.cli.common import (
    CommandFunction,
    clerk_language,
    home_argument,
    open_config,
)
from lienthong.node.status.gather import gather
from lienthong.node.status.health import Thresholds


def thresholds_options(function: CommandFunction) -> CommandFunction:
    function = click.option("--unreachable-hours", type=float, default=4.0, show_default=True,
                            help="Warn when a peer with work waiting was not seen for longer.")(
        function)
    return click.option("--overdue-hours", type=float, default=2.0, show_default=True,
                        help="Warn when a document waits longer than this for a receipt.")(
        function)


#: ``status --check`` exit codes, as monitoring plugins (Nagios, Icinga, Zabbix) read them.
CHECK_EXIT = {"ok": 0, "warning": 1, "critical": 2}


@click.command()
@home_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", is_flag=True,
              help="Exit 0 if healthy, 1 on a warning, 2 on a critical problem (for monitoring).")
@thresholds_options
def status(home_arg: Path | None, home: Path | None, as_json: bool, check: bool,
           unreachable_hours: float, overdue_hours: float) -> None:
    """One screen: is the node healthy, what waits for whom and why, what arrived today."""
    from rich.console import Console

    from lienthong.node.status.render import render_status
    config = open_config(home_arg or home)
    snapshot = gather(config, thresholds=Thresholds(peer_unreachable_hours=unreachable_hours,
                                                    receipt_overdue_hours=overdue_hours))
    if as_json:
        click.echo(json.dumps(snapshot, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        Console(highlight=False).print(render_status(snapshot, lang=clerk_language(config)))
    if check:
        sys.exit(CHECK_EXIT.get(snapshot["health"], 2))


@click.command()
@home_argument
@click.option("--refresh", type=float, default=2.0, show_default=True,
              help="Seconds between refreshes.")
@thresholds_options
def console(home_arg: Path | None, home: Path | None, refresh: float, unreachable_hours: float,
            overdue_hours: float) -> None:
    """The status screen, live: [p] cycles the peer filter, [t] shows a document's trail,
    [q] quits."""
    from lienthong.node.cli.console import run_console
    config = open_config(home_arg or home)
    thresholds = Thresholds(peer_unreachable_hours=unreachable_hours,
                            receipt_overdue_hours=overdue_hours)
    raise SystemExit(run_console(config, refresh=max(refresh, 0.5), thresholds=thresholds,
                                 lang=clerk_language(config)))
