"""A hostile peer: a real, enrolled identity that speaks raw frames over real TLS 1.3.

The victim node pins the SPKI of every peer's TLS key, so any TLS 1.3 client that presents
the enrolled key is let in; after that, everything it says is attacker data. This module
builds such an identity (``make_identity``), enrols its card at a victim (``enrol``), and
drives connections with Python's ``ssl`` module (not Twisted, not our own sender), so the
bytes on the wire are exactly what the test writes: valid events from ``protocol.events``,
envelopes sealed with ``protocol.sealing.Sealer`` or signed by hand with ``keys.jws`` when a
name or a field is one the sealer would refuse, and raw frames with any header at all.

``HostileClient`` dials a victim as a sender; ``HostileReceiver`` listens and lets a victim
dial it, for the attacks a receiver can make (forged receipts).
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.public

from lienthong.keys import jws
from lienthong.keys.card import PeerCard, make_card, read_card
from lienthong.keys.directory import Peer
from lienthong.keys.identity import NodeKeys, generate_node_keys
from lienthong.keys.tls import pem_certificate, pem_private_key
from lienthong.protocol.envelope import ENVELOPE_TYP, decode_header
from lienthong.protocol.events import (
    Accept,
    Data,
    End,
    Error,
    Event,
    Hello,
    Offer,
    decode_event,
    encode_event,
)
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.frames import HEADER, MAX_PAYLOAD, FrameDecoder
from lienthong.protocol.receipt import RECEIPT_TYP
from lienthong.protocol.sealing import Sealer
from tests.integration.harness import NOW, TestNode

ALPN = "lienthong/1"
DATA_FRAME = 256 * 1024


@dataclass(frozen=True)
class Identity:
    """A hostile node's keys, card and the PEM files an ``ssl`` context loads."""

    keys: NodeKeys
    card: str
    cert_file: Path
    key_file: Path

    @property
    def node_id(self) -> str:
        return self.keys.node_id

    @property
    def name(self) -> str:
        return self.keys.name


def make_identity(folder: Path, name: str, *, addresses: list[str] | None = None) -> Identity:
    """Generate node keys and a signed card, and write the TLS key/cert PEMs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = generate_node_keys(name, now=NOW)
    card = make_card(keys, addresses=addresses or ["127.0.0.1:9"], now=NOW)
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(pem_certificate(keys.tls_cert_der))
    key_file.write_bytes(pem_private_key(keys.tls_key))
    key_file.chmod(0o600)
    return Identity(keys, card, cert_file, key_file)


def enrol(victim: TestNode, identity: Identity) -> None:
    """Enrol ``identity`` in the victim's peer directory, as a clerk would after the phone check."""
    card = read_card(identity.card)
    store = victim.store()
    try:
        store.add_peer(Peer.from_card(card, now=NOW), card.token, NOW)
    finally:
        store.close()


def card_of(node: TestNode) -> PeerCard:
    return read_card(node.card_path.read_text())


# -- envelopes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sealed:
    token: str
    ciphertext: bytes

    @property
    def message_id(self) -> str:
        """Read without validating the header: a hostile one may be invalid on purpose."""
        return jws.decode(self.token, ENVELOPE_TYP).payload["message_id"]

    @property
    def size(self) -> int:
        return len(self.ciphertext)


def seal(identity: Identity, to: PeerCard | list[PeerCard], data: bytes, *, name: str = "doc.txt",
         message_id: str | None = None, created: str = NOW) -> Sealed:
    """A correct envelope from ``identity`` to ``to`` (what an honest node would send)."""
    cards = to if isinstance(to, list) else [to]
    current = identity.keys.current_encryption
    recipients = {c.node_id: (c.encryption_kid, nacl.public.PublicKey(c.encryption_public))
                  for c in cards}
    sealer = Sealer(identity=identity.keys.identity, sender=identity.node_id,
                    sender_key=(current.kid, current.private.public_key), recipients=recipients,
                    name=name, size=len(data), message_id=message_id or new_message_id(),
                    created=created)
    head = sealer.feed(data)
    sealed = sealer.finish()
    return Sealed(sealed.header_token, head + sealed.tail)


def resign(sealed: Sealed, signer: Identity, *, kid: str | None = None,
           **changes: Any) -> Sealed:
    """The same ciphertext under a header with ``changes`` applied, signed by ``signer``.

    This is how a hostile peer sends what ``Sealer`` refuses to make (a name with a slash, a
    NUL, NFD text, 300 bytes; a sender field naming another node): it signs the JSON itself,
    exactly as ``Sealer.finish`` does.
    """
    fields = dict(jws.decode(sealed.token, ENVELOPE_TYP).payload)
    fields.update(changes)
    token = jws.sign(signer.keys.identity, ENVELOPE_TYP, fields, kid=kid or fields["sender"])
    return Sealed(token, sealed.ciphertext)


def forged_receipt(signer: Identity, header_token: str, **changes: Any) -> str:
    """A receipt for ``header_token`` signed by ``signer``, with fields overridden."""
    header = decode_header(header_token)
    payload = {"v": 1, "message_id": header.message_id, "sender": header.sender,
               "recipient": signer.node_id, "sha256": header.sha256, "size": header.size,
               "status": "delivered", "time": NOW, "header_sha256": header.header_sha256}
    payload.update(changes)
    return jws.sign(signer.keys.identity, RECEIPT_TYP, payload, kid=payload["recipient"])


# -- raw frames --------------------------------------------------------------------------------

def raw_frame(kind: int, payload: bytes, *, version: int = 1, length: int | None = None) -> bytes:
    """A frame with any header at all (the length may lie)."""
    return HEADER.pack(version, kind, len(payload) if length is None else length) + payload


def _client_context(identity: Identity | None, *, max_version: ssl.TLSVersion | None = None
                    ) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the attacker does not care who the victim is
    if max_version is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = max_version
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    if identity is not None:
        context.load_cert_chain(identity.cert_file, identity.key_file)
    context.set_alpn_protocols([ALPN])
    return context


class PeerClosed(Exception):
    """The victim closed the connection (or reset it, or refused the TLS handshake)."""


class FrameSocket:
    """Blocking frame I/O on a TLS socket: write anything, read the victim's events."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(max_payload=MAX_PAYLOAD)
        self.received: list[Event] = []
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, event: Event) -> None:
        self.sock.sendall(encode_event(event))

    def next_event(self, timeout: float = 10.0) -> Event:
        """The next event the victim sends; PeerClosed if it closes first."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                event = decode_event(frame)
                self.received.append(event)
                return event
            if self.closed:
                raise PeerClosed("the victim closed the connection")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event from the victim within {timeout} s")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except (ssl.SSLError, ConnectionError, OSError) as exc:
                self.closed = True
                raise PeerClosed(f"the victim ended the connection: {exc!r}") from exc
            if not data:
                self.closed = True
                continue
            self.decoder.feed(data)

    def expect(self, kind: type, timeout: float = 10.0, *,
               skip: tuple[type, ...] = ()) -> Any:
        """The next event, which must be of ``kind`` (events of ``skip`` types are passed over)."""
        while True:
            event = self.next_event(timeout)
            if isinstance(event, skip):
                continue
            if not isinstance(event, kind):
                raise AssertionError(f"expected {kind.__name__}, got {event!r}")
            return event

    def error(self, timeout: float = 10.0) -> Error:
        """The ERROR the victim sends before closing (other events on the way are skipped)."""
        while True:
            event = self.next_event(timeout)
            if isinstance(event, Error):
                return event

    def wait_closed(self, timeout: float) -> float:
        """Seconds until the victim closes; TimeoutError if it keeps the connection open."""
        started = time.monotonic()
        while True:
            try:
                self.next_event(max(0.01, timeout - (time.monotonic() - started)))
            except PeerClosed:
                return time.monotonic() - started

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class HostileClient(FrameSocket):
    """Dial ``node`` as ``identity`` (None: present no certificate at all)."""

    def __init__(self, node: TestNode, identity: Identity | None, *,
                 max_version: ssl.TLSVersion | None = None, timeout: float = 10.0) -> None:
        context = _client_context(identity, max_version=max_version)
        raw = socket.create_connection(("127.0.0.1", node.port), timeout=timeout)
        try:
            sock = context.wrap_socket(raw, server_hostname=None)
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            raw.close()
            raise PeerClosed(f"TLS handshake refused: {exc!r}") from exc
        super().__init__(sock)
        self.identity = identity

    def hello(self, *, node_id: str | None = None, protocol: int = 1) -> Hello:
        """Wait for the victim's HELLO (it speaks first) and answer with ours."""
        theirs = self.expect(Hello)
        self.send(Hello(node_id=node_id or self.identity.node_id, software="hostile/0",
                        protocol=protocol))
        return theirs

    def offer(self, sealed: Sealed, *, priority: int = 3) -> Event:
        """OFFER and return the answer (ACCEPT, HAVE or REJECT)."""
        self.send(Offer(message_id=sealed.message_id, envelope=sealed.token,
                        ciphertext_size=sealed.size, priority=priority))
        return self.next_event()

    def stream(self, sealed: Sealed, offset: int = 0) -> None:
        mid = sealed.message_id
        for start in range(offset, sealed.size, DATA_FRAME):
            self.send(Data(message_id=mid, offset=start,
                           data=sealed.ciphertext[start:start + DATA_FRAME]))
        self.send(End(message_id=mid))

    def deliver(self, sealed: Sealed, timeout: float = 20.0) -> Event:
        """Offer, stream from the accepted offset, END; return RECEIPT, HAVE or REJECT."""
        answer = self.offer(sealed)
        if not isinstance(answer, Accept):
            return answer
        self.stream(sealed, answer.offset)
        return self.next_event(timeout)


def attempt_handshake(node: TestNode, identity: Identity | None, *,
                      max_version: ssl.TLSVersion | None = None) -> str:
    """Try to connect and get the victim's HELLO; return how it failed (or 'hello')."""
    try:
        client = HostileClient(node, identity, max_version=max_version)
    except PeerClosed as exc:
        return f"handshake: {exc}"
    try:
        client.expect(Hello, timeout=10)
        return "hello"
    except PeerClosed as exc:
        return f"closed: {exc}"
    finally:
        client.close()


class HostileReceiver:
    """Listen as ``identity`` and let a victim dial it; ``answer`` scripts the conversation.

    ``answer(conn, offer)`` is called for each OFFER the victim makes, after the HELLOs, and
    may send anything. The server handles connections one at a time in a thread until
    ``stop()``; every event it received is kept in ``received``.
    """

    def __init__(self, identity: Identity, port: int,
                 answer: Callable[[FrameSocket, Offer], None]) -> None:
        self.identity = identity
        self.answer = answer
        self.received: list[Event] = []
        self.connections = 0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_NONE  # the attacker lets anyone in
        context.load_cert_chain(identity.cert_file, identity.key_file)
        context.set_alpn_protocols([ALPN])
        self._context = context
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn: FrameSocket | None = None
            try:
                raw.settimeout(10)
                conn = FrameSocket(self._context.wrap_socket(raw, server_side=True))
                conn.send(Hello(node_id=self.identity.node_id, software="hostile/0"))
                conn.expect(Hello)
                while not self._stopping.is_set():
                    offer = conn.expect(Offer, timeout=30)
                    self.answer(conn, offer)
            except (PeerClosed, ssl.SSLError, ConnectionError):
                pass
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                self.errors.append(exc)
            finally:
                if conn is not None:
                    self.received.extend(conn.received)
                try:
                    raw.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(timeout=5)


def receive_transfer(conn: FrameSocket, offer: Offer) -> bytes:
    """Accept ``offer`` from zero and read its ciphertext up to END."""
    conn.send(Accept(message_id=offer.message_id, offset=0))
    chunks = []
    while True:
        event = conn.next_event(timeout=30)
        if isinstance(event, Data):
            chunks.append(event.data)
        elif isinstance(event, End):
            return b"".join(chunks)


def answers(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]

