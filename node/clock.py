"""Time, as the node reads it: always through an injected ``IReactorTime``.

Logic never calls ``time.time()``; it asks the reactor (a ``task.Clock`` in tests) and turns
the answer into the RFC 3339 strings that signed objects and the store carry.
"""
from __future__ import annotations

from datetime import UTC, datetime

from twisted.internet.interfaces import IReactorTime


def rfc3339(seconds: float) -> str:
    """``2026-11-25T22:00:00Z`` for an epoch time (second precision, UTC)."""
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(seconds: float) -> str:
    """Millisecond precision, for audit entries and logs where order within a second matters."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    """Inverse of ``rfc3339``/``rfc3339_ms`` (accepts a trailing Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def now_text(clock: IReactorTime) -> str:
    return rfc3339(clock.seconds())
