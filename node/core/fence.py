"""The fence of an active node in an active/standby pair: no file is moved into the inbox or
the spool once the node cannot prove it still holds the lease.

Theory of operation
-------------------
In an active/standby pair (docs/scale.md, "Active/standby") the lease on the database is the
one source of truth for which process may write. Database writes are fenced by the database
itself (every write transaction checks the lease, ``node/store/lease.py``); files on the shared
folders are not, so the active node also keeps, in this process, the moment until which its
lease is proven (its last successful renewal plus the lease time, less a margin). The keeper
(``node/app/standby.py``) moves that moment forward and ends the process the moment it passes;
``check`` is called just before a file is published into the inbox or taken into the spool,
so that a process frozen (SIGSTOP, a hung host) and thawed after its lease went cannot publish
a file in the instant before its keeper thread runs again.

Unarmed (a plain ``lienthong run``, the CLI, tests), ``check`` does nothing.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from lienthong.node.core.errors import NodeError


class LeaseExpired(NodeError):
    """This process can no longer prove that it holds the lease: it must not write."""

    code = "lease-expired"


_proven_until: float | None = None
_on_expired: Callable[[str], None] | None = None


def arm(proven_until: float, on_expired: Callable[[str], None]) -> None:
    """Start fencing: ``on_expired(reason)`` (which ends the process) runs when a check finds
    the lease no longer proven after ``proven_until`` (a ``time.monotonic`` reading)."""
    global _proven_until, _on_expired
    _proven_until = proven_until
    _on_expired = on_expired


def extend(proven_until: float) -> None:
    """The lease was renewed: it is proven until ``proven_until`` (monotonic)."""
    global _proven_until
    if _proven_until is not None and proven_until > _proven_until:
        _proven_until = proven_until


def disarm() -> None:
    global _proven_until, _on_expired
    _proven_until = None
    _on_expired = None


def expired() -> bool:
    return _proven_until is not None and time.monotonic() > _proven_until


def check() -> None:
    """Before a file is written on the shared folders: end the process (or, if the handler
    returns, raise ``LeaseExpired``) when the lease is no longer proven."""
    if not expired():
        return
    if _on_expired is not None:
        _on_expired("the lease on the database was not renewed in time")
    raise LeaseExpired("this node can no longer prove that it holds the lease on the "
                       "database, so it writes nothing more")
