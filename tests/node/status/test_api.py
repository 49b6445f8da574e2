"""The status API's hardening: inert JSON and the loopback Host check."""
from __future__ import annotations

import json

from lienthong.node.status.api import host_name, to_json


def test_status_json_is_inert_in_a_browser() -> None:
    """The API's JSON has no raw <, > or & and no non-ASCII characters."""
    body = to_json({"name": "<script>alert(1)</script> & Tờ trình\u202e"})
    assert b"<" not in body and b">" not in body and b"&" not in body
    assert json.loads(body)["name"] == "<script>alert(1)</script> & Tờ trình\u202e"
    assert max(body) < 128


def test_host_header_parsing_for_the_loopback_check() -> None:
    """Host headers are reduced to their host: a rebinding name is not loopback."""
    assert host_name(b"127.0.0.1:8080") == "127.0.0.1"
    assert host_name(b"[::1]:80") == "[::1]"
    assert host_name(b"LOCALHOST") == "localhost"
    assert host_name(b"evil.example:80") == "evil.example"
    assert host_name(None) is None
