"""Dialling one peer now, with nothing to send, to see whether it can be reached
(``lienthong peers test``).

Theory of operation
-------------------
The check makes exactly the connection a ``PeerLink`` would (node/delivery/links.py): TCP to
the peer's address, mutual TLS 1.3 with this node's key and the pins of the directory
(node/transport/tls.py), then the protocol's opening: the receiver's HELLO, ours, and one
PING answered by a PONG (protocol/connection.py). It offers nothing, so the peer records
nothing but a connection. Each step is timed and the first one that fails decides the answer,
in the order a person would look for the fault::

    connect --refused/timeout--> unreachable       (node down, wrong address, firewall)
    TLS     --our check fails--> wrong-identity    (the key at that address is not the card's)
    TLS/HELLO --peer closes----> not-accepted      (the peer has not enrolled us, or revoked us)
    HELLO   --names another----> wrong-identity
    HELLO   --never comes------> no-answer
    PING    --PONG-------------> ok                (round-trip time measured)

Only the peer's card decides who it is: a key that belongs to another enrolled office is as
wrong as an unknown one, and the answer says which it was.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from lienthong.config.schema import parse_address
from lienthong.keys.directory import Directory
from lienthong.keys.errors import UnknownPeer
from lienthong.keys.identity import NodeKeys
from lienthong.node.language.text import Phrase, _
from lienthong.node.transport.session import SOFTWARE
from lienthong.node.transport.tls import PinnedContextFactory, negotiated_protocol, peer_node_id
from lienthong.protocol.connection import Connection, Role
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.events import Error, Hello, Ping, Pong

#: The answers, from best to worst; ``ok`` is the only one that is not a failure.
RESULTS = ("ok", "unreachable", "not-accepted", "wrong-identity", "no-answer")


@dataclass(frozen=True, slots=True)
class DialCheck:
    """What dialling one peer found: each step (None: not reached) and one plain answer."""

    peer: str
    node_id: str
    address: str
    result: str
    reason: str
    tcp_ms: float | None = None
    tls: bool | None = None
    identity: str | None = None
    protocol: int | None = None
    software: str | None = None
    rtt_ms: float | None = None
    #: ``reason`` and ``identity`` as a clerk reads them (translated where shown); the
    #: English strings above are what the audit log and ``--json`` carry.
    reason_text: Phrase | str | None = field(default=None, compare=False)
    identity_text: Phrase | str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"unknown dial result {self.result!r}")

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        del found["reason_text"], found["identity_text"]
        return found


@implementer(IHandshakeListener)
class _DialProtocol(TwistedProtocol):
    def __init__(self, check: _Check) -> None:
        self.check = check
        self.conn = Connection(Role.SENDER)
        self._ping_at = 0.0
        self._nonce = random.getrandbits(63)

    def connectionMade(self) -> None:  # noqa: N802
        self.check.tcp_done()

    def handshakeCompleted(self) -> None:  # noqa: N802
        self.check.tls_done(self.transport)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.check.finish("no-answer", Phrase("the peer's answer broke the protocol: "
                                                  "{problem}", problem=str(exc)))
            return
        transport = self.transport
        if transport is None:
            return
        for event in events:
            if isinstance(event, Hello):
                if not self.check.hello(event):
                    return
                if event.protocol != negotiated_protocol(transport):
                    self.check.finish("no-answer", Phrase(
                        "the peer's greeting names protocol {protocol}, not the one the TLS "
                        "handshake agreed on", protocol=event.protocol))
                    return
                # Our HELLO names the protocol the receiver's named, the one ALPN agreed on,
                # as the delivery link does.
                transport.write(self.conn.send(Hello(node_id=self.check.local_node_id,
                                                     software=SOFTWARE,
                                                     protocol=event.protocol)))
                self._ping_at = time.monotonic()
                transport.write(self.conn.send(Ping(nonce=self._nonce)))
            elif isinstance(event, Pong) and event.nonce == self._nonce:
                self.check.pong((time.monotonic() - self._ping_at) * 1000)
            elif isinstance(event, Error):
                self.check.closed_by_peer(f"{event.code}: {event.reason}")

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.check.lost(reason)


class _Factory(ClientFactory):
    def __init__(self, check: _Check) -> None:
        self.check = check

    def buildProtocol(self, addr: Any) -> _DialProtocol:  # noqa: N802
        proto = _DialProtocol(self.check)
        self.check.proto = proto
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:  # noqa: N802
        self.check.finish("unreachable", Phrase(
            "no connection to {address}: {problem}", address=self.check.address,
            problem=plain_network_phrase(reason.getErrorMessage())))


class _Check:
    """One dial in progress; ``done`` fires once with its ``DialCheck``."""

    def __init__(self, reactor: Any, *, peer: str, node_id: str, address: str,
                 local_node_id: str, directory: Directory, timeout: float) -> None:
        self.reactor = reactor
        self.peer = peer
        self.node_id = node_id
        self.address = address
        self.local_node_id = local_node_id
        self.directory = directory
        self.timeout = timeout
        self.done: Deferred[DialCheck] = Deferred()
        self.proto: _DialProtocol | None = None
        self.found: dict[str, Any] = {}
        self.refused_pin: tuple[str, str] | None = None
        self._started = time.monotonic()
        self._timer: Any = None

    def start(self, tls: PinnedContextFactory) -> None:
        try:
            host, port = parse_address(self.address, where=f"peer {self.peer} address")
        except ValueError as exc:
            self.finish("unreachable", Phrase("{problem}", problem=str(exc)))
            return
        self._timer = self.reactor.callLater(self.timeout, self._timed_out)
        self.reactor.connectSSL(host, port, _Factory(self), tls, timeout=self.timeout)

    def refused(self, pin: str, reason: str, code: str) -> None:
        # The pin and reason say which key answered; the code (why TLS refused it) adds nothing
        # the report's own verdict does not.
        self.refused_pin = (pin, reason)

    def tcp_done(self) -> None:
        self.found["tcp_ms"] = round((time.monotonic() - self._started) * 1000, 1)

    def tls_done(self, transport: Any) -> None:
        try:
            reached = peer_node_id(transport, self.directory.node_for_tls_pin)
        except UnknownPeer:
            return  # our verify callback refused it already (``refused``)
        self.found["tls"] = True
        if reached != self.node_id:
            other = self._name_of(reached)
            self._identity(Phrase("the key belongs to {office}", office=other))
            self.finish("wrong-identity", Phrase(
                "the node at {address} is {office}, not {peer}: its key does not match "
                "{peer}'s card. Check the address with 'lienthong peers show {peer}'.",
                address=self.address, office=other, peer=self.peer))
            return
        self._identity(Phrase(MATCHES_CARD))

    def hello(self, hello: Hello) -> bool:
        names = {key.kid for key in self.directory.identities_of(self.node_id)} | {self.node_id}
        self.found["protocol"] = hello.protocol
        self.found["software"] = hello.software
        if hello.node_id not in names:
            self.finish("wrong-identity", Phrase(
                "the node at {address} says it is {node_id}, which is not {peer}'s node ID",
                address=self.address, node_id=hello.node_id, peer=self.peer))
            return False
        return True

    def pong(self, rtt_ms: float) -> None:
        self.found["rtt_ms"] = round(rtt_ms, 1)
        self.finish("ok", Phrase("{peer} answered at {address}: TLS 1.3 with the key of its "
                                 "card, and the protocol's greeting", peer=self.peer,
                                 address=self.address))

    def closed_by_peer(self, why: str) -> None:
        self.finish("not-accepted", Phrase(
            "{peer} closed the connection ({why}): it does not accept this node's key. Has it "
            "enrolled this office, or revoked it?", peer=self.peer, why=why))

    def lost(self, reason: Failure) -> None:
        if self.refused_pin is not None:
            pin, why = self.refused_pin
            other = self.directory.node_for_tls_pin(pin)
            self.found["tls"] = False
            presented = (Phrase("the key belongs to {office}", office=self._name_of(other))
                         if other else Phrase("a key no enrolled office has"))
            self._identity(presented)
            self.finish("wrong-identity", Phrase(
                "the node at {address} is not {peer}: it presented {key}, not the key of "
                "{peer}'s card ({why}). Another machine may have that address, or the office "
                "reinstalled its node: check the address and its card by phone.",
                address=self.address, peer=self.peer, key=presented, why=why))
            return
        if "tcp_ms" not in self.found:
            self.finish("unreachable", Phrase(
                "no connection to {address}: {problem}", address=self.address,
                problem=plain_network_phrase(reason.getErrorMessage())))
            return
        self.finish("not-accepted", Phrase(
            "{peer} closed the connection without a greeting: it does not accept this node's "
            "key. Has it enrolled this office (lienthong peers add), or revoked it?",
            peer=self.peer))

    def _timed_out(self) -> None:
        self._timer = None
        if "tcp_ms" not in self.found:
            self.finish("unreachable", Phrase(
                "no answer from {address} within {seconds} s (a firewall, or the machine is "
                "off)", address=self.address, seconds=f"{self.timeout:g}"))
        else:
            self.finish("no-answer", Phrase(
                "{peer} accepted the connection but did not answer within {seconds} s",
                peer=self.peer, seconds=f"{self.timeout:g}"))

    def _name_of(self, node_id: str | None) -> Phrase | str:
        if node_id is None:
            return Phrase("an unknown office")
        for peer in self.directory.peers:
            if peer.node_id == node_id:
                return peer.name
        return node_id

    def _identity(self, said: Phrase) -> None:
        self.found["identity"] = str(said)
        self.found["identity_text"] = said

    def finish(self, result: str, reason: Phrase) -> None:
        if self.done.called:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        transport = self.proto.transport if self.proto is not None else None
        abort = getattr(transport, "abortConnection", None)   # a TCP/TLS transport has it
        if abort is not None:
            abort()
        self.done.callback(DialCheck(peer=self.peer, node_id=self.node_id,
                                     address=self.address, result=result,
                                     reason=str(reason), reason_text=reason, **self.found))


def dial_peer(reactor: Any, node_keys: NodeKeys, directory: Directory, name: str, *,
              timeout: float = 10.0, address: str | None = None) -> Deferred[DialCheck]:
    """Dial the enrolled peer ``name`` (at ``address``, default its first) and report."""
    peer = next(p for p in directory.peers if p.name == name)
    check = _Check(reactor, peer=name, node_id=peer.node_id,
                   address=address or (peer.addresses[0] if peer.addresses else ""),
                   local_node_id=node_keys.node_id, directory=directory, timeout=timeout)
    lookup: Callable[[str], str | None] = directory.node_for_tls_pin
    tls = PinnedContextFactory(tls_key=node_keys.tls_key,
                               certificate_der_bytes=node_keys.tls_cert_der, lookup=lookup,
                               on_refused=check.refused)
    check.start(tls)
    return check.done


#: Network errors as the operating system words them, in plain words (the status screen and
#: the peer test show these instead of "...111: Connection refused.").
_REFUSED = _("the connection was refused: nothing listens at that address (the node is "
             "stopped, or the port is wrong)")
_NO_ANSWER = _("no answer in time (a firewall, or the machine is off)")
_NO_NAME = _("the machine's name is not known (DNS)")
_PLAIN_ERRORS = (
    ("connection refused", _REFUSED),
    ("timed out", _NO_ANSWER),
    ("timeout caused connection failure", _NO_ANSWER),
    ("dns lookup failed", _NO_NAME),
    ("lost in a non-clean fashion", _("the connection broke off (the network, or the other "
                                      "node stopped)")),
    ("no route to host", _("no route to that machine (network or firewall)")),
    ("network is unreachable", _("the network is unreachable from here")),
    ("name or service not known", _NO_NAME),
    ("connection was refused by other side", _REFUSED),
)
#: What the identity line says when the key is the card's.
MATCHES_CARD = _("matches the card")


def plain_network_error(message: str) -> str:
    """A connection error in words an IT officer reads at a glance (the original if unknown)."""
    return str(plain_network_phrase(message))


def plain_network_phrase(message: str) -> Phrase | str:
    """``plain_network_error`` as a catalog message, to be said in the reader's language (the
    operating system's own words, when unknown, are kept as they are)."""
    lowered = message.lower()
    for needle, plain in _PLAIN_ERRORS:
        if needle in lowered:
            return Phrase(plain)
    return message.strip().rstrip(".")
