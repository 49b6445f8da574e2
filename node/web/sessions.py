"""Who is using the pages: sessions with CSRF tokens that expire, and throttled logins.

Theory of operation
-------------------
Every browser gets a session the first time it asks for a page: a random identifier in a
``HttpOnly; SameSite=Strict`` cookie (``Secure`` on the HTTPS listener) and a random CSRF token
that each form and each script request sends back. On the loopback listener the session is
the local operator's at once (``[web] local_role``); on the remote listener it belongs to no
one until a login succeeds, and a login gives a new identifier (no fixation). A session lasts
``[web] session_minutes`` after its last use, measured on the reactor's monotonic clock, and
is kept in memory only: a restart logs everyone out.

Logins are throttled per remote address and per user name: after ``MAX_FAILURES`` failures
within ``WINDOW`` seconds every attempt is refused, even a right one, until the window has
passed since the last failure.
"""
from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = b"lienthong_session"
MAX_FAILURES = 5
WINDOW = 900.0
ROLE_RANK = {"viewer": 0, "clerk": 1, "admin": 2}


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    remote: bool
    user: str | None
    role: str | None
    expires: float
    #: What the last action did, shown once on the next page.
    flash: str | None = None

    def may(self, role: str) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[role]

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, clock: Callable[[], float], *, lifetime: float, local_role: str) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.local_role = local_role
        self._sessions: dict[str, Session] = {}

    def find(self, cookie: str | None, *, remote: bool) -> Session | None:
        now = self.clock()
        self._sweep(now)
        session = self._sessions.get(cookie or "")
        if session is None or session.remote != remote:
            return None
        session.expires = now + self.lifetime
        return session

    def start(self, *, remote: bool) -> Session:
        user, role = (None, None) if remote else ("local", self.local_role)
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          remote=remote, user=user, role=role,
                          expires=self.clock() + self.lifetime)
        self._sessions[session.id] = session
        return session

    def log_in(self, old: Session, user: str, role: str) -> Session:
        self._sessions.pop(old.id, None)
        session = self.start(remote=old.remote)
        session.user, session.role = user, role
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


class LoginThrottle:
    """Failed logins per address and per user name; too many refuse every attempt a while."""

    def __init__(self, clock: Callable[[], float], *, max_failures: int = MAX_FAILURES,
                 window: float = WINDOW) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = self.clock()
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def blocked(self, address: str, user: str) -> bool:
        return any(len(self._recent(key)) >= self.max_failures
                   for key in (f"addr:{address}", f"user:{user}"))

    def failed(self, address: str, user: str) -> None:
        for key in (f"addr:{address}", f"user:{user}"):
            self._failures.setdefault(key, []).append(self.clock())

    def succeeded(self, address: str, user: str) -> None:
        for key in (f"addr:{address}", f"user:{user}"):
            self._failures.pop(key, None)
