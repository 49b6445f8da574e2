"""The web pages as ``twisted.web`` resources: the request's frame and the route table.

Theory of operation
-------------------
``WebService`` holds what both listeners share: the sessions, the login throttle, the running
node's runtime and its status service. ``WebPages`` is one leaf resource per listener: the
loopback status listener (no account: the session is the local operator's, with
``[web] local_role``) and, when configured, the remote HTTPS listener (an account and a login
first). Each request:

1. gets the security headers (a strict Content-Security-Policy: scripts, styles and
   connections from this origin only, no inline script or style, no frame), and its session
   (a new one, with its cookie, if it has none);
2. is routed by method and path; every POST must carry the session's CSRF token (form field
   ``csrf`` or header ``X-CSRF-Token``) and a role allowed to do it, or it is refused (403)
   and audited;
3. reads through the status thread (``StatusService.reads``, read-only, never queued behind
   the node's writes) and writes through the runtime's doors (``rt.db`` for the store,
   ``rt.io`` for files and Argon2id): nothing blocks the reactor.

Each page is a function of a ``context.PageContext`` in the module of its concern:
``overview_pages`` (the overview, its live figures, deadlines, petitions), ``documents_pages``
(the documents, one document, its actions, sending), ``admin_pages`` (offices, audit log,
export), ``report_pages`` (the yearly report and its files) and ``session_pages`` (signing in
and out, the language buttons). Every login and action is audited (``web-login``,
``web-action``, ``web-refused``) with the user's name.
"""
from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from lienthong.node.control.requests import RequestRefused
from lienthong.node.language.catalog import checked_language, negotiate, translate
from lienthong.node.language.text import Phrase
from lienthong.node.report.render import STYLESHEET
from lienthong.node.status.api import StatusService, to_json
from lienthong.node.web import (
    admin_pages,
    documents_pages,
    overview_pages,
    report_pages,
    session_pages,
)
from lienthong.node.web.context import (
    HTML,
    LANGUAGE_COOKIE,
    SLOTS,
    Answer,
    ConnectionTester,
    PageContext,
    multipart_fields,
    request_arg,
    set_security_headers,
    set_session_cookie,
    write_answer,
)
from lienthong.node.web.sessions import COOKIE, LoginThrottle, Session, Sessions

log = Logger(namespace="lienthong.web")

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"app.js": b"text/javascript; charset=utf-8",
                "style.css": b"text/css; charset=utf-8",
                "report.css": b"text/css; charset=utf-8"}
#: Where each static asset is: the page's own, and the yearly report's style (node/report).
STATIC_FILES = {"app.js": STATIC / "app.js", "style.css": STATIC / "style.css",
                "report.css": STYLESHEET}


class WebService:
    """What the loopback and the remote listeners share."""

    def __init__(self, status: StatusService, tester: ConnectionTester) -> None:
        self.status = status
        self.rt = status.rt
        self.tester = tester
        web = self.rt.config.web
        clock = self.rt.monotonic
        self.sessions = Sessions(clock, lifetime=web.session_minutes * 60.0,
                                 local_role=web.local_role)
        self.throttle = LoginThrottle(clock)
        self.static = {name: path.read_bytes() for name, path in STATIC_FILES.items()}

    def pages(self, *, remote: bool) -> WebPages:
        return WebPages(self, remote=remote)


class WebPages(Resource):
    """One listener's pages: frames each request, then routes it to its page."""

    isLeaf = True

    def __init__(self, web: WebService, *, remote: bool) -> None:
        super().__init__()
        self.web = web
        self.rt = web.rt
        self.remote = remote

    # -- the request's frame ---------------------------------------------------------------

    def render(self, request: Any) -> Any:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self._respond(request)
        d.addErrback(self._failed, request, gone)
        return NOT_DONE_YET

    def _failed(self, failure: Any, request: Any, gone: list[bool]) -> None:
        log.failure("web request failed", failure)
        if not gone:
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(translate(self._language(request), "Something went wrong inside "
                                    "the node; its log says what.").encode("utf-8") + b"\n")
            request.finish()

    def _session(self, request: Any) -> Session:
        cookie = request.getCookie(COOKIE)
        session = self.web.sessions.find(cookie.decode("ascii", "replace") if cookie else None,
                                         remote=self.remote)
        if session is None:
            session = self.web.sessions.start(remote=self.remote)
            set_session_cookie(request, session, remote=self.remote)
        return session

    def _language(self, request: Any) -> str:
        """The page's language: the clerk's choice (the language buttons' cookie), else the
        office's ``language``; the browser's Accept-Language only with ``[web]
        follow_browser_language = true`` (docs/web.md)."""
        chosen = request.getCookie(LANGUAGE_COOKIE)
        if chosen:
            return checked_language(chosen.decode("ascii", "replace"))
        header = request.getHeader(b"accept-language")
        if header and self.rt.config.web.follow_browser_language:
            return negotiate(header.decode("latin-1"))
        return checked_language(self.rt.config.language)

    def _context(self, request: Any, session: Session, lang: str) -> PageContext:
        web = self.web
        return PageContext(request=request, session=session, lang=lang, remote=self.remote,
                           rt=self.rt, status=web.status, tester=web.tester,
                           sessions=web.sessions, throttle=web.throttle)

    @inlineCallbacks
    def _respond(self, request: Any) -> Generator[Deferred[Any], Any, None]:
        path = [p.decode("utf-8", "replace") for p in request.postpath if p]
        method = request.method.decode("ascii", "replace")
        if path[:1] == ["static"] and len(path) == 2 and path[1] in STATIC_TYPES:
            set_security_headers(request, STATIC_TYPES[path[1]], remote=self.remote)
            request.setHeader(b"cache-control", b"max-age=300")
            request.write(self.web.static[path[1]])
            request.finish()
            return
        if path == ["favicon.ico"]:  # browsers ask for it; there is none
            request.setResponseCode(204)
            write_answer(request, b"", b"image/x-icon", remote=self.remote)
            return
        session = self._session(request)
        ctx = self._context(request, session, self._language(request))
        try:
            if method == "POST":
                self._check_post(request, session)
            elif method not in ("GET", "HEAD"):
                raise Answer(405, Phrase("This address takes only GET and POST."))
            if session.user is None and path[:1] != ["login"]:
                if method == "POST":
                    raise Answer(403, Phrase("Sign in first."))
                raise Answer(303, location="/login")
            yield from _route(ctx, method, path)
        except Answer as answer:
            yield self._answer(ctx, answer)
        except RequestRefused as refused:
            yield self._answer(ctx, Answer(
                409, refused.text or Phrase("The node refused: {reason}", reason=str(refused))))

    def _check_post(self, request: Any, session: Session) -> None:
        token = request_arg(request, "csrf") or (
            request.getHeader(b"x-csrf-token") or b"").decode("ascii", "replace")
        if not token and (request.getHeader(b"content-type") or b"").startswith(b"multipart/"):
            field = multipart_fields(request).get("csrf")
            token = field if isinstance(field, str) else ""
        if not session.csrf_matches(token or None):
            raise Answer(403, Phrase("The form had expired or did not come from this page; "
                                     "open the page again and repeat."), audit="csrf")

    def _answer(self, ctx: PageContext, answer: Answer) -> Deferred:
        request, lang = ctx.request, ctx.lang
        if answer.location is not None:
            request.setResponseCode(answer.status)
            request.setHeader(b"location", answer.location.encode("utf-8"))
            set_security_headers(request, HTML, remote=self.remote)
            request.finish()
            return Deferred.fromCoroutine(_done())
        d = (self.rt.audit("web-refused", user=ctx.user, why=answer.audit,
                           path=request.path.decode("utf-8", "replace")[:200],
                           address=ctx.address())
             if answer.audit else Deferred.fromCoroutine(_done()))
        request.setResponseCode(answer.status)
        message = answer.text.in_language(lang) if answer.text else ""
        if request.getHeader(b"x-csrf-token") is not None or request.path.endswith(b"/test"):
            ctx.write(to_json({"message": message}), b"application/json")
        else:
            ctx.page("notice.html", page="", title=translate(lang, "Not done"),
                     problem=message, back=None)
        return d


# -- routes ----------------------------------------------------------------------------------

def _route(ctx: PageContext, method: str,
           path: list[str]) -> Generator[Deferred[Any], Any, None]:
    """The route table: each method and path to its page, behind the role it needs."""
    get = method in ("GET", "HEAD")
    post = method == "POST"
    head = path[0] if path else ""
    if get and not path:
        yield from overview_pages.overview(ctx)
    elif get and path == ["live.json"]:
        yield from overview_pages.live(ctx)
    elif get and path == ["documents"]:
        yield from documents_pages.documents(ctx)
    elif get and head == "documents" and len(path) == 2:
        yield from documents_pages.document(ctx, path[1])
    elif post and head == "documents" and len(path) == 3:
        ctx.need("clerk")
        yield from documents_pages.document_action(ctx, path[1], path[2])
    elif get and path == ["send"]:
        ctx.need("clerk")
        documents_pages.send_form(ctx)
    elif post and path == ["send", "message"]:
        ctx.need("clerk")
        yield from documents_pages.send_message(ctx)
    elif post and path == ["send", "document"]:
        ctx.need("clerk")
        yield from documents_pages.send_document(ctx)
    elif get and path == ["peers"]:
        yield from admin_pages.peers(ctx)
    elif post and head == "peers" and len(path) == 3 and path[2] == "test":
        ctx.need("admin")
        yield from admin_pages.connection_test(ctx, path[1])
    elif get and path == ["audit"]:
        yield from admin_pages.audit(ctx)
    elif get and head == "audit" and len(path) == 2 and path[1] in ("export.csv",
                                                                      "export.json"):
        ctx.need("admin")
        yield from admin_pages.audit_export(ctx, path[1])
    elif get and path == ["deadlines"]:
        yield from overview_pages.deadlines(ctx)
    elif get and path == ["petitions"]:
        yield from overview_pages.petitions(ctx)
    elif get and path == ["report"]:
        yield from report_pages.report(ctx)
    elif get and head == "report" and len(path) == 2:
        yield from report_pages.report_file(ctx, path[1])
    elif get and len(path) == 1 and head in {slot["path"] for slot in SLOTS}:
        slot = next(s for s in SLOTS if s["path"] == head)
        ctx.page("slot.html", page=head, title=translate(ctx.lang, slot["title"]))
    elif get and path == ["login"]:
        session_pages.login_form(ctx)
    elif post and path == ["login"]:
        yield from session_pages.login(ctx)
    elif post and path == ["logout"]:
        yield from session_pages.logout(ctx)
    elif post and path == ["language"]:
        session_pages.choose_language(ctx)
    else:
        raise Answer(404, Phrase("There is no such page."))


async def _done() -> None:
    return None
