"""``lienthong peers test`` against real nodes (issue 20): a running peer, a stopped one and an
impostor (another node answering at this peer's address) get three different, correct
answers; ``--deliver`` gets a signed test message receipted end to end; the status screen
shows "reachable" from the last test or connection."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.integration.harness import NOW, ROOT, wait_for


def _cli(*args: str) -> tuple[int, Any, str]:
    done = subprocess.run([sys.executable, "-m", "lienthong.node", *args], capture_output=True,
                          text=True, cwd=str(ROOT), timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        out = json.loads(done.stdout)
    except ValueError:
        out = done.stdout
    return done.returncode, out, done.stderr


def _peer(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in snapshot["peers"] if p["name"] == name)


def test_a_running_a_stopped_and_an_impostor_peer_get_three_answers(network) -> None:  # type: ignore[no-untyped-def]
    nodes = network("alpha", "beta", "gamma")
    alpha, beta = nodes["alpha"], nodes["beta"]  # gamma is enrolled but never started
    alpha.start()
    beta.start()
    home = ["--home", str(alpha.home)]

    code, out, err = _cli("peers", "test", "beta", "--json", *home)
    assert code == 0, (out, err)
    beta_check = out["peers"][0]
    assert (beta_check["result"], beta_check["tls"], beta_check["identity"],
            beta_check["protocol"]) == ("ok", True, "matches the card", 2)
    assert beta_check["address"] == f"127.0.0.1:{beta.port}"
    assert beta_check["tcp_ms"] is not None and beta_check["rtt_ms"] is not None

    code, out, err = _cli("peers", "test", "gamma", "--json", *home)
    assert code == 1, (out, err)
    stopped = out["peers"][0]
    assert (stopped["result"], stopped["tcp_ms"], stopped["tls"]) == ("unreachable", None, None)
    # In words, not errno 111 (ECONNREFUSED); the port named in the reason may contain "111".
    assert "nothing listens" in stopped["reason"]
    assert "111" not in stopped["reason"].replace(stopped["address"], ""), stopped["reason"]

    # The impostor: gamma's card, but beta answers at the address.
    alpha.query("update_peer_addresses", "gamma", [f"127.0.0.1:{beta.port}"], NOW)
    code, out, err = _cli("peers", "test", "gamma", "--json", *home)
    assert code == 1, (out, err)
    impostor = out["peers"][0]
    assert impostor["result"] == "wrong-identity", impostor
    assert impostor["tcp_ms"] is not None and "beta" in impostor["identity"]
    assert "not gamma" in impostor["reason"]

    # People read the same three answers in words; the exit code tells scripts.
    done = subprocess.run([sys.executable, "-m", "lienthong.node", "peers", "test", *home],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 1
    assert "→ reachable" in done.stdout and "→ NOT reachable" in done.stdout
    assert "Traceback" not in done.stderr
    # ... and in Vietnamese, the default language, the reasons the dial made included.
    done = subprocess.run([sys.executable, "-m", "lienthong.node", "--lang", "vi", "peers",
                           "test", *home], capture_output=True, text=True, cwd=str(ROOT),
                          timeout=180, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 1
    assert "→ liên lạc được" in done.stdout and "→ KHÔNG liên lạc được" in done.stdout
    assert "Bắt tay TLS 1.3" in done.stdout and "không phải gamma" in done.stdout

    code, snapshot, err = _cli("status", "--json", *home)
    assert _peer(snapshot, "beta")["reachable"]["reachable"] is True
    assert _peer(snapshot, "gamma")["reachable"] == {
        "reachable": False, "at": _peer(snapshot, "gamma")["reachable"]["at"], "source": "test",
        "reason": _peer(snapshot, "gamma")["reachable"]["reason"]}
    assert "not gamma" in _peer(snapshot, "gamma")["reachable"]["reason"]


def test_deliver_sends_a_test_message_and_waits_for_its_receipt(network) -> None:  # type: ignore[no-untyped-def]
    nodes = network("alpha", "beta", groups={"alpha": {"everyone": ["beta"]}})
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    # Enrolled without 'peers add' (no folder made then): the node makes the clerks' folders.
    wait_for(lambda: (alpha.outbox / "beta").is_dir() and (alpha.outbox / "everyone").is_dir(),
             timeout=10, what="outbox/beta/ and outbox/everyone/ at alpha")
    code, out, err = _cli("peers", "test", "beta", "--deliver", "--json", "--home",
                          str(alpha.home))
    assert code == 0, (out, err)
    delivered = out["peers"][0]["deliver"]
    assert delivered["ok"] is True and delivered["seconds"] >= 0
    assert abs(delivered["clock_difference_seconds"]) < 5
    messages = [p for p in (beta.inbox / "alpha").iterdir() if p.name.endswith("message.txt")]
    assert len(messages) == 1
    # Beta never dialled alpha (it had nothing to send), yet it has seen alpha.
    code, snapshot, err = _cli("status", "--json", "--home", str(beta.home))
    assert _peer(snapshot, "alpha")["last_seen_at"] is not None
    assert _peer(snapshot, "alpha")["reachable"]["source"] == "connection"


def test_deliver_without_the_running_node_says_so_at_once(network) -> None:  # type: ignore[no-untyped-def]
    """--deliver needs the node's outbox and links: with the daemon down the command refuses in
    a sentence instead of waiting for a receipt that cannot come, and leaves nothing queued."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    code, out, err = _cli("peers", "test", "beta", "--deliver", "--home", str(alpha.home))
    assert code == 2 and "not running" in err and "lienthong run" in err
    assert not any(p.is_file() for p in alpha.outbox.rglob("*"))


def test_a_node_nobody_enrolled_at_the_address_is_named_an_impostor(network) -> None:  # type: ignore[no-untyped-def]
    """A node whose key no enrolled office has answers at beta's address: the handshake is
    refused on our side, and the answer says the key is unknown, not that beta is down."""
    alpha = network("alpha", "beta")["alpha"]
    mallory = network("mallory", enrol=False)["mallory"]
    mallory.start()
    alpha.query("update_peer_addresses", "beta", [f"127.0.0.1:{mallory.port}"], NOW)
    code, out, err = _cli("peers", "test", "beta", "--json", "--home", str(alpha.home))
    assert code == 1, (out, err)
    check = out["peers"][0]
    assert (check["result"], check["tls"]) == ("wrong-identity", False), check
    assert check["identity"] == "a key no enrolled office has"
    assert "is not beta" in check["reason"]
