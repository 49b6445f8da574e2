"""Two nodes' protocols back to back for the delivery tests: alpha's sender and beta's
receiver, with the bytes moved between them by the test.

No sockets and no TLS: two ``StringTransport``s whose ``getPeerCertificate`` returns the other
node's real certificate stand in for an established mutual-TLS connection. Keys, sealing, the
store and the inbox are all real; the database and the worker pool run inline, and the clock
only moves when the test says so.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from OpenSSL import crypto
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from lienthong.node.delivery.links import PeerLink
from lienthong.node.inbox.connection import ReceiverFactory
from lienthong.node.inbox.offers import Offers
from lienthong.node.outbox.pipeline import Outbox
from tests.node.runtimehelp import (
    FakeReactor,
    Office,
    enrol,
    make_office,
)


class PeerTransport(StringTransport):
    """An established TLS connection, as far as our protocols can tell: it names the peer."""

    def __init__(self, peer_cert_der: bytes, alpn: bytes = b"lienthong/2") -> None:
        super().__init__()
        self._peer = crypto.X509.from_cryptography(x509.load_der_x509_certificate(peer_cert_der))
        self.alpn = alpn

    def getPeerCertificate(self) -> crypto.X509:  # noqa: N802
        return self._peer

    def getHandle(self) -> PeerTransport:  # noqa: N802 - as the TLS connection it stands for
        return self

    def get_alpn_proto_negotiated(self) -> bytes:
        return self.alpn


class Wire:
    """The link's latest dial, answered by beta's receiver, with bytes pumped both ways."""

    def __init__(self, net: Net, tap: list[bytes] | None = None, piece: int = 0,
                 alter: Callable[[bytes], bytes] | None = None) -> None:
        """``tap``: collects every byte the sender puts on the wire (the frames, as sent);
        ``piece``: the receiver reads them that many bytes at a time (0: all at once);
        ``alter``: changes what the sender sent before the receiver reads it."""
        self.net = net
        self.tap = tap
        self.piece = piece
        self.alter = alter
        dial = net.reactor.dials[-1]
        self.sender = dial.factory.buildProtocol(None)
        self.receiver = net.receiver_factory.buildProtocol(None)
        self.sender_side = PeerTransport(net.beta.runtime.keys.tls_cert_der)
        self.receiver_side = PeerTransport(net.alpha.runtime.keys.tls_cert_der)
        self.sender.makeConnection(self.sender_side)
        self.receiver.makeConnection(self.receiver_side)
        self.receiver.handshakeCompleted()
        self.lost = False
        self.pump()

    def pump(self) -> None:
        reactor = self.net.reactor
        for _ in range(10_000):
            reactor.advance(0)
            moved = False
            for source, destination in ((self.sender_side, self.receiver),
                                        (self.receiver_side, self.sender)):
                data = source.value()
                if data:
                    source.clear()
                    if self.tap is not None and destination is self.receiver:
                        self.tap.append(data)
                    if self.alter is not None and destination is self.receiver:
                        data = self.alter(data)
                    step = self.piece if destination is self.receiver and self.piece else \
                        len(data)
                    for start in range(0, len(data), step):
                        destination.dataReceived(data[start:start + step])
                    moved = True
            if not moved and not reactor.due_now():
                break
        else:
            raise AssertionError("the two protocols never went quiet")
        if not self.lost and (self.sender_side.disconnecting or self.receiver_side.disconnecting):
            self.lost = True
            self.receiver.connectionLost(Failure(ConnectionDone()))
            self.sender.connectionLost(Failure(ConnectionDone()))


@dataclasses.dataclass
class Net:
    reactor: FakeReactor
    alpha: Office
    beta: Office
    receiver_factory: ReceiverFactory
    link: PeerLink
    delivered: list[str]
    failed: list[tuple[str, str]]

    def dispatch(self, name: str, data: bytes) -> str:
        """Drop a file into alpha's outbox/beta/ and take it for real (intake and sealing)."""
        rt = self.alpha.runtime
        folder = rt.config.outbox / "beta"
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
        Outbox(rt, on_dispatch=lambda ids: None).file_ready(folder / name, "beta")
        (row,) = [d for d in self.alpha.store.recent_dispatches(50) if d.name == name]
        return row.message_id

    def connect(self, tap: list[bytes] | None = None, piece: int = 0,
                alter: Callable[[bytes], bytes] | None = None) -> Wire:
        self.link.kick()
        return Wire(self, tap, piece, alter)

    def inbox(self) -> Path:
        return self.beta.runtime.config.inbox / "alpha"


@pytest.fixture
def net(tmp_path: Path) -> Net:
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    enrol(beta, alpha)
    delivered: list[str] = []
    failed: list[tuple[str, str]] = []
    link = PeerLink(alpha.runtime, beta.node_id, tls=None,
                    on_all_delivered=lambda mid, row: delivered.append(mid),
                    on_delivery_failed=lambda mid, why: failed.append((mid, why)),
                    rng=lambda: 1.0)
    return Net(reactor, alpha, beta, ReceiverFactory(Offers(beta.runtime)), link, delivered,
               failed)


def kinds(office: Office, message_id: str) -> list[str]:
    return [entry.kind for entry in office.store.audit_entries(message_id=message_id)]


def leftovers(office: Office) -> list[Path]:
    return [p for p in office.runtime.config.tmp.rglob("*") if p.is_file()]



SIDECAR = """\
subject = "Về nhân sự diện Ban Thường vụ quản lý"
signer = "Trần Thị Bích"
number = "77-BC/TU"
"""


def dispatch_v3(net: Net, name: str, data: bytes) -> str:
    """A document sealed as envelope v3 (beta last spoke protocol 2), with a sidecar."""
    net.alpha.runtime.peer_protocols.note(net.beta.node_id, 2)
    folder = net.alpha.runtime.config.outbox / "beta"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.meta.toml").write_text(SIDECAR, encoding="utf-8")
    mid = net.dispatch(name, data)
    assert net.alpha.store.audit_entries(kind="sealed", message_id=mid)[0].detail[
        "envelope"] == 3
    return mid

