"""node/transport/bulk.py: Twisted's TLS transport with large writes that skip its 16 KiB loop.

A real TLS 1.3 connection (pyOpenSSL memory BIOs under Twisted's TLS protocol, wired with
twisted.test.iosim): what the server reads must be exactly what the client wrote, in order,
whichever mix of small writes, large writes and sequences it was; and a large sequence must
reach TCP as a few large writes rather than one per TLS record.
"""
from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.test import iosim
from zope.interface import implementer

from lienthong.node.transport.bulk import (
    BIO_READ,
    PYOPENSSL_INTERNALS_PRESENT,
    RECEIVE_BUFFER,
    TCP_SEND,
    BulkTLSTransport,
    bulk_tls,
    whole_writes,
)


@implementer(IOpenSSLContextFactory)
class ServerContext:
    """An old-style context factory with a fresh self-signed certificate (as transport/tls.py's)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(datetime.datetime(2000, 1, 1))
                     .not_valid_after(datetime.datetime(2099, 1, 1))
                     .sign(self.key, hashes.SHA256()))

    def getContext(self) -> SSL.Context:  # noqa: N802
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.use_privatekey(self.key)
        context.use_certificate(self.cert)
        return context


@implementer(IOpenSSLContextFactory)
class ClientContext:
    """A client context, with whole writes (as transport/tls.py makes it) or pyOpenSSL's default."""

    def __init__(self, *, whole: bool) -> None:
        self.whole = whole

    def getContext(self) -> SSL.Context:  # noqa: N802
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        if self.whole:
            whole_writes(context)
        return context


class Collect(Protocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lost_after: int | None = None   # bytes received when the connection was lost

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received.append(data)

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802
        self.lost_after = sum(len(piece) for piece in self.received)


class CollectPieces(Collect):
    """A protocol that takes one read's records as they came (as the receiver does)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[bytes]] = []

    def pieces_received(self, pieces: list[bytes]) -> None:
        self.calls.append(list(pieces))
        self.received.extend(pieces)


class CollectInto(Collect):
    """A protocol that names where each read's records go (as the receiver does): buffers of
    varying size, so the transport must fill each and ask again."""

    SIZES = (7, 100_000, 16_385, 1)

    def __init__(self) -> None:
        super().__init__()
        self.buffer: bytearray | None = None
        self.asked = 0
        self.done_calls = 0
        self.since_done = 0

    def read_buffer(self) -> memoryview:
        assert self.buffer is None, "asked again before bytes_read"
        self.buffer = bytearray(self.SIZES[self.asked % len(self.SIZES)])
        self.asked += 1
        return memoryview(self.buffer)

    def bytes_read(self, count: int) -> None:
        assert self.buffer is not None and 0 < count <= len(self.buffer)
        self.received.append(bytes(self.buffer[:count]))
        self.buffer = None
        self.since_done += count

    def read_done(self) -> None:
        self.done_calls += 1
        self.since_done = 0


class Connected:
    """A client and a server TLS transport over an in-memory pump, handshake done."""

    def __init__(self, *, bulk: bool, bulk_server: bool = False,
                 server_protocol: type[Collect] = Collect) -> None:
        clock = Clock()
        self.server = TLSMemoryBIOFactory(ServerContext(), False,
                                          Factory.forProtocol(server_protocol),
                                          clock).buildProtocol(None)
        self.client = TLSMemoryBIOFactory(ClientContext(whole=bulk), True,
                                          Factory.forProtocol(Protocol), clock).buildProtocol(None)
        self.pump = iosim.connect(self.server, iosim.makeFakeServer(self.server), self.client,
                                  iosim.makeFakeClient(self.client), greet=False, clock=clock)
        self.pump.flush()
        if bulk:
            bulk_tls(self.client)
        if bulk_server:
            bulk_tls(self.server)
        # Count what the TLS layer hands to TCP.
        self.tcp_writes: list[int] = []
        tcp = self.client.transport
        write = tcp.write

        def counted(data: bytes) -> None:
            self.tcp_writes.append(len(data))
            write(data)
        tcp.write = counted

    def received(self) -> bytes:
        self.pump.flush()
        return b"".join(self.server.wrappedProtocol.received)


def test_upgrades_only_twisteds_tls_transport() -> None:
    """The transport connectSSL makes is upgraded (and its TCP connection may send a whole
    frame at once); anything else is left alone."""
    conn = Connected(bulk=False)
    assert type(conn.client) is BufferingTLSTransport
    conn.client.transport.SEND_LIMIT = 128 * 1024   # as Twisted's TCP connection has it
    bulk_tls(conn.client)
    assert type(conn.client) is BulkTLSTransport
    assert conn.client.transport.SEND_LIMIT == TCP_SEND   # a whole frame per send
    other = Protocol()
    bulk_tls(other)
    assert type(other) is Protocol


def test_the_installed_pyopenssl_has_the_internals_the_fast_path_reads() -> None:
    """The record reads and pending-byte checks go through pyOpenSSL internals; with the
    pyOpenSSL installed they are there (else every connection would quietly take the slow path
    and the benchmark would say so, not this suite)."""
    assert PYOPENSSL_INTERNALS_PRESENT


def test_without_those_internals_the_transport_is_left_as_twisted_made_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A pyOpenSSL that lost an internal the fast path reads: no upgrade, and the bytes still
    arrive whole and in order over Twisted's own TLS path."""
    monkeypatch.setattr("lienthong.node.transport.bulk.PYOPENSSL_INTERNALS_PRESENT", False)
    conn = Connected(bulk=True, bulk_server=True)
    assert type(conn.client) is BufferingTLSTransport
    assert type(conn.server) is BufferingTLSTransport
    big = os.urandom(300_000)
    conn.client.writeSequence([b"head;", big])
    assert conn.received() == b"head;" + big


def test_mixed_writes_arrive_whole_and_in_order() -> None:
    """Small writes, a large sequence, a large write and a memoryview arrive in order."""
    conn = Connected(bulk=True)
    big = os.urandom(1024 * 1024 + 3)
    other = os.urandom(300_000)
    conn.client.write(b"offer;")
    conn.client.writeSequence([b"head;", big])
    conn.client.write(b"end;")
    conn.client.write(other)
    conn.client.writeSequence([b"x", memoryview(b"yz")])
    conn.client.writeSequence([memoryview(big)[:70_000], b"tail"])
    assert conn.received() == (b"offer;head;" + big + b"end;" + other + b"xyz" +
                               big[:70_000] + b"tail")


def test_write_before_the_handshake_waits_in_order() -> None:
    """Bytes written before the handshake completes are kept and sent, in order, after it."""
    clock = Clock()
    server = TLSMemoryBIOFactory(ServerContext(), False, Factory.forProtocol(Collect),
                                 clock).buildProtocol(None)
    client = TLSMemoryBIOFactory(ClientContext(whole=True), True, Factory.forProtocol(Protocol),
                                 clock).buildProtocol(None)
    bulk_tls(client)
    pump = iosim.connect(server, iosim.makeFakeServer(server), client,
                         iosim.makeFakeClient(client), greet=False, clock=clock)
    big = os.urandom(200_000)
    client.writeSequence([b"first;", big])
    client.write(b"second")
    pump.flush()
    assert b"".join(server.wrappedProtocol.received) == b"first;" + big + b"second"


def test_large_sequence_leaves_in_few_tcp_writes() -> None:
    """A 1 MiB frame reaches TCP in a couple of writes (Twisted alone: one per 32 KiB)."""
    frame = [b"h" * 30, os.urandom(1024 * 1024)]
    plain = Connected(bulk=False)
    plain.client.writeSequence(frame)
    plain.client._aggregator.flush()
    bulk = Connected(bulk=True)
    bulk.client.writeSequence(frame)
    assert len(plain.tcp_writes) >= 32
    assert len(bulk.tcp_writes) <= 2 and max(bulk.tcp_writes) <= BIO_READ
    assert bulk.received() == plain.received() == b"".join(frame)


def test_received_records_reach_the_protocol_together() -> None:
    """A receiver with the bulk transport gets a 1 MiB frame in a few calls, not one per
    16 KiB record (Twisted alone: 64), and exactly the bytes sent, in order."""
    frame = [b"h" * 30, os.urandom(1024 * 1024)]
    plain = Connected(bulk=True)
    plain.client.writeSequence(frame)
    assert plain.received() == b"".join(frame)
    bulk = Connected(bulk=True, bulk_server=True)
    bulk.client.writeSequence(frame)
    bulk.client.write(b"end;")
    assert bulk.received() == b"".join(frame) + b"end;"
    assert len(plain.server.wrappedProtocol.received) >= 64
    assert len(bulk.server.wrappedProtocol.received) <= 3


def test_a_protocol_that_takes_pieces_gets_a_reads_records_in_one_call() -> None:
    """The receiver's protocol (ReceivesPieces) gets one read's records in one call, read
    into the connection's buffer: a few pieces of at most RECEIVE_BUFFER (not one per 16 KiB
    record), nothing lost or reordered, and none of them a view of the buffer that the next
    read rewrites."""
    frame = [b"h" * 30, os.urandom(1024 * 1024)]
    conn = Connected(bulk=True, bulk_server=True, server_protocol=CollectPieces)
    collect = conn.server.wrappedProtocol
    conn.client.writeSequence(frame)
    assert conn.received() == b"".join(frame)
    pieces = [piece for call in collect.calls for piece in call]
    assert all(type(piece) is bytes and len(piece) <= RECEIVE_BUFFER for piece in pieces)
    assert len(pieces) <= 2 * (1024 * 1024 // RECEIVE_BUFFER + 1)   # records: 65 or more
    second = os.urandom(200_000)
    conn.client.write(second)
    assert conn.received() == b"".join(frame) + second   # the first read's pieces unchanged


@pytest.mark.parametrize("server_protocol", [Collect, CollectInto], ids=["bytes", "into"])
def test_records_before_a_close_are_delivered_before_it(server_protocol: type[Collect]) -> None:
    """A peer that sends its last bytes and closes at once (close_notify in the same TCP
    read): the bulk receiver delivers those bytes first, then learns of the close, whether
    its protocol takes bytes or reads into its own buffers."""
    conn = Connected(bulk=True, bulk_server=True, server_protocol=server_protocol)
    collect = conn.server.wrappedProtocol
    last = os.urandom(100_000)
    conn.client.write(last)
    conn.client.loseConnection()
    conn.pump.flush()
    assert b"".join(collect.received) == last
    assert collect.lost_after == len(last)
    assert getattr(collect, "since_done", 0) == 0   # a ReadsInto reader heard the read end


def test_a_protocol_that_reads_into_its_buffers_gets_every_byte_in_order() -> None:
    """The receiver's protocol (ReadsInto) has the records decrypted where it says, each
    buffer it names filled before it is asked for the next, and hears ``read_done`` once a
    read's records are all in: nothing lost, reordered or left unreported at the end."""
    conn = Connected(bulk=True, bulk_server=True, server_protocol=CollectInto)
    collect = conn.server.wrappedProtocol
    sent = b"".join([b"h" * 30, os.urandom(1024 * 1024), b"end;"])
    conn.client.writeSequence([sent[:30], sent[30:-4]])
    conn.client.write(sent[-4:])
    assert conn.received() == sent
    assert collect.done_calls >= 1 and collect.since_done == 0
    full = [len(piece) for piece in collect.received[:-1]]
    sizes = [CollectInto.SIZES[i % len(CollectInto.SIZES)] for i in range(len(full))]
    # A buffer is left part-filled only where a read's records ended.
    assert sum(f < s for f, s in zip(full, sizes, strict=True)) <= collect.done_calls
