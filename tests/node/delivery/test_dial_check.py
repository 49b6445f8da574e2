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
