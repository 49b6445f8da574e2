"""Remote access to the web pages: an HTTPS listener, off unless ``[web] remote_listen`` is set.

Only over TLS (the configured PEM certificate and key, TLS 1.2 at least) and only with an
account: every session starts signed out (web/sessions.py). The Host header must be one of
``[web] remote_hosts`` when that list is set (a rebinding name is refused). The status API's
JSON stays on the loopback listener: this one serves the pages only.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet import ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from lienthong.config.schema import parse_address
from lienthong.node.status.api import host_name
from lienthong.node.web.site import WebService

log = Logger(namespace="lienthong.web")


class _Refused(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"this address does not serve the lienthong pages under that name\n"


class RemoteSite(Site):
    def __init__(self, resource: Resource, *, hosts: tuple[str, ...]) -> None:
        super().__init__(resource)
        self.hosts = frozenset(hosts)
        self.displayTracebacks = False
        self.noisy = False

    def getResourceFor(self, request: Any) -> Resource:  # noqa: N802
        if self.hosts and host_name(request.getHeader(b"host")) not in self.hosts:
            return _Refused()
        return super().getResourceFor(request)  # a leaf: it routes the whole path itself

    def log(self, request: Any) -> None:
        return None  # logins and actions are in the audit log


class RemoteListener:
    def __init__(self, web: WebService) -> None:
        self.web = web
        self.port: IListeningPort | None = None
        self.address: str | None = None

    def start(self) -> None:
        config = self.web.rt.config.web
        if not config.remote_listen or config.certificate is None or config.private_key is None:
            return
        host, port = parse_address(config.remote_listen, where="web.remote_listen")
        try:
            pem = config.certificate.read_bytes() + b"\n" + config.private_key.read_bytes()
            certificate = ssl.PrivateCertificate.loadPEM(pem)
        except (OSError, ValueError, ssl.SSL.Error) as exc:
            log.error("remote web access not started: cannot read the certificate or key: "
                      "{error}", error=str(exc))
            return
        options = ssl.CertificateOptions(
            privateKey=certificate.privateKey.original,
            certificate=certificate.original,
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
        site = RemoteSite(self.web.pages(remote=True), hosts=config.remote_hosts)
        try:
            self.port = self.web.rt.reactor.listenSSL(port, site, options, interface=host)
        except CannotListenError as exc:
            log.error("remote web access not started: cannot listen on {listen}: {error}",
                      listen=config.remote_listen, error=str(exc))
            return
        bound = self.port.getHost()
        self.address = f"{host}:{getattr(bound, 'port', port)}"
        log.info("web pages for remote access on https://{address}/", address=self.address)

    @inlineCallbacks
    def stop(self) -> Generator[Deferred[Any], Any, None]:
        if self.port is not None:
            port, self.port = self.port, None
            stopped = port.stopListening()
            if stopped is not None:
                yield stopped
