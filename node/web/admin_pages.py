"""The IT staff's pages: the offices (peers) and their connection test, the audit log and
its export (CSV or JSON)."""
from __future__ import annotations

import csv
import io
from collections.abc import Generator
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred

from lienthong.node.language.catalog import translate
from lienthong.node.status.api import to_json
from lienthong.node.status.gather import own_card
from lienthong.node.web import views
from lienthong.node.web.context import PageContext


def peers(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    rows = yield ctx.status.reads.run(views.peers, ctx.rt.node_id)
    ctx.page("peers.html", page="peers", title=translate(ctx.lang, "Offices"), peers=rows)


def connection_test(ctx: PageContext, name: str) -> Generator[Deferred[Any], Any, None]:
    """The peers page's button: dials the office, answers with what happened (JSON)."""
    yield ctx.rt.audit("web-action", user=ctx.user, action="test-connection",
                       target=name[:64])
    text = yield ctx.tester.test_connection(name)
    ctx.write(to_json({"message": text.in_language(ctx.lang)}),
              b"application/json; charset=utf-8")


def audit(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    query = views.AuditQuery.from_args(ctx.args())
    config = ctx.rt.config
    card = own_card(config)
    verify = yield ctx.status.reads.run(views.audit_verify, config.home, card)
    entries = yield ctx.status.reads.run(views.audit_entries, query)
    ctx.page("audit.html", page="audit", title=translate(ctx.lang, "Audit"), verify=verify,
             entries=entries, query=query,
             query_string=urlencode({k: v for k, v in (
                 ("kind", query.kind), ("peer", query.peer),
                 ("message_id", query.message_id)) if v}))


def audit_export(ctx: PageContext, name: str) -> Generator[Deferred[Any], Any, None]:
    """The audit entries the query selects, as ``audit.csv`` or ``audit.json``."""
    query = views.AuditQuery.from_args(ctx.args(), limit=100000)
    entries = yield ctx.status.reads.run(views.audit_entries, query)
    yield ctx.rt.audit("web-action", user=ctx.user, action="audit-export",
                       rows=len(entries))
    ctx.request.setHeader(b"content-disposition",
                          f"attachment; filename=audit.{name.split('.')[1]}".encode("ascii"))
    if name.endswith(".json"):
        ctx.write(to_json(entries), b"application/json; charset=utf-8")
        return
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seq", "time", "kind", "peer", "message_id", "digest", "detail",
                     "hash"])
    for e in entries:
        # A cell a spreadsheet would run as a formula is written as text.
        writer.writerow([_cell(e[k]) for k in ("seq", "time", "kind", "peer", "message_id",
                                                "digest", "detail_text", "hash")])
    ctx.write(out.getvalue().encode("utf-8"), b"text/csv; charset=utf-8")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
