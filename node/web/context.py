"""One web request as the page modules see it: ``PageContext`` and ``Answer``.

``site.WebPages`` frames each request (headers, session, language, CSRF) and hands the page
functions (``documents_pages``, ``admin_pages``, ...) a ``PageContext``: the request, its
session and language, and the parts of the running node the pages use. A page writes its
answer through the context (``page``, ``write``) or ends the request early by raising
``Answer`` (a refusal with its page, or a redirect), which the frame turns into the response
and, for a refusal it names, a ``web-refused`` audit event.
"""
from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from lienthong.node.core.errors import NodeError
from lienthong.node.language.catalog import translate
from lienthong.node.language.text import Phrase, _
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.status.api import StatusService
from lienthong.node.web.rendering import render
from lienthong.node.web.sessions import COOKIE, LoginThrottle, Session, Sessions

HTML = b"text/html; charset=utf-8"
LANGUAGE_COOKIE = b"lienthong_language"
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: Largest document the upload form takes (a larger one goes through the outbox folder).
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: Pages other issues fill in: (path, title msgid).
SLOTS = ({"path": "petitions", "title": _("Petitions")},)
ROLE_NAMES = {"viewer": _("viewer"), "clerk": _("clerk"), "admin": _("administrator")}


class ConnectionTester(Protocol):
    """What the peers page's button asks of the running node (app's ``Node``)."""

    def test_connection(self, peer_name: str) -> Deferred: ...


class Answer(NodeError):
    """Ends a request early with a status code and a page (or a redirect)."""

    code = "web-request-refused"

    def __init__(self, code: int, text: Phrase | None = None, *, location: str | None = None,
                 audit: str | None = None) -> None:
        super().__init__(str(text) if text else location)
        self.status = code
        self.text = text
        self.location = location
        self.audit = audit


def set_security_headers(request: Any, content_type: bytes, *, remote: bool) -> None:
    """Every answer's headers: its type, the strict CSP, no caching, no framing."""
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"x-frame-options", b"DENY")
    if remote:
        request.setHeader(b"strict-transport-security", b"max-age=31536000")


def write_answer(request: Any, body: bytes, content_type: bytes, *, remote: bool) -> None:
    """The whole answer with its headers (no body for HEAD), and the request finished."""
    set_security_headers(request, content_type, remote=remote)
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def set_session_cookie(request: Any, session: Session, *, remote: bool) -> None:
    """The session's cookie: HTTP only, same site, and over TLS only on the remote listener."""
    request.addCookie(COOKIE, session.id.encode("ascii"), path=b"/", httpOnly=True,
                      sameSite="strict", secure=remote)


def request_arg(request: Any, name: str) -> str:
    """One query or form field, decoded; ``""`` when absent."""
    values = request.args.get(name.encode(), [])
    return values[0].decode("utf-8", "replace") if values else ""


def multipart_fields(request: Any) -> dict[str, str | tuple[str, bytes]]:
    """The fields of a ``multipart/form-data`` body; a file as (its name, its bytes)."""
    length = int(request.getHeader(b"content-length") or 0)
    if length > MAX_UPLOAD_BYTES + 65536:
        raise Answer(413, Phrase("The file is larger than {mib} MiB; put it into the outbox "
                                 "folder instead.", mib=MAX_UPLOAD_BYTES // (1024 * 1024)))
    content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
    if not content_type.startswith("multipart/form-data"):
        raise Answer(400, Phrase("The form was not sent as a file upload."))
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


@dataclass
class PageContext:
    """One request on one listener, and the parts of the node its page may use."""

    request: Any
    session: Session
    lang: str
    remote: bool
    rt: NodeRuntime
    status: StatusService
    tester: ConnectionTester
    sessions: Sessions
    throttle: LoginThrottle

    @property
    def user(self) -> str:
        """The session's user for the audit log (``-`` before signing in)."""
        return self.session.user or "-"

    def arg(self, name: str) -> str:
        return request_arg(self.request, name)

    def args(self) -> dict[str, str]:
        """Every query or form field, the first value of each."""
        return {key.decode("utf-8", "replace"): values[0].decode("utf-8", "replace")
                for key, values in self.request.args.items() if values}

    def address(self) -> str:
        """The client's address, for the audit log and the login throttle."""
        peer = self.request.getClientAddress()
        return str(getattr(peer, "host", "?"))

    def need(self, role: str) -> None:
        """Refuses (403, audited) unless the session's role may do what ``role`` may."""
        if not self.session.may(role):
            raise Answer(403, Phrase("Your role may not do this; ask the administrator."),
                         audit="role")

    def may_see_petitions(self) -> bool:
        """Petition staff only: a signed-in account named in ``[petitions] web_users``; never
        the loopback session, which any user of this machine can open (docs/petitions.md)."""
        session = self.session
        return (session.user is not None and session.user != "local"
                and session.user in self.rt.config.petitions.web_users)

    def set_cookie(self, session: Session) -> None:
        set_session_cookie(self.request, session, remote=self.remote)

    def write(self, body: bytes, content_type: bytes) -> None:
        write_answer(self.request, body, content_type, remote=self.remote)

    def page(self, template: str, **context: Any) -> None:
        """A page of the site: ``template`` in the frame every page shares."""
        config = self.rt.config
        session, lang = self.session, self.lang
        notice, session.flash = session.flash, None
        body = render(template, lang, office=config.node.display_name, csrf=session.csrf,
                      user=session.user, remote=self.remote,
                      role_name=translate(lang, ROLE_NAMES.get(session.role or "", "")),
                      may_act=session.may("clerk"), may_admin=session.may("admin"),
                      slots=[slot for slot in SLOTS if slot["path"] != "petitions"
                             or self.may_see_petitions()],
                      notice=context.pop("notice", None) or notice, **context)
        self.write(body, HTML)

    def done_with(self, text: Phrase, location: str) -> Answer:
        """The redirect after an action, its outcome shown once on the next page."""
        self.session.flash = text.in_language(self.lang)
        return Answer(303, location=location)
