"""The peer test's words: network errors in plain language, only known answers, and what a
clerk does next after a refusal."""
from __future__ import annotations

import pytest

from lienthong.node.delivery.dial_check import DialCheck, plain_network_error


def test_network_errors_are_put_in_plain_words() -> None:
    """What an IT officer saw before ("...111: Connection refused..") becomes a sentence that
    says what to look at; an unknown error is kept as it was."""
    refused = "Connection was refused by other side: 111: Connection refused."
    assert plain_network_error(refused).startswith("the connection was refused: nothing listens")
    assert "firewall" in plain_network_error("User timeout caused connection failure.")
    assert "DNS" in plain_network_error("DNS lookup failed: hdnd.tinh.vn.")
    assert plain_network_error("something new.") == "something new"


def test_a_dial_check_has_one_of_the_known_answers() -> None:
    check = DialCheck(peer="hdnd", node_id="N", address="10.0.0.2:7701", result="unreachable",
                      reason="down")
    assert not check.ok and check.as_json()["result"] == "unreachable"
    with pytest.raises(ValueError):
        DialCheck(peer="hdnd", node_id="N", address="a:1", result="fine", reason="?")


def test_a_final_refusal_says_what_to_do_next() -> None:
    """Issue 20: a failed/ reason names the refusal and the next step, for each kind."""
    from lienthong.node.delivery.outcomes import refusal_reason
    big = refusal_reason("hdnd", "too-large", "5000000 bytes is over this node's limit")
    assert big.startswith("hdnd refused it: 5000000 bytes")
    assert "split it" in big and "max_document_bytes" in big
    other = refusal_reason("hdnd", "bad-envelope", "the header does not parse")
    assert "Tell your IT officer" in other and "outbox again" in other


def test_the_peer_test_lines_are_vietnamese_by_default_and_english_on_request() -> None:
    """``peers test`` words each step and its verdict in the clerk's language; the reasons the
    dial made (a network error in plain words, the impostor's key) are translated too, while
    the English ``reason`` stays what --json and the audit log carry."""
    from lienthong.node.cli.reachability import json_of, render_check
    from lienthong.node.delivery.dial_check import plain_network_phrase
    from lienthong.node.language.text import Phrase
    down = DialCheck(
        peer="hdnd", node_id="N", address="10.0.0.2:7701", result="unreachable",
        reason="no connection", reason_text=Phrase(
            "no connection to {address}: {problem}", address="10.0.0.2:7701",
            problem=plain_network_phrase("Connection was refused by other side: 111.")))
    vi = render_check(down, None, "vi")
    assert "Kết nối TCP" in vi and "chưa tới được" in vi
    assert "KHÔNG liên lạc được: không kết nối được tới 10.0.0.2:7701: kết nối bị từ chối" in vi
    assert "reachable" not in vi and "TCP connection" not in vi
    en = render_check(down, None, "en")
    assert "TCP connection" in en and "→ NOT reachable: no connection to 10.0.0.2:7701: the " \
        "connection was refused" in en
    assert "reason_text" not in down.as_json() and down.as_json()["reason"] == "no connection"
    fine = DialCheck(peer="ubnd", node_id="M", address="a:1", result="ok", reason="answered",
                     tcp_ms=1.5, tls=True, identity="matches the card",
                     identity_text=Phrase("matches the card"), protocol=1, software="x",
                     rtt_ms=2.0)
    failed = {"ok": False, "reason": "no receipt within 5 s",
              "reason_text": Phrase("no receipt within {seconds} s", seconds="5")}
    vi = render_check(fine, failed, "vi")
    assert "✓ Danh tính" in vi and "khớp với thẻ" in vi
    assert "✗ Tin nhắn thử" in vi and "không có biên nhận trong vòng 5 giây" in vi
    assert "→ liên lạc được: answered" in vi  # an English-only reason is shown as it is
    assert json_of(failed) == {"ok": False, "reason": "no receipt within 5 s"}
