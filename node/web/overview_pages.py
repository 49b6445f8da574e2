"""The pages that show what is happening: the overview and its live figures (``live.json``),
the deadlines, and the citizens' petitions (petition staff only)."""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred

from lienthong.node.language.catalog import translate
from lienthong.node.language.names import name_of
from lienthong.node.language.text import Phrase
from lienthong.node.status.api import to_json
from lienthong.node.web import views
from lienthong.node.web.context import Answer, PageContext


def overview(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    snap = yield ctx.status.snapshot()
    ctx.page("overview.html", page="overview", title=translate(ctx.lang, "Overview"),
             snap=snap)


def live(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    """The overview's figures as JSON, which the page's script polls."""
    lang = ctx.lang
    snap = yield ctx.status.snapshot()
    moving = [{"label": f"{t['peer_name']}: {t.get('name') or t['message_id']}",
               "size": t.get("size") or 1, "done": t.get("offset") or 0}
              for t in snap["transfers"]]
    moving += [{"label": f"{t['peer_name']}: {t['message_id']}", "size": 1, "done": 0}
               for t in snap["receiving"]]
    ctx.write(to_json({
        "health": name_of("state", snap["health"], lang),
        "peers": [{"name": p["name"], "waiting": p["queue"]["count"],
                   "link": translate(lang, "Connected") if p["connected"]
                   else translate(lang, "Not connected")} for p in snap["peers"]],
        "transfers": moving}), b"application/json; charset=utf-8")


def deadlines(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    config = ctx.rt.config
    rows = yield ctx.status.reads.run(views.deadlines, config.coordination, config.node.name,
                                      ctx.rt.now())
    ctx.page("deadlines.html", page="deadlines", title=translate(ctx.lang, "Deadlines"),
             rows=rows)


def petitions(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    if not ctx.may_see_petitions():
        raise Answer(403, Phrase("Only the petition staff may see citizens' petitions; "
                                 "sign in with a petition staff account."),
                     audit="petition-staff")
    rows = yield ctx.status.reads.run(views.petitions, ctx.rt.config, ctx.rt.now())
    ctx.page("petitions.html", page="petitions", title=translate(ctx.lang, "Petitions"),
             rows=rows)
