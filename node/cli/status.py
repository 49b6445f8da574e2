"""``lienthong status`` and ``lienthong console``: what the node is doing, for its IT officer.

Both read the store directly, so they work whether the daemon runs or not; when it does, they
also ask it (over the loopback status API whose address it keeps in ``state/status.port``) for
what only it knows: connections and transfers in flight. A port file left by a crashed daemon,
or another program answering on that port, is recognised (it must answer with our node ID) and
reported as "daemon down" rather than trusted.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from lienthong.config.schema import NodeConfig
from lienthong.keys.card import read_card
from lienthong.keys.errors import KeysError
from lienthong.node.cli.main import CliError, home_option, open_config
from lienthong.node.status.api import PORT_FILE
from lienthong.node.status.snapshot import Thresholds, build_snapshot, probe_home
from lienthong.node.store.database import open_store

ASK_TIMEOUT = 2.0


def own_node_id(config: NodeConfig) -> str:
    try:
        return read_card(config.card_path.read_text(encoding="utf-8")).node_id
    except (OSError, KeysError) as exc:
        raise CliError(f"cannot read this node's own card {config.card_path}: {exc}") from None


def ask_daemon(config: NodeConfig, node_id: str, *,
               timeout: float = ASK_TIMEOUT) -> tuple[dict[str, Any] | None, str]:
    """The daemon's live status, or None and a sentence saying why it is considered down."""
    port_file = config.home / PORT_FILE
    try:
        address = port_file.read_text(encoding="ascii").strip()
    except OSError:
        return None, ""  # the daemon removes it when it stops: nothing more to say
    if address.isdigit():
        address = f"127.0.0.1:{address}"
    url = f"http://{address}/status/live"
    # No proxy, whatever the environment says: this request must stay on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            live = json.loads(answer.read(1024 * 1024).decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError) as exc:
        return None, f"Nothing answers at {address} ({exc}); the daemon stopped or crashed."
    if not isinstance(live, dict) or live.get("node_id") != node_id:
        return None, f"Something else answers at {address}: not this node's daemon."
    return live, ""


def gather(config: NodeConfig, *, now: float | None = None,
           thresholds: Thresholds = Thresholds(), ask: bool = True,
           store: Any = None) -> dict[str, Any]:
    """A snapshot from the store, with the daemon's live part when it answers."""
    node_id = own_node_id(config)
    live, note = ask_daemon(config, node_id) if ask else (None, "not asked")
    now = time.time() if now is None else now
    daemon = {"running": live is not None, "note": note}
    node = {"name": config.node.name, "display_name": config.node.display_name,
            "node_id": node_id, "listen": config.node.listen, "home": str(config.home)}
    probe = probe_home(config.home)
    own_store = store is None
    store = store or open_store(config.store.url)
    try:
        with store.reading():  # one consistent view, as the daemon's /status reads it
            return build_snapshot(store, node=node, home=config.home, now=now, daemon=daemon,
                                  live=live, probe=probe, thresholds=thresholds)
    finally:
        if own_store:
            store.close()


def home_argument(function):  # type: ignore[no-untyped-def]
    """HOME as an optional argument (``status /srv/lienthong``) or ``--home``."""
    function = click.argument("home_arg", required=False, metavar="[HOME]",
                              type=click.Path(path_type=Path))(function)
    return home_option(function)


def thresholds_options(function):  # type: ignore[no-untyped-def]
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
        Console(highlight=False).print(render_status(snapshot))
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
    raise SystemExit(run_console(config, refresh=max(refresh, 0.5), thresholds=thresholds))
