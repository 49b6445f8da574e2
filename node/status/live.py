"""What only the running daemon knows, as plain values: link states and transfers in flight.

Built on the reactor thread from the links (no I/O) and merged into the snapshot by
``lienthong.node.status.snapshot.build_snapshot``, in the daemon or, fetched over the local
status API (``/status/live``), by the CLI.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def live_from_links(links: Mapping[str, Any], *, node_id: str, now: float, started_at: float,
                    uptime: float, monotonic: float, status_listen: str | None = None,
                    receiving: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The in-memory state of a running node as plain values (reactor thread, no I/O).

    ``links`` maps peer node IDs to ``PeerLink``s; each has ``state``, ``proto``,
    ``last_error`` and ``progress`` (``Progress``: message_id, name, size, offset,
    started_monotonic, started_offset). ``now`` and ``started_at`` are wall-clock epoch
    seconds (shown, and compared with stored times); ``uptime`` and the transfer rates are
    measured on the timer clock, of which ``monotonic`` is the current reading, so a step of
    the wall clock neither makes the uptime negative nor a rate absurd.
    """
    peers: dict[str, Any] = {}
    transfers = []
    for peer, link in sorted(links.items()):
        state = getattr(link.state, "value", str(link.state))
        peers[peer] = {"link": state, "connected": state == "connected",
                       "last_error": link.last_error, "offered": len(getattr(link, "offered", {}))}
        for progress in list(link.progress.values()):
            elapsed = max(monotonic - progress.started_monotonic, 0.0)
            moved = max(progress.offset - progress.started_offset, 0)
            rate = moved / elapsed if elapsed > 0.5 else None
            left = max(progress.size - progress.offset, 0)
            transfers.append({
                "peer": peer, "message_id": progress.message_id, "name": progress.name,
                "size": progress.size, "offset": progress.offset, "elapsed_seconds": elapsed,
                "rate_bytes_per_second": rate,
                "eta_seconds": left / rate if rate else None})
    return {"node_id": node_id, "now": now, "started_at": started_at,
            "uptime_seconds": max(uptime, 0.0), "status_listen": status_listen,
            "peers": peers, "transfers": transfers,
            "receiving": [{"peer": peer, "message_id": mid} for peer, mid in sorted(receiving)]}
