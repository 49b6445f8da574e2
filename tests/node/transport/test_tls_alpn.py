"""ALPN picks the wire protocol version: the newest both sides speak, none of ours no deal.
(Real handshakes on loopback: tests/integration/test_tls_refusals.py and
test_envelope_versions.py.)"""
from __future__ import annotations

import pytest
from OpenSSL import SSL

from lienthong.keys.tls import generate_tls_key, make_self_signed_certificate
from lienthong.node.transport.tls import PinnedContextFactory, negotiated_protocol
from tests.vectors.make_vectors import party


def _factory(max_protocol: int = 2) -> PinnedContextFactory:
    key = generate_tls_key()
    return PinnedContextFactory(tls_key=key, lookup=lambda pin: None,
                                certificate_der_bytes=make_self_signed_certificate(
                                    key, party("alpn").node_id), max_protocol=max_protocol)


def test_the_listener_picks_the_newest_protocol_both_speak() -> None:
    select = _factory()._select_alpn
    assert select(None, [b"lienthong/1", b"lienthong/2"]) == b"lienthong/2"  # type: ignore[arg-type]
    assert select(None, [b"lienthong/1"]) == b"lienthong/1"  # type: ignore[arg-type]
    assert select(None, [b"h2", b"http/1.1"]) is SSL.NO_OVERLAPPING_PROTOCOLS  # type: ignore[arg-type]
    held = _factory(max_protocol=1)._select_alpn
    assert held(None, [b"lienthong/2", b"lienthong/1"]) == b"lienthong/1"  # type: ignore[arg-type]
    assert held(None, [b"lienthong/2"]) is SSL.NO_OVERLAPPING_PROTOCOLS  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _factory(max_protocol=3)


class _Handle:
    def __init__(self, chosen: bytes) -> None:
        self.chosen = chosen

    def get_alpn_proto_negotiated(self) -> bytes:
        return self.chosen


class _Transport:
    def __init__(self, chosen: bytes) -> None:
        self._handle = _Handle(chosen)

    def getHandle(self) -> _Handle:  # noqa: N802 - Twisted's name
        return self._handle


def test_the_negotiated_protocol_is_read_from_the_connection() -> None:
    assert negotiated_protocol(_Transport(b"lienthong/2")) == 2
    assert negotiated_protocol(_Transport(b"lienthong/1")) == 1
    assert negotiated_protocol(_Transport(b"")) is None
    assert negotiated_protocol(_Transport(b"h2")) is None
    assert negotiated_protocol(object()) is None
