"""The status API, metrics, status screen and audit verify on real running nodes."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from lienthong.node.cli.main import main
from tests.integration.harness import TestNode, sent_all, wait_for

PORT_FILE = Path("state") / "status.port"


def status_address(node: TestNode) -> str:
    path = node.home / PORT_FILE
    wait_for(path.exists, timeout=10, what=f"{node.name}'s status port file")
    return path.read_text().strip()


def get(node: TestNode, path: str) -> tuple[int, str, dict[str, str]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{status_address(node)}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def raw_request(node: TestNode, request: bytes) -> bytes:
    host, port = status_address(node).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def metrics(node: TestNode) -> dict[str, float]:
    status, text, headers = get(node, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def test_metrics_count_a_delivery_on_both_sides(network) -> None:  # type: ignore[no-untyped-def]
    """After one delivery, /metrics at the sender and the receiver show it, with latency."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    data = "Công văn số 1/VP\n".encode() * 500
    alpha.drop("beta", "cong-van-1.txt", data)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="alpha to hold beta's receipt")
    sent = metrics(alpha)
    assert sent['lienthong_documents_sent_total{peer="beta"}'] == 1
    assert sent['lienthong_document_bytes_sent_total{peer="beta"}'] == len(data)
    assert sent['lienthong_queue_depth{peer="beta"}'] == 0
    assert sent['lienthong_dispatches{state="sent"}'] == 1
    assert sent['lienthong_receipt_latency_seconds_count'] == 1
    assert sent['lienthong_receipt_latency_seconds_bucket{le="+Inf"}'] == 1
    assert 'lienthong_peer_connected{peer="beta"}' in sent
    assert sent["lienthong_uptime_seconds"] > 0
    got = metrics(beta)
    assert got['lienthong_documents_received_total{peer="alpha"}'] == 1
    assert got['lienthong_document_bytes_received_total{peer="alpha"}'] == len(data)

    status, body, headers = get(alpha, "/status")
    snapshot = json.loads(body)
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    assert snapshot["daemon"]["running"] is True and snapshot["node"]["name"] == "alpha"
    assert snapshot["recent_sent"][0]["name"] == "cong-van-1.txt"
    assert snapshot["recent_sent"][0]["recipients"][0]["state"] == "delivered"

    code, output = cli("status", alpha.home, "--json")
    seen = json.loads(output)
    assert code == 0 and seen["daemon"]["running"] is True
    assert seen["daemon"]["status_listen"] == status_address(alpha)
    code, output = cli("status", alpha.home)
    assert code == 0 and "● running" in output and "cong-van-1.txt" in output
    code, output = cli("status", alpha.home, "--check", "--json")
    assert (code, json.loads(output)["health"]) == (0, "ok")  # what a monitoring check sees

    assert alpha.stop() == 0
    assert beta.stop() == 0
    assert not (alpha.home / PORT_FILE).exists()
    code, output = cli("status", alpha.home, "--json")
    down = json.loads(output)
    assert down["daemon"]["running"] is False and down["daemon"]["stopped_cleanly"] is True
    assert cli("status", alpha.home, "--check")[0] == 2  # the daemon is down: critical
    for node in (alpha, beta):
        code, output = cli("audit", "verify", node.home, "--json")
        report = json.loads(output)
        assert code == 0 and report["ok"], report
        assert report["last_signed_seq"] == report["last_seq"] > 0  # the shutdown head
        assert report["receipts"] == 1 and report["files"] == 1


def test_a_waiting_document_and_an_unreachable_peer_show_up(  # type: ignore[no-untyped-def]
        network) -> None:
    """With beta down, alpha's status and metrics show the queue, the link state and why."""
    nodes = network("alpha", "beta")
    alpha = nodes["alpha"]
    alpha.start()
    alpha.drop("beta", "to-trinh.pdf", b"%PDF-1.7\n" * 100)

    def failed_to_connect() -> bool:
        return metrics(alpha).get('lienthong_peer_connect_failures{peer="beta"}', 0) >= 1
    wait_for(failed_to_connect, timeout=30, what="alpha to fail to reach beta")
    values = metrics(alpha)
    assert values['lienthong_queue_depth{peer="beta"}'] == 1
    assert values['lienthong_queue_bytes{peer="beta"}'] == 900
    assert values['lienthong_peer_connected{peer="beta"}'] == 0
    code, output = cli("status", alpha.home, "--json")
    beta = next(p for p in json.loads(output)["peers"] if p["name"] == "beta")
    assert beta["queue"]["oldest"]["name"] == "to-trinh.pdf"
    assert beta["link"] in ("waiting", "connecting") and beta["last_error"]
    alpha.stop()


def test_the_api_refuses_other_hosts_and_methods(network) -> None:  # type: ignore[no-untyped-def]
    """A rebinding Host header gets 403, POST gets 405, an unknown path under /status a JSON
    404 (other addresses belong to the web pages, which answer 404 in HTML)."""
    alpha = network("alpha", "beta")["alpha"]
    alpha.start()
    forbidden = raw_request(alpha, b"GET /status HTTP/1.0\r\nHost: evil.example\r\n\r\n")
    assert forbidden.startswith(b"HTTP/1.0 403") or forbidden.startswith(b"HTTP/1.1 403")
    posted = raw_request(alpha, b"POST /status HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                                b"Content-Length: 0\r\n\r\n")
    assert b" 405 " in posted.split(b"\r\n", 1)[0]
    status, body, _ = get(alpha, "/status/nothing-here")
    assert status == 404 and "error" in json.loads(body)
    status, body, _ = get(alpha, "/nothing-here")
    assert status == 404 and "<html" in body.lower()
    status, body, _ = get(alpha, "/status/live")
    live = json.loads(body)
    assert status == 200 and live["node_id"] == alpha.node_id and "transfers" in live
    alpha.stop()
