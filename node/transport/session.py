"""What both ends of a node-to-node connection share: the software name each announces in its
HELLO, how long a peer gets to close cleanly after an ERROR, and that frames leave at once.

The sending side (node/delivery/connection.py) and the receiving side
(node/inbox/connection.py) are rooms on one layer and may not import each other, so what they
must agree on lives here, below both.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    _VERSION = version("lienthong")
except PackageNotFoundError:  # run from a checkout that was never installed
    _VERSION = "unknown"

#: Announced in HELLO by both ends: the installed version, so a peer's logs say what it met.
SOFTWARE = f"lienthong/{_VERSION}"
#: Seconds a peer gets to complete the TLS close after our ERROR before the socket is dropped.
CLOSE_GRACE = 2.0


def frames_at_once(transport: object) -> None:
    """Turn off Nagle's algorithm on the TCP connection under ``transport`` (the TLS layer).

    The protocol is a conversation of small frames (OFFER, ACCEPT, a small document's DATA and
    END, RECEIPT): with Nagle, a small frame written while an earlier one is still unacknowledged
    waits for that acknowledgement, which the peer may delay by up to 40 ms (delayed ACK), on
    the path of a single document. Frames are written whole (node/transport/bulk.py), so this
    adds no small packets. A transport without a TCP connection under it (a test's) is left as
    it is."""
    tcp = getattr(transport, "transport", None)
    set_no_delay = getattr(tcp, "setTcpNoDelay", None)
    if callable(set_no_delay):
        set_no_delay(True)
