"""What both ends of a node-to-node connection share: the software name each announces in its
HELLO, and how long a peer gets to close cleanly after an ERROR.

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
