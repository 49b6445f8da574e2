"""The web pages as ``twisted.web`` resources: routes, sessions, CSRF, roles, the clerk's actions.

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

The clerk's actions take the node's own paths: marking and recalling are
``control.asking`` (what ``lienthong mark``/``recall`` call), a message is
``outbox.drop.write_message`` (``lienthong message``), an upload is ``outbox.drop.drop_upload``
(written in ``tmp/``, fsynced, renamed into ``outbox/<peer>/`` with its sidecar): from there
the outbox pipeline does the rest, refusals, receipts and audit unchanged. Every login and
action is audited (``web-login``, ``web-action``, ``web-refused``) with the user's name.

The yearly report (``/report``) is ``lienthong report``'s: the same figures
(node/report/figures.py, read on the status thread) and the same words, its body rendered
and its charts drawn on the runtime's worker (``rt.io``); its stylesheet is served as
``/static/report.css`` so that the page keeps the strict CSP.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Generator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from lienthong.node.control.asking import ask_recall, ask_status
from lienthong.node.control.requests import RequestRefused
from lienthong.node.core.errors import NodeError
from lienthong.node.core.names import safe_file_name
from lienthong.node.documents.metadata import MAX_MESSAGE_BYTES, document_meta
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.programme_items import VIETNAM
from lienthong.node.documents.vocabulary import (
    CONFIDENTIALITY_NAMES,
    STATUS_NAMES,
    URGENCY_NAMES,
)
from lienthong.node.language.catalog import checked_language, negotiate, translate
from lienthong.node.language.names import name_of
from lienthong.node.language.text import Phrase, _
from lienthong.node.outbox.drop import drop_upload, write_message
from lienthong.node.report.figures import ReportError
from lienthong.node.report.render import STYLESHEET, pdf_available, pdf_bytes, render_body
from lienthong.node.report.render import render_html as render_report
from lienthong.node.status.api import StatusService, to_json
from lienthong.node.status.gather import own_card
from lienthong.node.web import views
from lienthong.node.web.accounts import Account, check_password
from lienthong.node.web.rendering import render
from lienthong.node.web.sessions import COOKIE, LoginThrottle, Session, Sessions

log = Logger(namespace="lienthong.web")

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"app.js": b"text/javascript; charset=utf-8",
                "style.css": b"text/css; charset=utf-8",
                "report.css": b"text/css; charset=utf-8"}
#: Where each static asset is: the page's own, and the yearly report's style (node/report).
STATIC_FILES = {"app.js": STATIC / "app.js", "style.css": STATIC / "style.css",
                "report.css": STYLESHEET}
HTML = b"text/html; charset=utf-8"
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
LANGUAGE_COOKIE = b"lienthong_language"
#: Largest document the upload form takes (a larger one goes through the outbox folder).
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: Pages other issues fill in: (path, title msgid).
SLOTS = ({"path": "petitions", "title": _("Petitions")},)
#: How many years the report page offers: this year (so far) and the years before it.
REPORT_YEARS = 6
_REPORT_FILE = re.compile(r"(\d{4})\.(html|pdf)")


class ConnectionTester(Protocol):
    """What the peers page's button asks of the running node (app's ``Node``)."""

    def test_connection(self, peer_name: str) -> Deferred: ...


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


class _Answer(NodeError):
    """Ends a request early with a status code and a page (or a redirect)."""

    code = "web-request-refused"

    def __init__(self, code: int, text: Phrase | None = None, *, location: str | None = None,
                 audit: str | None = None) -> None:
        super().__init__(str(text) if text else location)
        self.status = code
        self.text = text
        self.location = location
        self.audit = audit


def _arg(request: Any, name: str) -> str:
    values = request.args.get(name.encode(), [])
    return values[0].decode("utf-8", "replace") if values else ""


def _args(request: Any) -> dict[str, str]:
    return {key.decode("utf-8", "replace"): values[0].decode("utf-8", "replace")
            for key, values in request.args.items() if values}


class WebPages(Resource):
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

    def _headers(self, request: Any, content_type: bytes) -> None:
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-security-policy", CSP)
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"x-frame-options", b"DENY")
        if self.remote:
            request.setHeader(b"strict-transport-security", b"max-age=31536000")

    def _session(self, request: Any) -> Session:
        cookie = request.getCookie(COOKIE)
        session = self.web.sessions.find(cookie.decode("ascii", "replace") if cookie else None,
                                         remote=self.remote)
        if session is None:
            session = self.web.sessions.start(remote=self.remote)
            self._set_cookie(request, session)
        return session

    def _set_cookie(self, request: Any, session: Session) -> None:
        request.addCookie(COOKIE, session.id.encode("ascii"), path=b"/", httpOnly=True,
                          sameSite="strict", secure=self.remote)

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

    @inlineCallbacks
    def _respond(self, request: Any) -> Generator[Deferred[Any], Any, None]:
        path = [p.decode("utf-8", "replace") for p in request.postpath if p]
        method = request.method.decode("ascii", "replace")
        if path[:1] == ["static"] and len(path) == 2 and path[1] in STATIC_TYPES:
            self._headers(request, STATIC_TYPES[path[1]])
            request.setHeader(b"cache-control", b"max-age=300")
            request.write(self.web.static[path[1]])
            request.finish()
            return
        if path == ["favicon.ico"]:  # browsers ask for it; there is none
            request.setResponseCode(204)
            self._write(request, b"", b"image/x-icon")
            return
        session = self._session(request)
        lang = self._language(request)
        try:
            if method == "POST":
                self._check_post(request, session)
            elif method not in ("GET", "HEAD"):
                raise _Answer(405, Phrase("This address takes only GET and POST."))
            if session.user is None and path[:1] != ["login"]:
                if method == "POST":
                    raise _Answer(403, Phrase("Sign in first."))
                raise _Answer(303, location="/login")
            yield from self._route(request, session, lang, method, path)
        except _Answer as answer:
            yield self._answer(request, session, lang, answer)
        except RequestRefused as refused:
            yield self._answer(request, session, lang, _Answer(
                409, refused.text or Phrase("The node refused: {reason}", reason=str(refused))))

    def _check_post(self, request: Any, session: Session) -> None:
        token = _arg(request, "csrf") or (request.getHeader(b"x-csrf-token") or b"").decode(
            "ascii", "replace")
        if not token and (request.getHeader(b"content-type") or b"").startswith(b"multipart/"):
            field = _multipart(request).get("csrf")
            token = field if isinstance(field, str) else ""
        if not session.csrf_matches(token or None):
            raise _Answer(403, Phrase("The form had expired or did not come from this page; "
                                    "open the page again and repeat."), audit="csrf")

    def _need(self, session: Session, role: str) -> None:
        if not session.may(role):
            raise _Answer(403, Phrase("Your role may not do this; ask the administrator."),
                          audit="role")

    def _answer(self, request: Any, session: Session, lang: str, answer: _Answer) -> Deferred:
        if answer.location is not None:
            request.setResponseCode(answer.status)
            request.setHeader(b"location", answer.location.encode("utf-8"))
            self._headers(request, HTML)
            request.finish()
            return Deferred.fromCoroutine(_done())
        d = (self.rt.audit("web-refused", user=session.user or "-", why=answer.audit,
                           path=request.path.decode("utf-8", "replace")[:200],
                           address=self._address(request))
             if answer.audit else Deferred.fromCoroutine(_done()))
        request.setResponseCode(answer.status)
        message = answer.text.in_language(lang) if answer.text else ""
        if request.getHeader(b"x-csrf-token") is not None or request.path.endswith(b"/test"):
            self._write(request, to_json({"message": message}), b"application/json")
        else:
            self._page(request, session, lang, "notice.html", page="", title=translate(
                lang, "Not done"), problem=message, back=None)
        return d

    def _address(self, request: Any) -> str:
        peer = request.getClientAddress()
        return str(getattr(peer, "host", "?"))

    def _write(self, request: Any, body: bytes, content_type: bytes) -> None:
        self._headers(request, content_type)
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _page(self, request: Any, session: Session, lang: str, template: str,
              **context: Any) -> None:
        config = self.rt.config
        notice, session.flash = session.flash, None
        body = render(template, lang, office=config.node.display_name, csrf=session.csrf,
                      user=session.user, remote=self.remote,
                      role_name=translate(lang, _ROLE_NAMES.get(session.role or "", "")),
                      may_act=session.may("clerk"), may_admin=session.may("admin"),
                      slots=[slot for slot in SLOTS if slot["path"] != "petitions"
                             or self._may_see_petitions(session)],
                      notice=context.pop("notice", None) or notice, **context)
        self._write(request, body, HTML)

    def _done_with(self, session: Session, lang: str, text: Phrase, location: str) -> _Answer:
        session.flash = text.in_language(lang)
        return _Answer(303, location=location)

    # -- routes ----------------------------------------------------------------------------

    def _route(self, request: Any, session: Session, lang: str, method: str,
               path: list[str]) -> Generator[Deferred[Any], Any, None]:
        get = method in ("GET", "HEAD")
        head = path[0] if path else ""
        if get and not path:
            yield from self._overview(request, session, lang)
        elif get and path == ["live.json"]:
            yield from self._live(request)
        elif get and path == ["documents"]:
            yield from self._documents(request, session, lang)
        elif get and head == "documents" and len(path) == 2:
            yield from self._document(request, session, lang, path[1])
        elif method == "POST" and head == "documents" and len(path) == 3:
            self._need(session, "clerk")
            yield from self._document_action(request, session, lang, path[1], path[2])
        elif get and path == ["send"]:
            self._need(session, "clerk")
            self._send_form(request, session, lang)
        elif method == "POST" and path == ["send", "message"]:
            self._need(session, "clerk")
            yield from self._send_message(request, session, lang)
        elif method == "POST" and path == ["send", "document"]:
            self._need(session, "clerk")
            yield from self._send_document(request, session, lang)
        elif get and path == ["peers"]:
            yield from self._peers(request, session, lang)
        elif method == "POST" and head == "peers" and len(path) == 3 and path[2] == "test":
            self._need(session, "admin")
            yield from self._test(request, session, lang, path[1])
        elif get and path == ["audit"]:
            yield from self._audit(request, session, lang)
        elif get and head == "audit" and len(path) == 2 and path[1] in ("export.csv",
                                                                          "export.json"):
            self._need(session, "admin")
            yield from self._audit_export(request, session, path[1])
        elif get and path == ["deadlines"]:
            yield from self._deadlines(request, session, lang)
        elif get and path == ["petitions"]:
            yield from self._petitions(request, session, lang)
        elif get and path == ["report"]:
            yield from self._report(request, session, lang)
        elif get and head == "report" and len(path) == 2:
            yield from self._report_file(request, session, lang, path[1])
        elif get and len(path) == 1 and head in {slot["path"] for slot in SLOTS}:
            slot = next(s for s in SLOTS if s["path"] == head)
            self._page(request, session, lang, "slot.html", page=head,
                       title=translate(lang, slot["title"]))
        elif get and path == ["login"]:
            self._page(request, session, lang, "login.html", page="login",
                       title=translate(lang, "Sign in"))
        elif method == "POST" and path == ["login"]:
            yield from self._login(request, session, lang)
        elif method == "POST" and path == ["logout"]:
            self.web.sessions.end(session)
            yield self.rt.audit("web-logout", user=session.user or "-")
            raise _Answer(303, location="/login" if self.remote else "/")
        elif method == "POST" and path == ["language"]:
            chosen = checked_language(_arg(request, "to"))
            request.addCookie(LANGUAGE_COOKIE, chosen.encode("ascii"), path=b"/",
                              httpOnly=True, sameSite="strict", secure=self.remote)
            raise _Answer(303, location="/")
        else:
            raise _Answer(404, Phrase("There is no such page."))

    def _overview(self, request: Any, session: Session,
                  lang: str) -> Generator[Deferred[Any], Any, None]:
        snap = yield self.web.status.snapshot()
        self._page(request, session, lang, "overview.html", page="overview",
                   title=translate(lang, "Overview"), snap=snap)

    def _live(self, request: Any) -> Generator[Deferred[Any], Any, None]:
        lang = self._language(request)
        snap = yield self.web.status.snapshot()
        moving = [{"label": f"{t['peer_name']}: {t.get('name') or t['message_id']}",
                   "size": t.get("size") or 1, "done": t.get("offset") or 0}
                  for t in snap["transfers"]]
        moving += [{"label": f"{t['peer_name']}: {t['message_id']}", "size": 1, "done": 0}
                   for t in snap["receiving"]]
        self._write(request, to_json({
            "health": name_of("state", snap["health"], lang),
            "peers": [{"name": p["name"], "waiting": p["queue"]["count"],
                       "link": translate(lang, "Connected") if p["connected"]
                       else translate(lang, "Not connected")} for p in snap["peers"]],
            "transfers": moving}), b"application/json; charset=utf-8")

    def _documents(self, request: Any, session: Session,
                   lang: str) -> Generator[Deferred[Any], Any, None]:
        query = views.DocumentQuery.from_args(_args(request))
        rows = yield self.web.status.reads.run(views.documents, query)
        offices = sorted(p.name for p in self.rt.directory.peers)
        self._page(request, session, lang, "documents.html", page="documents",
                   title=translate(lang, "Documents"), query=query, rows=rows, offices=offices,
                   types=(*self.rt.config.documents.types, "message"))

    def _document(self, request: Any, session: Session, lang: str,
                  message_id: str) -> Generator[Deferred[Any], Any, None]:
        doc = yield self.web.status.reads.run(views.document, message_id.lower()[:32])
        if doc is None:
            raise _Answer(404, Phrase("This office neither sent nor received that document."))
        title = doc["meta"].get("number") or doc["name"]
        self._page(request, session, lang, "document.html", page="documents", title=title,
                   doc=doc, statuses=list(STATUS_NAMES))

    def _document_action(self, request: Any, session: Session, lang: str, message_id: str,
                         action: str) -> Generator[Deferred[Any], Any, None]:
        mid = message_id.lower()[:32]
        rt = self.rt
        if action == "mark":
            asked = yield rt.db(ask_status, rt.store, mid, _arg(request, "status"),
                                note=_arg(request, "note"),
                                register_number=_arg(request, "register_number") or None,
                                now=rt.now_text())
            text = Phrase("{name} is marked {status}; the node signs it and tells the sender.",
                        name=asked.name, status=name_of("status", asked.status, lang))
        elif action == "recall":
            asked = yield rt.db(ask_recall, rt.store, mid, reason=_arg(request, "reason"),
                                replaced_by=None, now=rt.now_text())
            text = Phrase("{name} is being recalled from {count} office(s).", name=asked.name,
                        count=asked.recipients)
        else:
            raise _Answer(404, Phrase("There is no such page."))
        yield rt.audit("web-action", message_id=mid, user=session.user or "-", action=action,
                       request=asked.request.id)
        raise self._done_with(session, lang, text, f"/documents/{mid}")

    def _targets(self) -> list[str]:
        peers = [p.name for p in self.rt.directory.peers if p.state == "trusted"]
        return sorted(peers) + sorted(self.rt.config.groups)

    def _send_form(self, request: Any, session: Session, lang: str) -> None:
        self._page(request, session, lang, "send.html", page="send",
                   title=translate(lang, "Send"), targets=self._targets(),
                   types=self.rt.config.documents.types, urgencies=list(URGENCY_NAMES),
                   classes=list(CONFIDENTIALITY_NAMES))

    def _target(self, chosen: str) -> str:
        if chosen not in self._targets():
            raise _Answer(400, Phrase("{target} is not an office or group this node sends to.",
                                    target=chosen))
        return chosen

    def _send_message(self, request: Any, session: Session,
                      lang: str) -> Generator[Deferred[Any], Any, None]:
        target = self._target(_arg(request, "to"))
        urgency = _arg(request, "urgency") or "normal"
        if urgency not in URGENCY_NAMES:
            raise _Answer(400, Phrase("The urgency {urgency} is not known.", urgency=urgency))
        text = _arg(request, "text")
        if not text.strip():
            raise _Answer(400, Phrase("The message is empty; write its text first."))
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise _Answer(400, Phrase("A message is at most {kib} KiB; send a longer text as a "
                                      "document.", kib=MAX_MESSAGE_BYTES // 1024))
        try:
            placed = yield self.rt.io(write_message, self.rt.config, [target],
                                      text, now=self.rt.now(), urgency=urgency)
        except ValueError as exc:
            raise _Answer(400, Phrase("The message was not sent: {reason}",
                                    reason=str(exc))) from None
        yield self.rt.audit("web-action", user=session.user or "-", action="message",
                            target=target, file=placed.name)
        raise self._done_with(session, lang, Phrase("The message to {target} is queued.",
                                                  target=target), "/send")

    def _send_document(self, request: Any, session: Session,
                       lang: str) -> Generator[Deferred[Any], Any, None]:
        form = _multipart(request)
        upload = form.get("file")
        if not isinstance(upload, tuple) or not upload[1]:
            raise _Answer(400, Phrase("Choose the file to send."))
        filename, data = upload
        target = self._target(str(form.get("to", "")))
        fields = {key: str(form[key]).strip() for key in (
            "type", "number", "urgency", "confidentiality", "subject", "signer", "due")
            if str(form.get(key, "")).strip()}
        documents = self.rt.config.documents
        try:
            document_meta(fields, types=documents.types, notation=documents.number_notation,
                          lenient_numbers=documents.lenient_numbers)
        except MetadataError as exc:
            raise _Answer(400, Phrase("The document was not sent: {reason}",
                                      reason=exc.reason_text)) from None
        name = safe_file_name(filename or "document")
        placed = yield self.rt.io(drop_upload, self.rt.config, [target], name, data, fields)
        yield self.rt.audit("web-action", user=session.user or "-", action="upload",
                            target=target, file=placed.name, bytes=len(data))
        raise self._done_with(session, lang, Phrase(
            "{name} is in the outbox for {target}; its receipt will show on the documents "
            "page.", name=placed.name, target=target), "/send")

    def _peers(self, request: Any, session: Session,
               lang: str) -> Generator[Deferred[Any], Any, None]:
        rows = yield self.web.status.reads.run(views.peers, self.rt.node_id)
        self._page(request, session, lang, "peers.html", page="peers",
                   title=translate(lang, "Offices"), peers=rows)

    def _test(self, request: Any, session: Session, lang: str,
              name: str) -> Generator[Deferred[Any], Any, None]:
        yield self.rt.audit("web-action", user=session.user or "-", action="test-connection",
                            target=name[:64])
        text = yield self.web.tester.test_connection(name)
        self._write(request, to_json({"message": text.in_language(lang)}),
                    b"application/json; charset=utf-8")

    def _audit(self, request: Any, session: Session,
               lang: str) -> Generator[Deferred[Any], Any, None]:
        query = views.AuditQuery.from_args(_args(request))
        card = own_card(self.rt.config)
        verify = yield self.web.status.reads.run(views.audit_verify, self.rt.config.home, card)
        entries = yield self.web.status.reads.run(views.audit_entries, query)
        self._page(request, session, lang, "audit.html", page="audit",
                   title=translate(lang, "Audit"), verify=verify, entries=entries, query=query,
                   query_string=urlencode({k: v for k, v in (
                       ("kind", query.kind), ("peer", query.peer),
                       ("message_id", query.message_id)) if v}))

    def _audit_export(self, request: Any, session: Session,
                      name: str) -> Generator[Deferred[Any], Any, None]:
        query = views.AuditQuery.from_args(_args(request), limit=100000)
        entries = yield self.web.status.reads.run(views.audit_entries, query)
        yield self.rt.audit("web-action", user=session.user or "-", action="audit-export",
                            rows=len(entries))
        request.setHeader(b"content-disposition",
                          f"attachment; filename=audit.{name.split('.')[1]}".encode("ascii"))
        if name.endswith(".json"):
            self._write(request, to_json(entries), b"application/json; charset=utf-8")
            return
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["seq", "time", "kind", "peer", "message_id", "digest", "detail",
                         "hash"])
        for e in entries:
            # A cell a spreadsheet would run as a formula is written as text.
            writer.writerow([_cell(e[k]) for k in ("seq", "time", "kind", "peer", "message_id",
                                                    "digest", "detail_text", "hash")])
        self._write(request, out.getvalue().encode("utf-8"), b"text/csv; charset=utf-8")

    def _deadlines(self, request: Any, session: Session,
                   lang: str) -> Generator[Deferred[Any], Any, None]:
        rows = yield self.web.status.reads.run(
            views.deadlines, self.rt.config.coordination, self.rt.config.node.name,
            self.rt.now())
        self._page(request, session, lang, "deadlines.html", page="deadlines",
                   title=translate(lang, "Deadlines"), rows=rows)

    def _may_see_petitions(self, session: Session) -> bool:
        """Petition staff only: a signed-in account named in ``[petitions] web_users``; never
        the loopback session, which any user of this machine can open (docs/petitions.md)."""
        return (session.user is not None and session.user != "local"
                and session.user in self.rt.config.petitions.web_users)

    def _petitions(self, request: Any, session: Session,
                   lang: str) -> Generator[Deferred[Any], Any, None]:
        if not self._may_see_petitions(session):
            raise _Answer(403, Phrase("Only the petition staff may see citizens' petitions; "
                                      "sign in with a petition staff account."),
                          audit="petition-staff")
        rows = yield self.web.status.reads.run(views.petitions, self.rt.config, self.rt.now())
        self._page(request, session, lang, "petitions.html", page="petitions",
                   title=translate(lang, "Petitions"), rows=rows)

    # -- the yearly report -------------------------------------------------------------------

    def _this_year(self) -> int:
        return dt.datetime.fromtimestamp(self.rt.now(), VIETNAM).year

    def _report_figures(self, year: int) -> Deferred:
        """The year's figures on the status thread (read-only, never behind the node's
        writes): ``lienthong report``'s code, this office's keys to open the sealed headers."""
        rt = self.rt
        return self.web.status.reads.run(views.report_figures, year, rt.config.node.name,
                                         rt.node_id, rt.config.coordination, rt.now(), rt.keys)

    def _report(self, request: Any, session: Session,
                lang: str) -> Generator[Deferred[Any], Any, None]:
        this_year = self._this_year()
        wanted = _arg(request, "year").strip()
        year = _report_year(wanted) if wanted else this_year - 1
        years = sorted({*range(this_year, this_year - REPORT_YEARS, -1), year}, reverse=True)
        yield self.rt.audit("web-action", user=session.user or "-", action="report",
                            year=year, format="page")
        pdf = yield self.rt.io(pdf_available)
        body, problem = None, None
        try:
            figures = yield self._report_figures(year)
        except ReportError:
            problem = Phrase("This office's records hold no document sent or received in "
                             "{year}: there is nothing to report for {year}.", year=year)
        else:
            body = yield self.rt.io(render_body, figures, lang=lang)
        self._page(request, session, lang, "report.html", page="report",
                   title=translate(lang, "Cooperation report for {year}").format(year=year),
                   year=year, this_year=this_year, years=years, pdf=pdf, body=body,
                   problem=problem.in_language(lang) if problem else None)

    def _report_file(self, request: Any, session: Session, lang: str,
                     name: str) -> Generator[Deferred[Any], Any, None]:
        found = _REPORT_FILE.fullmatch(name)
        if found is None:
            raise _Answer(404, Phrase("There is no such page."))
        year, kind = _report_year(found.group(1)), found.group(2)
        if kind == "pdf":
            ready = yield self.rt.io(pdf_available)
            if not ready:
                raise _Answer(404, Phrase(
                    "This computer cannot print the report to PDF: it needs Chromium and "
                    "Playwright (apt install chromium; pip install 'lienthong[pdf]'). Download "
                    "the HTML report and print it to PDF from any browser."))
        yield self.rt.audit("web-action", user=session.user or "-", action="report",
                            year=year, format=kind)
        try:
            figures = yield self._report_figures(year)
        except ReportError:
            raise _Answer(404, Phrase("This office's records hold no document sent or received "
                                      "in {year}: there is nothing to report for {year}.",
                                      year=year)) from None
        filename = f"lienthong-report-{year}-{lang}.{kind}"
        request.setHeader(b"content-disposition",
                          f"attachment; filename={filename}".encode("ascii"))
        if kind == "html":
            page = yield self.rt.io(render_report, figures, lang=lang)
            self._write(request, page.encode("utf-8"), HTML)
            return
        try:
            data = yield self.rt.io(pdf_bytes, figures, lang=lang,
                                    workdir=self.rt.config.home / "tmp")
        except ReportError as exc:
            raise _Answer(503, Phrase("The PDF could not be printed: {reason}",
                                      reason=str(exc))) from None
        self._write(request, data, b"application/pdf")

    def _login(self, request: Any, session: Session,
               lang: str) -> Generator[Deferred[Any], Any, None]:
        user = _arg(request, "user").strip().lower()[:64]
        address = self._address(request)
        throttle = self.web.throttle
        if throttle.blocked(address, user):
            yield self.rt.audit("web-login", user=user, outcome="throttled", address=address)
            raise _Answer(429, Phrase("Too many failed sign-ins; wait 15 minutes and try again."))
        account: Account | None = yield self.rt.io(check_password, self.rt.config.home, user,
                                                   _arg(request, "password"))
        if account is None:
            throttle.failed(address, user)
            yield self.rt.audit("web-login", user=user, outcome="failed", address=address)
            raise _Answer(401, Phrase("The user name or the password is wrong."))
        throttle.succeeded(address, user)
        fresh = self.web.sessions.log_in(session, account.user, account.role)
        self._set_cookie(request, fresh)
        yield self.rt.audit("web-login", user=user, outcome="ok", role=account.role,
                            address=address)
        raise _Answer(303, location="/")


def _report_year(text: str) -> int:
    """The report's year from the page's address, or a 400 naming the value."""
    if not (text.isascii() and text.isdigit() and 2000 <= int(text) <= 2200):
        raise _Answer(400, Phrase("{year} is not a year the report can be made for; choose a "
                                  "year between 2000 and 2200.", year=text[:20]))
    return int(text)


_ROLE_NAMES = {"viewer": _("viewer"), "clerk": _("clerk"), "admin": _("administrator")}


async def _done() -> None:
    return None


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _multipart(request: Any) -> dict[str, str | tuple[str, bytes]]:
    """The fields of a ``multipart/form-data`` body; a file as (its name, its bytes)."""
    length = int(request.getHeader(b"content-length") or 0)
    if length > MAX_UPLOAD_BYTES + 65536:
        raise _Answer(413, Phrase("The file is larger than {mib} MiB; put it into the outbox "
                                "folder instead.", mib=MAX_UPLOAD_BYTES // (1024 * 1024)))
    content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
    if not content_type.startswith("multipart/form-data"):
        raise _Answer(400, Phrase("The form was not sent as a file upload."))
    request.content.seek(0)
    body = request.content.read()
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, str | tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        fields[name] = ((filename, data) if filename is not None
                        else data.decode("utf-8", "replace"))
    return fields
