"""Mutual TLS 1.3 with keys pinned against the peer directory.

Why a verify callback rather than Twisted's ``trustRoot``: the callback consults the live
directory on every handshake, so an enrolment or a revocation takes effect at the next
handshake without rebuilding contexts, and the X.509 validity dates are ignored on purpose
(node certificates are valid 2000–9999; a peer's lifetime is managed by the directory, so a
clock that is days off never breaks delivery). The callback accepts exactly one certificate
(depth 0) whose SubjectPublicKeyInfo pin belongs to a trusted peer; anything else fails the
handshake, and the refusal is reported so it can be audited.

No session tickets and no session cache: every connection presents a certificate checked
against the directory as it is now.
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

#: ALPN protocol name; versioned like every format we own.
ALPN = b"lienthong/1"

PinLookup = Callable[[str], "str | None"]
RefusalReporter = Callable[[str, str], None]


@runtime_checkable
class CertifiedTransport(Protocol):
    """A TLS transport (Twisted's ``ISSLTransport``): it names the certificate the peer
    presented."""

    def getPeerCertificate(self) -> crypto.X509 | None: ...  # noqa: N802


def certificate_der(openssl_x509: crypto.X509) -> bytes:
    """DER bytes of a pyOpenSSL X509 object (as handed to verify callbacks and by transports)."""
    return openssl_x509.to_cryptography().public_bytes(Encoding.DER)


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
    ``on_refused(pin, reason)`` is called for every certificate refused at the handshake.
    """

    def __init__(self, *, tls_key: Ed25519PrivateKey, certificate_der_bytes: bytes,
                 lookup: PinLookup, on_refused: RefusalReporter | None = None) -> None:
        self._tls_key = tls_key
        self._certificate = x509.load_der_x509_certificate(certificate_der_bytes)
        self._lookup = lookup
        self._on_refused = on_refused
        self._context: SSL.Context | None = None

    def _verify(self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                ok: int) -> bool:
        # ``ok`` is 0 for every self-signed certificate; the pin decides, nothing else.
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

    def _report(self, pin: str, reason: str) -> None:
        if self._on_refused is not None:
            try:
                self._on_refused(pin, reason)
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
            context.set_alpn_protos([ALPN])
            context.set_alpn_select_callback(self._select_alpn)
            whole_writes(context)   # a 1 MiB DATA frame: one SSL_write (transport/bulk.py)
            self._context = context
        return self._context

    @staticmethod
    # pyOpenSSL exports the NO_OVERLAPPING_PROTOCOLS answer but not its type.
    def _select_alpn(connection: SSL.Connection,
                     offered: list[bytes]) -> bytes | SSL._NoOverlappingProtocols:
        return ALPN if ALPN in offered else SSL.NO_OVERLAPPING_PROTOCOLS
