"""The daemon's local status API: ``/status`` (JSON), ``/status/live`` and ``/metrics``.

Theory of operation
-------------------
A small ``twisted.web`` site, bound to ``[status] listen`` (loopback by default; the config
loader refuses anything else unless ``allow_remote = true``). It is read-only: GET and HEAD
only, no parameters, no state changed by any request.

* ``/status``: the whole ``lienthong.node.status.snapshot`` snapshot as JSON: the live part
  from the links on the reactor, then the disk probe and the store read on the status thread
  with its own read-only connection (``lienthong.node.status.reads``), never queued behind the
  database thread's writes, and shared by requests that arrive while it is being built;
* ``/status/live``: only what the daemon holds in memory (links, transfers in flight), which
  is what ``lienthong status`` asks for - it reads the store itself, so it works the same
  whether the daemon answers or not;
* ``/metrics``: the Prometheus text exposition (``lienthong.node.status.metrics``), built the
  same way.

The actual address is written to ``HOME/state/status.port`` so the CLI can find the daemon
when the configured port is 0 (any free port); it is removed at shutdown.

Hardening, because document names and reasons come from peers (Syncthing CVE-2022-46165) and
a browser on the same machine can be pointed at loopback (DNS rebinding): JSON only, with
``<``, ``>`` and ``&`` escaped and every non-ASCII character as ``\\uXXXX``; ``nosniff`` and a
``default-src 'none'`` CSP; and, unless remote access was allowed explicitly, a request whose
``Host`` is not a loopback name is refused with 403. No access log (a scraper every 15 s would
drown the node's log).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from lienthong.config.schema import parse_address
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.status.metrics import CONTENT_TYPE, MetricsState, render_metrics
from lienthong.node.status.probe import AccessSurvey, probe_home
from lienthong.node.status.reads import Coalesced, StatusReads
from lienthong.node.status.snapshot import build_snapshot
from lienthong.node.store.database import Store

log = Logger(namespace="lienthong.status")

PORT_FILE = Path("state") / "status.port"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
JSON_TYPE = b"application/json; charset=utf-8"


def to_json(value: Any) -> bytes:
    """JSON that is inert in any browser: ASCII only, with < > & escaped."""
    text = json.dumps(value, ensure_ascii=True, indent=1, sort_keys=True, allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            + "\n").encode("ascii")


def _headers(request: Any, content_type: bytes) -> None:
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
    request.setHeader(b"referrer-policy", b"no-referrer")


def _finish_later(request: Any, d: Deferred, content_type: bytes) -> Any:
    gone = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def write(body: bytes) -> None:
        if gone:
            return
        _headers(request, content_type)
        request.write(body)
        request.finish()

    def fail(failure: Any) -> None:
        log.failure("status request failed", failure)
        if gone:
            return
        request.setResponseCode(500)
        _headers(request, JSON_TYPE)
        request.write(to_json({"error": "the status could not be read; see the node's log"}))
        request.finish()

    d.addCallbacks(write, fail)
    return NOT_DONE_YET


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, service: StatusService) -> None:
        super().__init__()
        self.service = service


class LiveResource(_Leaf):
    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        _headers(request, JSON_TYPE)
        return to_json(self.service.live())


class MetricsResource(_Leaf):
    def render_GET(self, request: Any) -> Any:  # noqa: N802
        return _finish_later(request, self.service.metrics().addCallback(
            lambda text: text.encode("utf-8")), CONTENT_TYPE.encode("ascii"))


class StatusResource(Resource):
    def __init__(self, service: StatusService) -> None:
        super().__init__()
        self.service = service
        self.putChild(b"live", LiveResource(service))

    def getChild(self, path: bytes, request: Any) -> Resource:  # noqa: N802
        if path == b"":
            return self
        return _not_found()

    def render_GET(self, request: Any) -> Any:  # noqa: N802
        return _finish_later(request, self.service.snapshot().addCallback(to_json), JSON_TYPE)


class IndexResource(Resource):
    """``/status`` and ``/metrics``; every other address goes to ``pages`` when there are
    pages (the web interface, node/web/, mounted by the running node), else is not found."""

    def __init__(self, service: StatusService, pages: Resource | None = None) -> None:
        super().__init__()
        self.pages = pages
        self.putChild(b"status", StatusResource(service))
        self.putChild(b"metrics", MetricsResource(service))

    def getChild(self, path: bytes, request: Any) -> Resource:  # noqa: N802
        if self.pages is not None:
            # The pages are one leaf resource that routes the whole path itself.
            request.prepath.pop()
            request.postpath.insert(0, path)
            return self.pages
        if path == b"":
            return self
        return _not_found()

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        _headers(request, JSON_TYPE)
        return to_json({"lienthong": "status API", "endpoints": ["/status", "/status/live",
                                                                 "/metrics"]})


def _not_found() -> Resource:
    return _JSONError(404, "no such resource; try /status, /status/live or /metrics")


class _JSONError(Resource):
    isLeaf = True

    def __init__(self, code: int, message: str) -> None:
        super().__init__()
        self.code = code
        self.message = message

    def render(self, request: Any) -> bytes:
        request.setResponseCode(self.code)
        _headers(request, JSON_TYPE)
        return to_json({"error": self.message})


class StatusSite(Site):
    """A site that refuses non-loopback Host headers (DNS rebinding) and keeps no access log."""

    def __init__(self, resource: Resource, *, check_host: bool) -> None:
        super().__init__(resource)
        self.check_host = check_host
        self.displayTracebacks = False
        self.noisy = False

    def getResourceFor(self, request: Any) -> Resource:  # noqa: N802
        if self.check_host and host_name(request.getHeader(b"host")) not in LOOPBACK_HOSTS:
            return _JSONError(403, "the status API answers only requests addressed to a "
                                   "loopback name (127.0.0.1, localhost, [::1])")
        return super().getResourceFor(request)

    def log(self, request: Any) -> None:
        # No access log. Were one added: HTTPFactory dates its lines from reactor.seconds(),
        # which the daemon runs on the monotonic clock (node/core/clock.py), not the wall clock.
        return None


def host_name(header: bytes | str | None) -> str | None:
    """The host part of a Host header (``[::1]:80`` -> ``[::1]``, ``a:1`` -> ``a``)."""
    if header is None:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    text = text.strip().lower()
    if text.startswith("["):
        return text.split("]", 1)[0] + "]"
    return text.rsplit(":", 1)[0] if ":" in text else text


class LiveNode(Protocol):
    """The running node as the status API sees it (app's ``Node``): its runtime, and what only
    the daemon knows (links and transfers in flight)."""

    rt: NodeRuntime

    def live_status(self) -> dict[str, Any]: ...


class StatusService:
    """Serves the status API for a running ``Node``; started and stopped by the daemon.

    ``pages``: made with this service once it exists, the resource that answers every address
    other than ``/status`` and ``/metrics`` on the same listener (the web pages).
    """

    def __init__(self, node: LiveNode, *,
                 pages: Callable[[StatusService], Resource] | None = None) -> None:
        self.node = node
        self.pages = pages
        self.rt = node.rt
        self.port: IListeningPort | None = None
        self.address: str | None = None
        #: Touched only by metrics units, which all run on the status thread.
        self.metrics_state = MetricsState()
        self.reads = StatusReads(self.rt)
        self.survey = AccessSurvey(self.rt.config.home, self.rt.config.node.clerks_group)
        self._snapshots = Coalesced(lambda: self._build(self._snapshot_unit))
        self._metrics = Coalesced(lambda: self._build(self._metrics_unit))

    @property
    def port_file(self) -> Path:
        return self.rt.config.home / PORT_FILE

    def start(self) -> None:
        """Listen on ``[status] listen``; a busy port is logged, never fatal for delivery."""
        config = self.rt.config.status
        host, port = parse_address(config.listen, where="status.listen")
        if host not in LOOPBACK_HOSTS and not config.allow_remote:
            log.error("status API not started: {listen} is not loopback and allow_remote is "
                      "not set", listen=config.listen)
            return
        self.reads.start()
        pages = self.pages(self) if self.pages is not None else None
        site = StatusSite(IndexResource(self, pages), check_host=not config.allow_remote)
        try:
            self.port = self.rt.reactor.listenTCP(port, site, interface=host)
        except CannotListenError as exc:
            log.error("status API not started: cannot listen on {listen}: {error}",
                      listen=config.listen, error=str(exc))
            return
        bound = self.port.getHost()
        if not isinstance(bound, IPv4Address | IPv6Address):
            log.error("status API not started: {listen} is not a TCP address",
                      listen=config.listen)
            return
        shown = f"[{bound.host}]" if ":" in bound.host else bound.host
        self.address = f"{shown}:{bound.port}"
        try:
            _write_port_file(self.port_file, self.address)
        except OSError as exc:
            log.error("cannot write {path}: {error}", path=str(self.port_file), error=exc)
        log.info("status API on http://{address}/status and /metrics", address=self.address)
        # The home's first access survey now, on the status thread, not in the first request:
        # made while a burst is being taken, its lstat of every file waits for the GIL at each
        # call and cost that request seconds (tests/faults/test_backlog.py).
        surveyed = self.reads.run(lambda _store: self.survey.current())
        surveyed.addErrback(lambda failure: log.failure("could not survey the home", failure))

    @inlineCallbacks
    def stop(self) -> Generator[Deferred[Any], Any, None]:
        if self.port is None:
            yield self.reads.stop()
            return
        port, self.port = self.port, None
        stopped = port.stopListening()  # a Deferred, or None if it stopped at once
        if stopped is not None:
            yield stopped
        try:
            if self.port_file.read_text().strip() == self.address:
                self.port_file.unlink()
        except OSError:
            pass
        yield self.reads.stop()

    def live(self) -> dict[str, Any]:
        return self.node.live_status()

    def _node_info(self) -> dict[str, Any]:
        config = self.rt.config
        return {"name": config.node.name, "display_name": config.node.display_name,
                "node_id": self.rt.node_id, "listen": config.node.listen,
                "home": str(config.home)}

    def snapshot(self) -> Deferred:
        """The ``/status`` snapshot; requests that overlap share one build."""
        return self._snapshots()

    def metrics(self) -> Deferred:
        """The ``/metrics`` text; scrapes that overlap share one build."""
        return self._metrics()

    def _build(self, unit: Callable[..., Any]) -> Deferred:
        # The live part is read here, on the reactor thread (it is the links' memory); the
        # disk probe and the store are read on the status thread, never on this one.
        return self.reads.run(unit, self.live(), self._node_info())

    def _snapshot_unit(self, store: Store, live: dict[str, Any],
                       node: dict[str, Any]) -> dict[str, Any]:
        probe = probe_home(self.rt.config.home, self.rt.config.node.clerks_group,  # it scans
                           self.survey)
        with store.reading():
            return self._snapshot_in_view(store, live, node, probe)

    def _snapshot_in_view(self, store: Store, live: dict[str, Any], node: dict[str, Any],
                          probe: dict[str, Any]) -> dict[str, Any]:
        return build_snapshot(store, node=node, home=self.rt.config.home, now=live["now"],
                              daemon={"running": True, "note": ""}, live=live, probe=probe,
                              coordination=self.rt.config.coordination)

    def _metrics_unit(self, store: Store, live: dict[str, Any], node: dict[str, Any]) -> str:
        probe = probe_home(self.rt.config.home, self.rt.config.node.clerks_group, self.survey)
        with store.reading():
            snapshot = self._snapshot_in_view(store, live, node, probe)
            names = {peer["node_id"]: peer["name"] for peer in snapshot["peers"]}
            self.metrics_state.refresh(store, names)
        return render_metrics(snapshot, self.metrics_state)


def _write_port_file(path: Path, address: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(address + "\n", encoding="ascii")
    os.replace(tmp, path)
