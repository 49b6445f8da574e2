"""Signing in and out, and the language buttons.

A sign-in checks the password (Argon2id, on the runtime's worker) behind the login throttle,
then starts a fresh session (a new cookie: the old one is never promoted); every attempt is
audited (``web-login``) with the user's name and address, never the password.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred

from lienthong.node.language.catalog import checked_language, translate
from lienthong.node.language.text import Phrase
from lienthong.node.web.accounts import Account, check_password
from lienthong.node.web.context import LANGUAGE_COOKIE, Answer, PageContext


def login_form(ctx: PageContext) -> None:
    ctx.page("login.html", page="login", title=translate(ctx.lang, "Sign in"))


def login(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    user = ctx.arg("user").strip().lower()[:64]
    address = ctx.address()
    throttle, rt = ctx.throttle, ctx.rt
    if throttle.blocked(address, user):
        yield rt.audit("web-login", user=user, outcome="throttled", address=address)
        raise Answer(429, Phrase("Too many failed sign-ins; wait 15 minutes and try again."))
    account: Account | None = yield rt.io(check_password, rt.config.home, user,
                                          ctx.arg("password"))
    if account is None:
        throttle.failed(address, user)
        yield rt.audit("web-login", user=user, outcome="failed", address=address)
        raise Answer(401, Phrase("The user name or the password is wrong."))
    throttle.succeeded(address, user)
    fresh = ctx.sessions.log_in(ctx.session, account.user, account.role)
    ctx.set_cookie(fresh)
    yield rt.audit("web-login", user=user, outcome="ok", role=account.role, address=address)
    raise Answer(303, location="/")


def logout(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    ctx.sessions.end(ctx.session)
    yield ctx.rt.audit("web-logout", user=ctx.user)
    raise Answer(303, location="/login" if ctx.remote else "/")


def choose_language(ctx: PageContext) -> None:
    """The language buttons: the clerk's choice kept in a cookie, over the office's."""
    chosen = checked_language(ctx.arg("to"))
    ctx.request.addCookie(LANGUAGE_COOKIE, chosen.encode("ascii"), path=b"/",
                          httpOnly=True, sameSite="strict", secure=ctx.remote)
    raise Answer(303, location="/")
