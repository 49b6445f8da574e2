"""node/transport/bulk.py over a real socket: records go to the socket inside the write.

Twisted's own TCP connection (``twisted.internet.tcp.Connection``) on one end of a real
socket pair, driven by a select loop of a few lines, with TLS 1.3 over it: a write reaches
the kernel before any reactor turn, what the socket does not take is sent later in order,
and nothing goes out once the connection is aborted.
"""
from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory

from lienthong.node.transport.bulk import PYOPENSSL_INTERNALS_PRESENT, BulkTLSTransport, bulk_tls
from tests.node.transport.test_bulk import ClientContext, Collect, ServerContext


def test_the_pinned_pyopenssl_has_the_internals_these_tests_read() -> None:
    """A failure, not a skip, if they go: the path tested below would silently be unused
    (test_bulk.py checks that the node then falls back to Twisted's TLS path)."""
    assert PYOPENSSL_INTERNALS_PRESENT


class Loop:
    """What a ``tcp.Connection`` asks of its reactor, and a select loop to drive it."""

    def __init__(self) -> None:
        self.readers: set[Any] = set()
        self.writers: set[Any] = set()
        #: Twisted's TLS flushes small writes (and the TCP transport an abort) a turn later.
        self.clock = Clock()

    def addReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.add(reader)

    def removeReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.discard(reader)

    def addWriter(self, writer: Any) -> None:  # noqa: N802
        self.writers.add(writer)

    def removeWriter(self, writer: Any) -> None:  # noqa: N802
        self.writers.discard(writer)

    def callLater(self, delay: float, fn: Callable[..., object], *args: Any) -> Any:  # noqa: N802
        return self.clock.callLater(delay, fn, *args)

    def run(self, until: Callable[[], bool], turns: int = 10_000) -> None:
        for _ in range(turns):
            if until():
                return
            readable, writable, _ = select.select(list(self.readers), list(self.writers), [],
                                                  0.05)
            for descriptor in readable:
                if descriptor.doRead() is not None:
                    raise AssertionError("a read failed")
            for descriptor in writable:
                if descriptor.doWrite() is not None:
                    raise AssertionError("a write failed")
            self.clock.advance(0)
        raise AssertionError("the loop did not get there")


class Pair:
    """A TLS client and server, each over Twisted's TCP connection on a real socket."""

    def __init__(self) -> None:
        self.loop = Loop()
        clock = self.loop.clock
        client_end, server_end = socket.socketpair()
        self.client_tcp = tcp.Connection(client_end, None, reactor=self.loop)
        self.server_tcp = tcp.Connection(server_end, None, reactor=self.loop)
        self.client = TLSMemoryBIOFactory(ClientContext(whole=True), True,
                                          Factory.forProtocol(Protocol),
                                          clock).buildProtocol(None)
        self.server = TLSMemoryBIOFactory(ServerContext(), False, Factory.forProtocol(Collect),
                                          clock).buildProtocol(None)
        for connection, protocol in ((self.client_tcp, self.client),
                                     (self.server_tcp, self.server)):
            connection.protocol = protocol
            connection.connected = 1   # as tcp.Server and tcp.Client set it once connected
            protocol.makeConnection(connection)
            connection.startReading()
        self.loop.run(lambda: self.client._handshakeDone and self.server._handshakeDone)
        bulk_tls(self.client)

    def received(self) -> bytes:
        return b"".join(self.server.wrappedProtocol.received)


def test_a_write_reaches_the_socket_before_any_reactor_turn() -> None:
    pair = Pair()
    assert type(pair.client) is BulkTLSTransport
    assert not select.select([pair.server_tcp.socket], [], [], 0)[0]
    frame = os.urandom(100_000)
    pair.client.writeSequence([b"head", frame])
    # Twisted alone leaves the records in the TCP transport's buffer until its next turn.
    assert select.select([pair.server_tcp.socket], [], [], 0)[0]
    pair.loop.run(lambda: len(pair.received()) == 100_004)
    assert pair.received() == b"head" + frame


def test_what_the_socket_does_not_take_follows_in_order() -> None:
    """Frames larger than the socket's buffer while the peer does not read: the rest waits
    in the TCP transport, and later writes queue behind it."""
    pair = Pair()
    pair.server_tcp.stopReading()
    frames = [os.urandom(1024 * 1024 + n) for n in range(3)]
    expected = b""
    for number, frame in enumerate(frames):
        pair.client.writeSequence([b"frame %d;" % number, frame])
        pair.client.write(b"small;")
        expected += b"frame %d;" % number + frame + b"small;"
    assert pair.client_tcp.dataBuffer or pair.client_tcp._tempDataBuffer, \
        "the socket took 3 MiB: the test no longer fills it"
    pair.server_tcp.startReading()
    pair.loop.run(lambda: len(pair.received()) >= len(expected))
    assert pair.received() == expected


def test_nothing_goes_to_the_socket_once_aborted() -> None:
    pair = Pair()
    pair.client.write(b"before;")
    pair.loop.run(lambda: pair.received() == b"before;")
    pair.client.abortConnection()
    pair.client_tcp.dataBuffer = b""   # as if Twisted had sent what it buffered
    pair.client.write(os.urandom(100_000))
    pair.client._flushSendBIO()
    assert not select.select([pair.server_tcp.socket], [], [], 0)[0], \
        "bytes (the close_notify, or a write) went out after the abort"
