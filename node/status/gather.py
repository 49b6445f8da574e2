"""A status snapshot gathered from outside the daemon: for ``lienthong status``, ``console``
and ``audit export``.

The store is read directly, so this works whether the daemon runs or not; when it does, the
daemon is also asked (over the loopback status API whose address it keeps in
``state/status.port``) for what only it knows: connections and transfers in flight. A port
file left by a crashed daemon, or another program answering on that port, is recognised (it
must answer with our node ID) and reported as "daemon down" rather than trusted.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from lienthong.config.schema import NodeConfig
from lienthong.keys.card import PeerCard, read_card
from lienthong.keys.errors import KeysError
from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase
from lienthong.node.status.api import PORT_FILE
from lienthong.node.status.health import Thresholds
from lienthong.node.status.probe import probe_home
from lienthong.node.status.snapshot import build_snapshot
from lienthong.node.store.database import Store, open_store

ASK_TIMEOUT = 2.0


class OwnCardUnreadable(NodeError):
    """This node's own peer card (its node ID) cannot be read from the home."""

    code = "own-card-unreadable"


def own_card(config: NodeConfig) -> PeerCard:
    try:
        return read_card(config.card_path.read_text(encoding="utf-8"))
    except (OSError, KeysError) as exc:
        raise OwnCardUnreadable(Phrase("cannot read this node's own card {path}: {error}",
                                       path=config.card_path, error=exc)) from None


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
           thresholds: Thresholds | None = None, ask: bool = True,
           store: Store | None = None) -> dict[str, Any]:
    """A snapshot from the store, with the daemon's live part when it answers."""
    node_id = own_card(config).node_id
    live, note = ask_daemon(config, node_id) if ask else (None, "not asked")
    now = time.time() if now is None else now
    daemon = {"running": live is not None, "note": note}
    node = {"name": config.node.name, "display_name": config.node.display_name,
            "node_id": node_id, "listen": config.node.listen, "home": str(config.home)}
    probe = probe_home(config.home, config.node.clerks_group)
    own_store = store is None
    store = store or open_store(config.store.url)
    try:
        with store.reading():  # one consistent view, as the daemon's /status reads it
            return build_snapshot(store, node=node, home=config.home, now=now, daemon=daemon,
                                  live=live, probe=probe, thresholds=thresholds,
                                  coordination=config.coordination)
    finally:
        if own_store:
            store.close()
