"""TLS certificates for node-to-node connections, and pinning them against the peer directory.

Theory of operation: there is no certificate authority. Each node makes a self-signed X.509
certificate for its own Ed25519 TLS key, and every peer pins the *key* (SHA-256 of the
SubjectPublicKeyInfo DER), never the certificate bytes, so re-issuing a certificate for the same
key changes nothing. The identity key vouches for that pin in a signed binding
(:mod:`keys.identity`) and in the peer card (:mod:`keys.card`).

The validity dates are deliberately unbounded (notBefore 2000-01-01, notAfter
9999-12-31 23:59:59, RFC 5280 §4.1.2.5 "no well-defined expiration"): offices' clocks drift, and
a connection must never fail because of X.509 dates. A key's lifetime is decided by the peer
directory (rotation, revocation), not by the certificate.

The node's pyOpenSSL verify callback calls :func:`check_pin`, which refuses anything but a
single (depth 0) certificate whose pin the directory maps to a trusted node. Returning True from
that callback overrides every OpenSSL verdict (self-signed, dates), so the pin check must be
exact; it is.

This module uses ``cryptography`` only; the node turns the PEM bytes into pyOpenSSL objects.
"""
from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

import nacl.utils
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from lienthong.keys.errors import BadCertificate, UnknownPeer
from lienthong.keys.nodeid import parse_node_id

NOT_BEFORE = datetime.datetime(2000, 1, 1, 0, 0, 0, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
ORGANIZATION = "lienthong"
#: Certificates larger than this are refused before parsing (ours are about 350 bytes).
MAX_CERT_BYTES = 16 * 1024


def generate_tls_key(*, random_bytes: Callable[[int], bytes] = nacl.utils.random
                     ) -> Ed25519PrivateKey:
    """A fresh Ed25519 TLS key; the seed comes from ``random_bytes`` so tests can fix it."""
    return Ed25519PrivateKey.from_private_bytes(random_bytes(32))


def make_self_signed_certificate(tls_key: Ed25519PrivateKey, node_id: str, *,
                                 random_bytes: Callable[[int], bytes] = nacl.utils.random) -> bytes:
    """Return the DER of a self-signed certificate for ``tls_key`` naming ``node_id``.

    The node ID in the subject is informative (it helps a person reading a packet capture or an
    OpenSSL error); trust comes only from the pinned key.
    """
    if not isinstance(tls_key, Ed25519PrivateKey):
        raise BadCertificate("the TLS key must be an Ed25519 private key")
    node_id = parse_node_id(node_id)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, node_id),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
    ])
    # A positive serial of at most 20 octets (RFC 5280 §4.1.2.2): 152 random bits, top bit set
    # so the encoding length is fixed.
    serial = int.from_bytes(random_bytes(19), "big") | (1 << 151)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(tls_key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    certificate = builder.sign(tls_key, algorithm=None)
    return certificate.public_bytes(serialization.Encoding.DER)


def load_certificate(cert_der: bytes) -> x509.Certificate:
    """Parse a DER certificate, turning every parser failure into :class:`BadCertificate`."""
    if not isinstance(cert_der, bytes | bytearray):
        raise BadCertificate("a certificate must be DER bytes")
    if len(cert_der) > MAX_CERT_BYTES:
        raise BadCertificate(f"certificate larger than {MAX_CERT_BYTES} bytes")
    try:
        return x509.load_der_x509_certificate(bytes(cert_der))
    except ValueError as exc:
        raise BadCertificate(f"not a DER X.509 certificate: {exc}") from exc


def spki_sha256_of_public_key(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the SubjectPublicKeyInfo DER of ``public_key`` (the pin)."""
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def spki_sha256(cert_der: bytes) -> str:
    """The pin of a certificate: hex SHA-256 of its SubjectPublicKeyInfo DER (the key, not the
    cert)."""
    certificate = load_certificate(cert_der)
    try:
        public_key = certificate.public_key()
    except (ValueError, TypeError) as exc:  # unsupported or malformed key
        raise BadCertificate(f"certificate public key cannot be read: {exc}") from exc
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def check_certificate_key(cert_der: bytes) -> str:
    """Check that ``cert_der`` carries an Ed25519 key (our profile); return its pin."""
    certificate = load_certificate(cert_der)
    try:
        public_key = certificate.public_key()
    except (ValueError, TypeError) as exc:
        raise BadCertificate(f"certificate public key cannot be read: {exc}") from exc
    if not isinstance(public_key, Ed25519PublicKey):
        raise BadCertificate("certificate key is not Ed25519, as lienthong certificates are")
    return spki_sha256_of_public_key(public_key)


def check_pin(cert_der: bytes, depth: int, pins: Callable[[str], str | None]) -> str:
    """Return the node ID that ``pins`` maps this certificate's key to, or raise UnknownPeer.

    Meant to be called from a pyOpenSSL verify callback with the DER of the certificate at
    ``depth``. Only depth 0 is ever acceptable: lienthong peers present one self-signed
    certificate, so anything that makes OpenSSL look at an issuer is refused.
    """
    if depth != 0:
        raise UnknownPeer("the peer sent a certificate chain (certificate at depth {depth}); "
                          "lienthong peers present a single self-signed certificate",
                          depth=depth)
    try:
        pin = spki_sha256(cert_der)
    except BadCertificate as exc:
        raise UnknownPeer(f"the peer's certificate cannot be read ({exc})") from exc
    node_id = pins(pin)
    if node_id is None:
        raise UnknownPeer("the peer's TLS key (SPKI SHA-256 {pin}) belongs to no trusted peer "
                          "in the directory; it is unknown, revoked or has rotated its key",
                          pin=pin)
    return node_id


def pem_private_key(tls_key: Ed25519PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of the TLS key, for building the pyOpenSSL context in memory.

    Never write this to disk: at rest the key lives only inside the encrypted keystore.
    """
    return tls_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def pem_certificate(cert_der: bytes) -> bytes:
    """PEM of a DER certificate (as Twisted's ``PrivateCertificate.loadPEM`` wants it)."""
    return load_certificate(cert_der).public_bytes(serialization.Encoding.PEM)
