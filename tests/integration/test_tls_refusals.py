"""Whoever is not a trusted peer is refused at the TLS handshake, before the node says a word."""
from __future__ import annotations

import socket
import ssl
from pathlib import Path

from lienthong.keys.card import read_card
from lienthong.keys.tls import (
    generate_tls_key,
    make_self_signed_certificate,
    pem_certificate,
    pem_private_key,
    spki_sha256,
)
from tests.integration.harness import TestNode, enrol_peer, wait_for


def refused_pins(node: TestNode) -> list[str]:
    return [entry.detail.get("pin") for entry in node.query("audit_entries",
                                                            kind="security-refused")]


def test_unenrolled_sender_is_refused_and_keeps_its_document_queued(network) -> None:  # type: ignore[no-untyped-def]
    """A node the receiver never enrolled cannot deliver: refused, audited, and left queued."""
    nodes = network("beta", "mallory", enrol=False)
    beta, mallory = nodes["beta"], nodes["mallory"]
    enrol_peer(mallory, beta)  # mallory knows beta; beta does not know mallory
    beta.start()
    mallory.start()
    mallory.drop("beta", "thu-nac-danh.txt", b"not for you\n" * 100)
    wait_for(lambda: mallory.query("schedule_for", beta.node_id).failures >= 2, timeout=30,
             what="mallory to fail twice")
    mallory_pin = read_card(mallory.card_path.read_text()).tls_spki_sha256
    assert mallory_pin in refused_pins(beta)
    assert not (beta.inbox / "mallory").exists()
    assert [p for p in (beta.home / "inbox").rglob("*")] == []
    assert [p for p in (beta.home / "tmp").rglob("*") if p.is_file()] == []
    assert "received" not in beta.audit_kinds()
    (dispatch,) = mallory.query("recent_dispatches", 5)
    assert dispatch.state == "sending"
    assert [d.state for d in dispatch.deliveries] == ["queued"]
    assert (Path(dispatch.spool_dir) / "payload").exists()
    assert mallory.query("schedule_for", beta.node_id).last_error
    assert "cannot reach beta" in mallory.log_text()
    assert beta.process is not None and beta.process.poll() is None


def _client_context(*, maximum: ssl.TLSVersion | None = None,
                    minimum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.maximum_version = maximum
    if minimum is not None:
        context.minimum_version = minimum
    return context


def _first_bytes(node: TestNode, context: ssl.SSLContext) -> tuple[bytes, Exception | None]:
    """Connect, handshake and read: what (if anything) the node sends, and how it ended."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                tls.do_handshake()  # in TLS 1.3 the client finishes before the server checks it
                return tls.recv(4096), None
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            return b"", exc


def test_tls_clients_without_a_trusted_key_get_no_application_data(network, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TLS 1.2, TLS 1.3 without a certificate, and an unknown certificate are all refused."""
    beta = network("beta")["beta"]
    beta.start()

    data, error = _first_bytes(beta, _client_context(maximum=ssl.TLSVersion.TLSv1_2))
    assert data == b"" and isinstance(error, ssl.SSLError), error

    data, error = _first_bytes(beta, _client_context(minimum=ssl.TLSVersion.TLSv1_3))
    assert data == b"", "the node sent application data to a client without a certificate"
    assert isinstance(error, ssl.SSLError) and "CERTIFICATE_REQUIRED" in str(error), error

    key = generate_tls_key()
    cert_der = make_self_signed_certificate(key, beta.node_id)  # even claiming beta's own ID
    (tmp_path / "key.pem").write_bytes(pem_private_key(key))
    (tmp_path / "cert.pem").write_bytes(pem_certificate(cert_der))
    impostor = _client_context(minimum=ssl.TLSVersion.TLSv1_3)
    impostor.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    data, error = _first_bytes(beta, impostor)
    assert data == b"", "the node sent application data to an unknown certificate"
    assert isinstance(error, ssl.SSLError), error
    wait_for(lambda: spki_sha256(cert_der) in refused_pins(beta), timeout=10,
             what="beta to audit the refused certificate")
    assert beta.process is not None and beta.process.poll() is None
