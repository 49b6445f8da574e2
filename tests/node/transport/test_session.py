"""Both ends turn Nagle's algorithm off (node/transport/session.py ``frames_at_once``), on a
real loopback TCP socket under Twisted's own TCP connection class."""
from __future__ import annotations

import socket
from types import SimpleNamespace

from twisted.internet import tcp

from lienthong.node.transport.session import frames_at_once


def test_frames_leave_at_once_on_the_tcp_connection_under_tls() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        connection = tcp.Connection(client, None)
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # Nagle on
        frames_at_once(SimpleNamespace(transport=connection))  # the TLS layer over it
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for sock in (client, accepted, server):
            sock.close()


def test_a_transport_without_tcp_under_it_is_left_alone() -> None:
    frames_at_once(SimpleNamespace())                       # a test's transport
    frames_at_once(SimpleNamespace(transport=object()))     # no setTcpNoDelay
