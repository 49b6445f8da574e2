"""A small TCP fault proxy on loopback, put between two real nodes by the network fault tests.

Why a proxy rather than iptables or tc: it needs no privileges, it sees exactly the bytes a
node wrote (so a test can assert how many bytes were sent again after a fault), and each
connection can be given its own fault, so "the first connection is cut, the second one is
clean" is one line. TLS passes through untouched: the proxy never decrypts anything.

Each accepted connection takes the next ``Mode`` from ``plan`` (then ``default``):

* ``Pass()``                  forward both ways, propagate half-closes;
* ``Reset(after)``            forward ``after`` bytes client->server, then RST both sockets;
* ``Stall(after)``            forward ``after`` bytes client->server, then forward nothing in
                              either direction and keep both sockets open (a black hole);
* ``Throttle(rate)``          forward both ways at most ``rate`` bytes per second each;
* ``HalfOpen(after)``         forward ``after`` bytes client->server normally, then drop
                              everything server->client and never tell the client that the
                              server closed; client->server keeps flowing (a peer whose replies
                              vanish, as when its host lost power behind a NAT).
* ``HoldReplies(hold)``       forward both ways, but while the event ``hold`` is set keep the
                              server->client bytes back (a reply late on the wire), and deliver
                              them, in order, once it is cleared.

Two threads per connection, blocking sockets; ``stop()`` closes everything.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Pass:
    pass


@dataclass(frozen=True, slots=True)
class Reset:
    after: int


@dataclass(frozen=True, slots=True)
class Stall:
    after: int


@dataclass(frozen=True, slots=True)
class Throttle:
    rate: int  # bytes per second, each direction


@dataclass(frozen=True, slots=True)
class HalfOpen:
    after: int


@dataclass(frozen=True, slots=True)
class HoldReplies:
    hold: threading.Event


Mode = Pass | Reset | Stall | Throttle | HalfOpen | HoldReplies


@dataclass
class ProxiedConnection:
    """One client connection through the proxy, with what it carried each way."""

    index: int
    mode: Mode
    up: int = 0  # client -> server bytes forwarded
    down: int = 0  # server -> client bytes forwarded
    faulted: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    client: socket.socket | None = None
    server: socket.socket | None = None


class FaultProxy:
    """Listen on 127.0.0.1:<port> and forward to ``upstream`` with per-connection faults."""

    def __init__(self, upstream: tuple[str, int], *, plan: list[Mode] | None = None,
                 default: Mode | None = None) -> None:
        self.upstream = upstream
        self.plan = list(plan or [])
        self.default: Mode = default or Pass()
        self.connections: list[ProxiedConnection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def bytes_up(self) -> int:
        """Client->server bytes forwarded over all connections so far."""
        with self._lock:
            return sum(c.up for c in self.connections)

    @property
    def bytes_down(self) -> int:
        with self._lock:
            return sum(c.down for c in self.connections)

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client, reset=True)
                continue
            with self._lock:
                mode = self.plan.pop(0) if self.plan else self.default
                conn = ProxiedConnection(len(self.connections), mode, client=client,
                                         server=server)
                self.connections.append(conn)
            self._spawn(self._pump, conn, True)
            self._spawn(self._pump, conn, False)

    def _pump(self, conn: ProxiedConnection, upward: bool) -> None:
        """Forward one direction of ``conn`` according to its mode."""
        src, dst = (conn.client, conn.server) if upward else (conn.server, conn.client)
        mode = conn.mode
        assert src is not None and dst is not None
        started = time.monotonic()
        moved = 0
        while not self._stopping.is_set():
            if isinstance(mode, Stall) and conn.faulted.is_set():
                self._stopping.wait(0.2)  # a black hole: read nothing, send nothing
                continue
            try:
                data = src.recv(CHUNK)
            except OSError:
                break
            if not data:
                self._eof(conn, dst, upward)
                return
            if isinstance(mode, Stall) and conn.faulted.is_set():
                continue  # read while the fault began: it goes nowhere
            if upward and isinstance(mode, (Reset, Stall, HalfOpen)):
                room = mode.after - conn.up
                if room <= 0 or len(data) > room:
                    head = data[:max(room, 0)]
                    if head and not self._send(dst, head):
                        break
                    with self._lock:
                        conn.up += len(head)
                    conn.faulted.set()
                    if isinstance(mode, Reset):
                        self._reset(conn)
                        return
                    if isinstance(mode, Stall):
                        continue
                    data = data[len(head):]  # HalfOpen: the rest still goes up
            if not upward and isinstance(mode, HalfOpen) and conn.faulted.is_set():
                continue  # replies vanish
            if not upward and isinstance(mode, HoldReplies):
                while mode.hold.is_set() and not self._stopping.is_set():
                    time.sleep(0.02)
            if isinstance(mode, Throttle):
                moved += len(data)
                ahead = moved / mode.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if not self._send(dst, data):
                if upward and isinstance(mode, HalfOpen) and conn.faulted.is_set():
                    continue  # the server is gone; the client must not learn it from us
                break
            with self._lock:
                if upward:
                    conn.up += len(data)
                else:
                    conn.down += len(data)
        self._close_conn(conn)

    def _send(self, dst: socket.socket, data: bytes) -> bool:
        try:
            dst.sendall(data)
            return True
        except OSError:
            return False

    def _eof(self, conn: ProxiedConnection, dst: socket.socket, upward: bool) -> None:
        if isinstance(conn.mode, Stall) and conn.faulted.is_set():
            return
        if not upward and isinstance(conn.mode, HalfOpen) and conn.faulted.is_set():
            return  # keep the client's socket open: it must find out by itself
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_conn(conn)

    def _reset(self, conn: ProxiedConnection) -> None:
        for sock in (conn.client, conn.server):
            if sock is not None:
                _close(sock, reset=True)
        conn.closed.set()

    def _close_conn(self, conn: ProxiedConnection) -> None:
        if isinstance(conn.mode, (Stall, HalfOpen)) and conn.faulted.is_set() \
                and not self._stopping.is_set():
            return
        for sock in (conn.client, conn.server):
            if sock is not None:
                _close(sock)
        conn.closed.set()

    def stop(self) -> None:
        """Close the listener and every connection (normal close, not RST)."""
        self._stopping.set()
        _close(self._listener)
        with self._lock:
            connections = list(self.connections)
        for conn in connections:
            for sock in (conn.client, conn.server):
                if sock is not None:
                    _close(sock)
            conn.closed.set()
        for thread in self._threads:
            thread.join(timeout=2)


def _close(sock: socket.socket, *, reset: bool = False) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
