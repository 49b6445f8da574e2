"""Mutual TLS 1.3 with keys pinned against the peer directory.

Why a verify callback rather than Twisted's ``trustRoot``: the callback consults the live
directory on every handshake, so an enrolment or a revocation takes effect at the next
handshake without rebuilding contexts, and the X.509 validity dates are ignored on purpose
(node certificates are valid 2000–9999; a peer's lifetime is managed by the directory, so a
clock that is days off never breaks delivery). The callback accepts exactly one certificate
(depth 0) whose SubjectPublicKeyInfo pin belongs to a trusted peer; anything else fails the
handshake, and the refusal is reported so it can be audited.

No session cache and no stateless tickets: every connection presents a certificate checked
against the directory as it is now. (OpenSSL 4.0.3 still sends two useless TLS 1.3 tickets
unless ``SSL_CTX_set_num_tickets(ctx, 0)`` is called, which neither pyOpenSSL nor
cryptography's build of OpenSSL lets Python reach; OpenSSL 4.1, in cryptography 51, sends none
with these settings, but pyOpenSSL 26.4 still requires cryptography < 51: docs/protocol.md,
Transport.)

ALPN names the wire protocol and its version (``lienthong/2``, then ``lienthong/1``, down from
the node's ``max_protocol``); the listening side picks the newest both speak, so a node that
speaks only ``lienthong/1`` keeps exchanging during an upgrade. A peer that offers none of
ours, or no ALPN at all, is refused at the handshake (checked in the verify callback, which
runs after the ALPN choice on both sides), like a peer with an unknown key.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from lienthong.keys.errors import UnknownPeer
from lienthong.keys.tls import check_pin, spki_sha256
from lienthong.node.transport.bulk import whole_writes

#: ALPN protocol names by wire protocol version (protocol/connection.py); versioned like
#: every format we own.
ALPN_BY_PROTOCOL = {2: b"lienthong/2", 1: b"lienthong/1"}
#: The first one, kept for callers that name the original protocol.
ALPN = ALPN_BY_PROTOCOL[1]
_PROTOCOL_BY_ALPN = {name: version for version, name in ALPN_BY_PROTOCOL.items()}

PinLookup = Callable[[str], "str | None"]
#: (pin, reason, code): a refused handshake the verify callback could name the key of.
RefusalReporter = Callable[[str, str, str], None]


@runtime_checkable
class CertifiedTransport(Protocol):
    """A TLS transport (Twisted's ``ISSLTransport``): it names the certificate the peer
    presented."""

    def getPeerCertificate(self) -> crypto.X509 | None: ...  # noqa: N802


def certificate_der(openssl_x509: crypto.X509) -> bytes:
    """DER bytes of a pyOpenSSL X509 object (as handed to verify callbacks and by transports)."""
    return openssl_x509.to_cryptography().public_bytes(Encoding.DER)


def negotiated_protocol(transport: object) -> int | None:
    """The wire protocol version ALPN agreed on for an established TLS transport (None: none,
    which the handshake already refused)."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return None
    try:
        chosen = get_handle().get_alpn_proto_negotiated()
    except Exception:  # noqa: BLE001 - a transport without ALPN names no protocol
        return None
    return _PROTOCOL_BY_ALPN.get(chosen)


def peer_node_id(transport: object, lookup: PinLookup) -> str:
    """The node ID of the peer on an established TLS transport; UnknownPeer if it has none."""
    # Twisted types a protocol's transport as a bare ITransport, which does not declare this.
    if not isinstance(transport, CertifiedTransport):
        raise TypeError(f"{type(transport).__name__} is not a TLS transport: it names no peer")
    cert = transport.getPeerCertificate()
    if cert is None:
        raise UnknownPeer("the peer presented no certificate")
    return check_pin(certificate_der(cert), 0, lookup)


@implementer(IOpenSSLContextFactory)
class PinnedContextFactory:
    """An old-style Twisted context factory (``getContext``) usable for listenSSL and connectSSL.

    ``lookup`` maps a TLS pin (SPKI SHA-256, hex) to the node ID of a *trusted* peer, or None.
    ``on_refused(pin, reason, code)`` is called for every certificate refused at the handshake.
    """

    def __init__(self, *, tls_key: Ed25519PrivateKey, certificate_der_bytes: bytes,
                 lookup: PinLookup, on_refused: RefusalReporter | None = None,
                 max_protocol: int = max(ALPN_BY_PROTOCOL)) -> None:
        if max_protocol not in ALPN_BY_PROTOCOL:
            raise ValueError(f"max_protocol must be one of {sorted(ALPN_BY_PROTOCOL)}")
        #: Our ALPN names, newest first (the client offers them in this order).
        self._alpn = [ALPN_BY_PROTOCOL[v] for v in sorted(ALPN_BY_PROTOCOL, reverse=True)
                      if v <= max_protocol]
        self._tls_key = tls_key
        self._certificate = x509.load_der_x509_certificate(certificate_der_bytes)
        self._lookup = lookup
        self._on_refused = on_refused
        self._context: SSL.Context | None = None

    def _verify(self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                ok: int) -> bool:
        # ``ok`` is 0 for every self-signed certificate; the pin decides, nothing else.
        if depth == 0 and connection.get_alpn_proto_negotiated() not in self._alpn:
            # ALPN was settled before any certificate: a client that offered none of ours (or
            # none at all) is not a lienthong node of a version we speak.
            self._report(self._pin_of(cert), "the peer offered no lienthong protocol "
                         "version this node speaks (ALPN)", "tls-wrong-alpn")
            return False
        try:
            der = certificate_der(cert)
        except Exception:  # noqa: BLE001 - an unparsable certificate is simply refused
            self._report("unparsable", "the peer's certificate could not be read")
            return False
        try:
            check_pin(der, depth, self._lookup)
        except UnknownPeer as exc:
            try:
                pin = spki_sha256(der)
            except Exception:  # noqa: BLE001
                pin = "unknown"
            self._report(pin, str(exc))
            return False
        return True

    @staticmethod
    def _pin_of(cert: crypto.X509) -> str:
        try:
            return spki_sha256(certificate_der(cert))
        except Exception:  # noqa: BLE001 - only named in the refusal
            return "unknown"

    def _report(self, pin: str, reason: str, code: str = "tls-unknown-key") -> None:
        if self._on_refused is not None:
            try:
                self._on_refused(pin, reason, code)
            except Exception:  # noqa: BLE001 - reporting must never break the handshake logic
                pass

    def use_key(self, *, tls_key: Ed25519PrivateKey, certificate_der_bytes: bytes) -> None:
        """Present another key and certificate from the next connection on (a key rotation).

        Connections already open keep the context they were made with, so a transfer in
        progress is not cut; every later ``getContext`` builds a context with the new key.
        """
        certificate = x509.load_der_x509_certificate(certificate_der_bytes)
        if certificate == self._certificate and tls_key is self._tls_key:
            return
        self._tls_key = tls_key
        self._certificate = certificate
        self._context = None

    def getContext(self) -> SSL.Context:  # noqa: N802 - Twisted's interface name
        if self._context is None:
            context = SSL.Context(SSL.TLS_METHOD)
            context.set_min_proto_version(SSL.TLS1_3_VERSION)
            context.use_privatekey(self._tls_key)
            context.use_certificate(self._certificate)
            context.check_privatekey()
            context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
            context.set_alpn_protos(self._alpn)
            context.set_alpn_select_callback(self._select_alpn)
            whole_writes(context)   # a 1 MiB DATA frame: one SSL_write (transport/bulk.py)
            self._context = context
        return self._context

    # pyOpenSSL exports the NO_OVERLAPPING_PROTOCOLS answer but not its type.
    def _select_alpn(self, connection: SSL.Connection,
                     offered: list[bytes]) -> bytes | SSL._NoOverlappingProtocols:
        """The newest of our protocols the client offered; none in common fails the
        handshake (a ``no_application_protocol`` alert)."""
        return next((name for name in self._alpn if name in offered),
                    SSL.NO_OVERLAPPING_PROTOCOLS)
