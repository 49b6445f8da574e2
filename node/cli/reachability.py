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
from lienthong.node.delivery.dial_check import MATCHES_CARD, DialCheck, dial_peer
from lienthong.node.documents.metadata import SIDECAR_SUFFIX
from lienthong.node.language.text import Phrase, shown
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
                          progress: Callable[[str], object] | None,
                          language: str = "en") -> dict[str, dict[str, Any]]:
    """Put one test message for each peer into its outbox folder and wait until the running
    node has its receipt (or ``timeout`` passes); for each peer: ok, seconds, the clock
    difference read from the receipt's signed time, or the reason it failed (``reason`` in
    English for ``--json``, ``reason_text`` to be said in the clerk's language; progress is
    said in ``language``)."""
    placed = {}
    started = time.time()
    for peer in peers:
        text = TEST_MESSAGE.format(office=config.node.name,
                                   time=time.strftime("%Y-%m-%d %H:%M:%S"))
        placed[peer] = write_message(config, [peer], text, now=started)
    if progress is not None and placed:
        progress(Phrase("Sent a test message to {peers}; waiting up to {seconds} s for the "
                        "receipts...", peers=", ".join(placed), seconds=f"{timeout:g}"
                        ).in_language(language))
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
                results[peer] = _failed(Phrase("the test message failed: {problem}",
                                               problem=delivery.last_error or ""))
            elif delivery.state == "delivered" and delivery.receipt:
                results[peer] = _receipted(directory, delivery.peer_node_id, delivery.receipt,
                                           started)
        if len(results) < len(placed):
            time.sleep(0.2)
    for peer, path in placed.items():
        if peer not in results:
            taken = not path.exists()
            _withdraw(path)
            results[peer] = _failed(
                Phrase("no receipt within {seconds} s", seconds=f"{timeout:g}") if taken else
                Phrase("no receipt within {seconds} s: the node did not take the message from "
                       "the outbox. Is it running? (lienthong status)", seconds=f"{timeout:g}"))
    return results


def _failed(reason: Phrase) -> dict[str, Any]:
    """A failed delivery test: ``reason`` in English (``--json``, the audit log) and as the
    phrase the clerk reads (``reason_text``, left out of ``--json`` by ``json_of``)."""
    return {"ok": False, "reason": str(reason), "reason_text": reason}


def json_of(delivery: dict[str, Any] | None) -> dict[str, Any] | None:
    """A delivery test's result as ``--json`` shows it (the English reason only)."""
    if delivery is None:
        return None
    return {key: value for key, value in delivery.items() if key != "reason_text"}


def _receipted(directory: Directory, node_id: str, token: str,
               started: float) -> dict[str, Any]:
    """A receipt the node recorded, checked again here before its time is shown."""
    try:
        info = verify_receipt(token, directory.verify_key_for(node_id), recipient=node_id)
    except (ProtocolError, KeysError) as exc:
        return _failed(Phrase("the receipt does not verify: {problem}", problem=exc))
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
    return f"  {mark} {what:<22} {detail}"


def render_check(check: DialCheck, delivery: dict[str, Any] | None,
                 language: str = "en") -> str:
    """One peer's answer, a line per step, in the order they were tried, in ``language``."""
    def _(message: str, /, **fields: Any) -> str:
        # ``message`` said in ``language``; named _ so that Babel extracts each msgid here
        return Phrase(message, **fields).in_language(language)

    def said(text: Phrase | str | None, fallback: str = "") -> str:
        return shown(text, language) if text is not None else fallback

    lines = [f"{check.peer}  ({check.address})"]
    lines.append(_line(check.tcp_ms is not None, _("TCP connection"),
                       _("{ms} ms", ms=f"{check.tcp_ms:g}") if check.tcp_ms is not None
                       else _("not reached")))
    lines.append(_line(check.tls, _("TLS 1.3 handshake"),
                       _("done") if check.tls else (_("refused") if check.tls is False
                                                      else _("not reached"))))
    lines.append(_line(check.identity == str(Phrase(MATCHES_CARD)) if check.identity else None,
                       _("identity"),
                       said(check.identity_text or check.identity, _("not checked"))))
    lines.append(_line(check.protocol is not None or None, _("protocol"),
                       _("version {version} ({software})", version=check.protocol,
                           software=check.software)
                       if check.protocol is not None else _("no greeting")))
    lines.append(_line(check.rtt_ms is not None or None, _("round trip"),
                       _("{ms} ms", ms=f"{check.rtt_ms:g}") if check.rtt_ms is not None
                       else _("not measured")))
    if delivery is not None:
        if delivery["ok"]:
            lines.append(_line(True, _("test message"),
                               _("delivered and receipted in {seconds} s",
                                   seconds=f"{delivery['seconds']:g}")))
            lines.append(_line(True, _("clock difference"),
                               _("about {seconds} s (from the receipt's signed time)",
                                   seconds=f"{delivery['clock_difference_seconds']:+g}")))
        else:
            lines.append(_line(False, _("test message"),
                               said(delivery.get("reason_text") or delivery["reason"])))
    elif check.ok:
        lines.append(_line(None, _("clock difference"), _("measured with --deliver")))
    reason = said(check.reason_text or check.reason)
    lines.append("  → " + (_("reachable: {reason}", reason=reason) if check.ok
                           else _("NOT reachable: {reason}", reason=reason)))
    return "\n".join(lines)
