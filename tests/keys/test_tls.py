"""TLS certificate profile and key pinning."""
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from lienthong.keys import tls
from lienthong.keys.errors import BadCertificate, BadNodeID, UnknownPeer
from lienthong.keys.nodeid import node_id_from_public_key

NODE_ID = node_id_from_public_key(bytes(32))


def _rng(seed: bytes):
    """Deterministic random_bytes for reproducible keys."""
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture()
def tls_key():
    return tls.generate_tls_key(random_bytes=_rng(b"tls"))


def test_certificate_profile(tls_key):
    """The certificate is X.509 v3, self-issued for the node ID, CA:FALSE, Ed25519-signed."""
    cert = x509.load_der_x509_certificate(tls.make_self_signed_certificate(tls_key, NODE_ID))
    assert cert.version == x509.Version.v3
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE_ID
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "lienthong"
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    assert isinstance(cert.public_key(), Ed25519PublicKey)
    cert.verify_directly_issued_by(cert)  # the self-signature is valid
    assert 0 < cert.serial_number < 2 ** 159


def test_validity_dates_never_expire(tls_key):
    """notBefore is 2000-01-01 and notAfter 9999-12-31 23:59:59 UTC (clock skew never matters)."""
    cert = x509.load_der_x509_certificate(tls.make_self_signed_certificate(tls_key, NODE_ID))
    utc = datetime.UTC
    assert cert.not_valid_before_utc == datetime.datetime(2000, 1, 1, tzinfo=utc)
    assert cert.not_valid_after_utc == datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=utc)


def test_node_id_is_checked(tls_key):
    """A malformed node ID is refused, and a lowercase one is written canonically."""
    with pytest.raises(BadNodeID):
        tls.make_self_signed_certificate(tls_key, "not-a-node-id")
    cert = x509.load_der_x509_certificate(
        tls.make_self_signed_certificate(tls_key, NODE_ID.lower()))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE_ID


def test_pin_is_the_key_not_the_certificate(tls_key):
    """Re-issuing a certificate for the same key gives new bytes but the same pin."""
    first = tls.make_self_signed_certificate(tls_key, NODE_ID, random_bytes=_rng(b"a"))
    second = tls.make_self_signed_certificate(tls_key, NODE_ID, random_bytes=_rng(b"b"))
    assert first != second
    assert tls.spki_sha256(first) == tls.spki_sha256(second)
    spki = tls_key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert tls.spki_sha256(first) == hashlib.sha256(spki).hexdigest()
    assert tls.spki_sha256_of_public_key(tls_key.public_key()) == tls.spki_sha256(first)


def test_another_key_has_another_pin(tls_key):
    """Two keys never share a pin."""
    other = tls.generate_tls_key(random_bytes=_rng(b"other"))
    a = tls.spki_sha256(tls.make_self_signed_certificate(tls_key, NODE_ID))
    b = tls.spki_sha256(tls.make_self_signed_certificate(other, NODE_ID))
    assert a != b


def test_check_pin_accepts_known_key_at_depth_zero(tls_key):
    """A depth-0 certificate whose pin the directory knows yields that node's ID."""
    cert = tls.make_self_signed_certificate(tls_key, NODE_ID)
    pins = {tls.spki_sha256(cert): "NODE-A"}
    assert tls.check_pin(cert, 0, pins.get) == "NODE-A"


def test_check_pin_refuses_unknown_key(tls_key):
    """A certificate whose pin maps to no trusted peer is refused with its pin in the message."""
    cert = tls.make_self_signed_certificate(tls_key, NODE_ID)
    with pytest.raises(UnknownPeer, match=tls.spki_sha256(cert)):
        tls.check_pin(cert, 0, {}.get)


def test_check_pin_refuses_depth_one_even_if_known(tls_key):
    """Any certificate above depth 0 is refused, even one whose pin is trusted."""
    cert = tls.make_self_signed_certificate(tls_key, NODE_ID)
    pins = {tls.spki_sha256(cert): "NODE-A"}
    with pytest.raises(UnknownPeer, match="chain"):
        tls.check_pin(cert, 1, pins.get)


def test_check_pin_refuses_garbage():
    """Bytes that are not a certificate are an UnknownPeer, not a crash."""
    with pytest.raises(UnknownPeer):
        tls.check_pin(b"\x30\x03\x02\x01\x00", 0, lambda pin: "NODE-A")


def test_garbage_and_oversize_certificates_refused():
    """spki_sha256 raises BadCertificate for non-DER and oversize input."""
    for bad in (b"", b"not a cert", b"\x30" * (tls.MAX_CERT_BYTES + 1), "text"):
        with pytest.raises(BadCertificate):
            tls.spki_sha256(bad)


def test_check_certificate_key_requires_ed25519():
    """A certificate with an ECDSA key is outside our profile."""
    key = generate_private_key(SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(tls.NOT_BEFORE).not_valid_after(tls.NOT_AFTER)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    tls.spki_sha256(der)  # a pin can still be computed...
    with pytest.raises(BadCertificate, match="Ed25519"):
        tls.check_certificate_key(der)  # ...but it is not a lienthong certificate


def test_pem_helpers_round_trip(tls_key):
    """The PEM key and certificate load back to the same key and certificate."""
    der = tls.make_self_signed_certificate(tls_key, NODE_ID)
    key_pem = tls.pem_private_key(tls_key)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(key_pem, password=None)
    assert tls.spki_sha256_of_public_key(loaded.public_key()) == tls.spki_sha256(der)
    cert_pem = tls.pem_certificate(der)
    assert x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER) == der


def test_generation_is_reproducible_from_injected_randomness():
    """The same random source gives the same key and certificate bytes."""
    key_a = tls.generate_tls_key(random_bytes=_rng(b"same"))
    key_b = tls.generate_tls_key(random_bytes=_rng(b"same"))
    assert (tls.make_self_signed_certificate(key_a, NODE_ID, random_bytes=_rng(b"s"))
            == tls.make_self_signed_certificate(key_b, NODE_ID, random_bytes=_rng(b"s")))
