"""Network faults between two real nodes, through a fault proxy on loopback (tests/faults/proxy.py).

The sender dials the proxy (its directory entry for the receiver points there), so every byte
it writes is counted. After a fault the sender must notice (within the idle timeout), dial
again, and resume a large transfer from the offset the receiver holds: the tests assert on the
bytes actually sent again, so a silent restart from zero fails them even if the document
arrives. Every scenario ends with the shared checker.
"""
from __future__ import annotations

import re

from tests.faults.proxy import FaultProxy, HalfOpen, Reset, Stall, Throttle
from tests.integration.harness import (
    NOW,
    TestNode,
    check_delivered,
    sent_all,
    wait_for,
    write_large_file,
)

MIB = 1024 * 1024
IDLE = 5  # seconds; the receiver drops a silent connection after this, the sender should too
SETTINGS = {"idle_timeout = 300": f"idle_timeout = {IDLE}"}
#: How long a fault may take to be noticed and repaired: a few idle timeouts (a PING and its
#: missing PONG included) and the rest of the transfer.
REPAIR = 4 * IDLE
#: TLS records, frame headers, OFFERs and handshakes: what a clean transfer costs beyond the
#: ciphertext itself (measured: well under 0.5 %).
OVERHEAD = 64 * 1024


def _through_proxy(network, proxies, tmp_path, size: int, **proxy_args):  # type: ignore[no-untyped-def]
    nodes = network("alpha", "beta", settings=SETTINGS)
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    proxy = proxies(beta, **proxy_args)
    alpha.query("update_peer_addresses", "beta", [proxy.address], NOW)
    alpha.start()
    original = tmp_path / "original.bin"
    write_large_file(original, size)
    alpha.drop("beta", "ban-do.bin", original.read_bytes())
    return alpha, beta, proxy, original


def _deliver_and_check(alpha: TestNode, beta: TestNode, original, what: str) -> int:  # type: ignore[no-untyped-def]
    wait_for(lambda: sent_all(alpha, 1), timeout=REPAIR + 10, what=what, interval=0.2)
    check_delivered(alpha, [beta], {"ban-do.bin": original})
    (row,) = alpha.query("recent_dispatches", 1)
    return row.ciphertext_size


def _resumed_at(alpha: TestNode) -> int:
    found = re.findall(r"resuming 'ban-do.bin' to beta at byte (\d+)", alpha.log_text())
    assert found, "the sender never resumed the transfer (it restarted from zero, or not at all)"
    return int(found[-1])


def _resent(proxy: FaultProxy, ciphertext_size: int) -> int:
    """Ciphertext bytes the sender put on the wire more than once (protocol overhead aside)."""
    return max(0, proxy.bytes_up - ciphertext_size)


def test_reset_mid_transfer_resumes_from_receiver_offset(network, proxies, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A connection reset at 5 MiB of 8: the sender redials and sends only what beta lacks."""
    cut = 5 * MIB
    alpha, beta, proxy, original = _through_proxy(network, proxies, tmp_path, 8 * MIB,
                                                  plan=[Reset(after=cut)])
    size = _deliver_and_check(alpha, beta, original, "delivery after a reset")
    first, second = proxy.connections[0], proxy.connections[-1]
    assert first.faulted.is_set() and len(proxy.connections) >= 2
    offset = _resumed_at(alpha)
    assert 0 < offset <= cut
    assert second.up < size - offset + OVERHEAD, "the second connection sent more than the rest"
    assert _resent(proxy, size) < cut, "as many bytes were sent again as before the reset"


def test_stall_times_out_and_resumes(network, proxies, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A black hole at 3 MiB (socket open, no bytes): the sender gives up, redials, resumes."""
    cut = 3 * MIB
    alpha, beta, proxy, original = _through_proxy(network, proxies, tmp_path, 6 * MIB,
                                                  plan=[Stall(after=cut)])
    size = _deliver_and_check(alpha, beta, original,
                              f"the sender to notice a stalled connection within {REPAIR} s "
                              "and resume (SenderProtocol has no idle/progress timeout)")
    assert len(proxy.connections) >= 2
    assert _resumed_at(alpha) > 0
    assert _resent(proxy, size) < cut


def test_throttled_link_delivers_without_false_timeouts(network, proxies, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """At 1.5 MiB/s a 6 MiB transfer outlasts the idle timeout; it completes on one connection."""
    alpha, beta, proxy, original = _through_proxy(network, proxies, tmp_path, 6 * MIB,
                                                  default=Throttle(rate=3 * MIB // 2))
    size = _deliver_and_check(alpha, beta, original, "a throttled delivery")
    assert len(proxy.connections) == 1
    assert _resent(proxy, size) < OVERHEAD


def test_half_open_connection_is_detected(network, proxies, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Replies vanish after 3 MiB and the close never arrives: the sender must notice, redial,
    and get the receipt beta kept (HAVE) without sending the document again."""
    alpha, beta, proxy, original = _through_proxy(network, proxies, tmp_path, 6 * MIB,
                                                  plan=[HalfOpen(after=3 * MIB)])
    size = _deliver_and_check(alpha, beta, original,
                              f"the sender to notice a half-open connection within {REPAIR} s "
                              "(no receipt ever arrives; SenderProtocol has no timeout)")
    assert len(proxy.connections) >= 2
    assert _resent(proxy, size) < OVERHEAD
    assert "duplicate" in beta.audit_kinds()
