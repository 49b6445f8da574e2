"""The daemon's live part: transfers in flight with rate and ETA on the timer clock."""
from __future__ import annotations

from types import SimpleNamespace

from lienthong.node.delivery.links import LinkState
from lienthong.node.delivery.outcomes import Progress
from lienthong.node.status.live import live_from_links
from tests.node.statushelp import NOW


def test_live_transfers_have_rate_and_eta() -> None:
    """A transfer that moved 1 MiB in 2 s from offset 0 of 5 MiB: 512 KiB/s, 8 s left.

    Rate and uptime come from the timer clock: the wall clock stepped back a day since the
    start (``started_at`` is after ``now``) and neither changes."""
    link = SimpleNamespace(state=LinkState.CONNECTED, last_error=None, offered={"m": 1},
                           progress={"m": Progress("m" * 32, "Niên giám.pdf", 5 << 20, 1 << 20,
                                                   100.0, 0)})
    live = live_from_links({"PEER": link}, node_id="ME", now=NOW, started_at=NOW + 86400 - 62,
                           uptime=62.0, monotonic=102.0, receiving=[("OTHER", "f" * 32)])
    transfer = live["transfers"][0]
    assert transfer["rate_bytes_per_second"] == 512 * 1024
    assert transfer["eta_seconds"] == 8.0
    assert transfer["elapsed_seconds"] == 2.0
    assert live["peers"]["PEER"] == {"link": "connected", "connected": True,
                                     "last_error": None, "offered": 1}
    assert live["uptime_seconds"] == 62.0 and live["receiving"][0]["peer"] == "OTHER"
    assert live["now"] == NOW
