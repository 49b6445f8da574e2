"""A snapshot gathered from outside the daemon: a stale port file or another program on the
port means "daemon down"; an unreadable own card is an error of its own."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from lienthong.node.core.errors import NodeError
from lienthong.node.status.gather import OwnCardUnreadable, gather
from tests.node.statushelp import NOW, Office


def test_a_stale_port_file_means_daemon_down(office: Office) -> None:
    """A port file left by a crash, with nothing listening, is reported, not trusted."""
    from tests.integration.harness import free_port
    (office.honest.home / "state" / "status.port").write_text(f"127.0.0.1:{free_port()}\n")
    snap = gather(office.config, now=NOW)
    assert snap["daemon"]["running"] is False and "Nothing answers" in snap["daemon"]["note"]


def test_another_program_on_the_port_is_not_taken_for_the_daemon(office: Office) -> None:
    """Something answering JSON with another node ID is not our daemon."""
    class Impostor(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"node_id": "SOMEONE-ELSE", "peers": {}}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (office.honest.home / "state" / "status.port").write_text(
            f"127.0.0.1:{server.server_address[1]}\n")
        snap = gather(office.config, now=NOW)
    finally:
        server.shutdown()
        server.server_close()
    assert snap["daemon"]["running"] is False and "Something else" in snap["daemon"]["note"]


def test_an_unreadable_own_card_is_a_node_error_with_its_own_code(office: Office) -> None:
    """The CLI's edge prints it as one sentence (tests/node/cli/test_main.py)."""
    office.config.card_path.write_text("damaged", encoding="utf-8")
    with pytest.raises(OwnCardUnreadable, match="cannot read this node's own card") as raised:
        gather(office.config, now=NOW, ask=False)
    assert isinstance(raised.value, NodeError) and raised.value.code == "own-card-unreadable"
