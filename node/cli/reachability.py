"""What ``lienthong peers test`` does besides dialling: run the dials on a reactor, send the
optional test message and wait for its receipt, record the results, and word them.

Why the CLI dials itself, with the node's own TLS key, rather than asking the running daemon:
the daemon's local API is read-only by design (node/status/api.py: GET only, nothing changed
by a request, so a browser pointed at loopback can do no harm), and a test that needs the
daemon could not tell "the peer is down" from "our daemon is down". The CLI opens the
keystore the way ``lienthong run`` does (docs/operations.md §2) and makes the very connection
a link makes (node/delivery/dial_check.py). ``--deliver`` is the exception: a signed, receipted
message needs the running node's outbox, spool and links, so it goes through them, exactly as
a clerk's document does, and the CLI watches the store for its receipt.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure

from lienthong.config.schema import NodeConfig
from lienthong.keys.directory import Directory
from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys, parse_time
from lienthong.node.cli.documents import write_message
from lienthong.node.delivery.dial_check import DialCheck, dial_peer
from lienthong.node.documents.metadata import SIDECAR_SUFFIX
from lienthong.node.store.database import open_store
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import verify_receipt

#: The test message's text: the other office's clerks see it in their inbox.
TEST_MESSAGE = ("Tin nhắn thử kết nối từ {office} (lienthong peers test --deliver), lúc {time}. "
                "Không cần xử lý. / A connection test from {office}; nothing to do.")


def dial_all(node_keys: NodeKeys, directory: Directory, names: Sequence[str], *,
             timeout: float) -> list[DialCheck]:
    """Dial every peer in ``names`` at once on the (global) reactor; one result each."""
    from twisted.internet import reactor

    outcome: list[Any] = []

    def start() -> None:
        d: Deferred[list[DialCheck]] = gatherResults(
            [dial_peer(reactor, node_keys, directory, name, timeout=timeout) for name in names],
            consumeErrors=True)

        def stop(result: object) -> None:
            outcome.append(result)
            reactor.stop()
        d.addBoth(stop)

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)  # type: ignore[call-arg]
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return list(outcome[0])


def deliver_test_messages(config: NodeConfig, peers: Sequence[str], *, timeout: float,
                          progress: Callable[[str], object] | None) -> dict[str, dict[str, Any]]:
    """Put one test message for each peer into its outbox folder and wait until the running
    node has its receipt (or ``timeout`` passes); for each peer: ok, seconds, the clock
    difference read from the receipt's signed time, or the reason it failed."""
    placed = {}
    started = time.time()
    for peer in peers:
        text = TEST_MESSAGE.format(office=config.node.name,
                                   time=time.strftime("%Y-%m-%d %H:%M:%S"))
        placed[peer] = write_message(config, [peer], text, now=started)
    if progress is not None and placed:
        progress(f"Sent a test message to {', '.join(placed)}; waiting up to {timeout:g} s "
                 "for the receipts...")
    results: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(results) < len(placed) and time.monotonic() < deadline:
        store = open_store(config.store.url)
        try:
            directory = store.directory()
            recent = store.recent_dispatches(50 + 2 * len(placed))
        finally:
            store.close()
        for peer, path in placed.items():
            if peer in results:
                continue
            row = next((r for r in recent if r.name == path.name and r.target == peer), None)
            if row is None:
                continue
            delivery = row.deliveries[0]
            if delivery.state == "failed":
                results[peer] = {"ok": False, "reason": f"the test message failed: "
                                                        f"{delivery.last_error}"}
            elif delivery.state == "delivered" and delivery.receipt:
                results[peer] = _receipted(directory, delivery.peer_node_id, delivery.receipt,
                                           started)
        if len(results) < len(placed):
            time.sleep(0.2)
    for peer, path in placed.items():
        if peer not in results:
            taken = not path.exists()
            _withdraw(path)
            results[peer] = {"ok": False, "reason": (
                f"no receipt within {timeout:g} s" + ("" if taken else
                                                      ": the node did not take the message from "
                                                      "the outbox. Is it running? (lienthong "
                                                      "status)"))}
    return results


def _receipted(directory: Directory, node_id: str, token: str,
               started: float) -> dict[str, Any]:
    """A receipt the node recorded, checked again here before its time is shown."""
    try:
        info = verify_receipt(token, directory.verify_key_for(node_id), recipient=node_id)
    except (ProtocolError, KeysError) as exc:
        return {"ok": False, "reason": f"the receipt does not verify: {exc}"}
    seen = time.time()
    return {"ok": True, "seconds": round(seen - started, 2), "receipt_time": info.time,
            # The peer signed its time just before the receipt came back, and this poll sees
            # it within a fraction of a second: the difference is its clock's offset, to about
            # a second (the receipt's time is in whole seconds or milliseconds).
            "clock_difference_seconds": round(parse_time(info.time).timestamp() - seen, 1)}


def _withdraw(path: Path) -> None:
    """Take a test message that was never taken back out of the outbox (not sent later)."""
    for leftover in (path, path.with_name(path.name + SIDECAR_SUFFIX)):
        try:
            leftover.unlink()
        except OSError:
            pass


def record_results(config: NodeConfig, checks: Sequence[DialCheck],
                   deliveries: dict[str, dict[str, Any]], *, now: str) -> None:
    """Audit each test (``peer-tested``) and, for a peer that answered, note it as seen: the
    status screen's "reachable" is the newer of the last test and the last connection."""
    store = open_store(config.store.url)
    try:
        with store.transaction():
            for check in checks:
                detail: dict[str, Any] = {"result": check.result, "address": check.address,
                                          "reason": check.reason, "rtt_ms": check.rtt_ms}
                if check.peer in deliveries:
                    detail["delivered"] = deliveries[check.peer]["ok"]
                store.append_audit("peer-tested", now, peer=check.node_id, detail=detail)
                if check.ok:
                    store.record_seen(check.node_id, now)
    finally:
        store.close()


def _line(ok: bool | None, what: str, detail: str) -> str:
    mark = "✓" if ok else ("✗" if ok is False else "·")
    return f"  {mark} {what:<18} {detail}"


def render_check(check: DialCheck, delivery: dict[str, Any] | None) -> str:
    """One peer's answer, a line per step, in the order they were tried."""
    lines = [f"{check.peer}  ({check.address})"]
    lines.append(_line(check.tcp_ms is not None, "TCP connection",
                       f"{check.tcp_ms:g} ms" if check.tcp_ms is not None else "not reached"))
    lines.append(_line(check.tls, "TLS 1.3 handshake",
                       "done" if check.tls else ("refused" if check.tls is False
                                                 else "not reached")))
    lines.append(_line(check.identity == "matches the card" if check.identity else None,
                       "identity", check.identity or "not checked"))
    lines.append(_line(check.protocol is not None or None, "protocol",
                       f"version {check.protocol} ({check.software})"
                       if check.protocol is not None else "no greeting"))
    lines.append(_line(check.rtt_ms is not None or None, "round trip",
                       f"{check.rtt_ms:g} ms" if check.rtt_ms is not None else "not measured"))
    if delivery is not None:
        if delivery["ok"]:
            lines.append(_line(True, "test message",
                               f"delivered and receipted in {delivery['seconds']:g} s"))
            lines.append(_line(True, "clock difference",
                               f"about {delivery['clock_difference_seconds']:+g} s "
                               "(from the receipt's signed time)"))
        else:
            lines.append(_line(False, "test message", delivery["reason"]))
    elif check.ok:
        lines.append(_line(None, "clock difference", "measured with --deliver"))
    verdict = "reachable" if check.ok else "NOT reachable"
    lines.append(f"  → {verdict}: {check.reason}")
    return "\n".join(lines)
