"""Clocks that disagree, and a clock that steps backwards: delivery must not depend on time.

Each node is a separate process, so each gets its own fake clock from libfaketime
(``apt-get install faketime``; LD_PRELOAD with ``FAKETIME``), which moves ``time.time()`` and
``datetime.now()``, as a misconfigured office PC would. A step is made mid-run by rewriting a
``FAKETIME_TIMESTAMP_FILE`` (re-read every second), as an NTP step would do to a running node:
the wall clock jumps, CLOCK_MONOTONIC does not (``FAKETIME_DONT_FAKE_MONOTONIC=1``). The node's
timers run on CLOCK_MONOTONIC and its timestamps on the wall clock (node/core/clock.py), so a step
neither holds a pending timer back nor fires one early.
"""
from __future__ import annotations

import glob
import json
import time
from datetime import datetime
from pathlib import Path

from tests.integration.harness import (
    ROOT,
    TestNode,
    check_delivered,
    sent_all,
    start_wrapped,
    wait_for,
)

LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
                     + glob.glob("/usr/lib/faketime/libfaketime.so.1")
                     + glob.glob("/usr/local/lib/faketime/libfaketime.so.1"))


def _faketime(**env: str) -> dict[str, str]:
    assert LIBFAKETIME, "libfaketime is not installed: apt-get install -y faketime"
    return {"LD_PRELOAD": LIBFAKETIME[0], **env}


#: libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1 makes clock_nanosleep fail with
#: EINVAL, so every time.sleep() raises (and watchdog's threads die). Test-only workaround,
#: loaded by the faked node processes alone: sleep through select(), which it leaves alone.
SLEEP_SHIM = """import select, time
def _sleep(seconds):
    if seconds > 0:
        select.select([], [], [], seconds)
time.sleep = _sleep
"""


def _start_stepping(node: TestNode, offset: str) -> Path:
    """Start ``node`` under a wall clock at ``offset`` that the test can step by rewriting the
    returned file; CLOCK_MONOTONIC keeps counting, as it does through an NTP step."""
    control = node.home.parent / f"{node.name}.faketime"
    control.write_text(offset + "\n")
    shim = node.home.parent / f"{node.name}-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SLEEP_SHIM)
    env = _faketime(FAKETIME_TIMESTAMP_FILE=str(control), FAKETIME_CACHE_DURATION="1",
                    FAKETIME_DONT_FAKE_MONOTONIC="1")
    start_wrapped(node, ["env", f"PYTHONPATH={shim}:{ROOT}"], extra_env=env)
    return control


def _days_between(earlier: str, later: str) -> float:
    def parse(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return (parse(later) - parse(earlier)) / 86400


def test_two_days_of_skew_either_way(network) -> None:  # type: ignore[no-untyped-def]
    """Sender two days ahead, receiver two days behind: TLS, envelope and receipt all verify."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start(extra_env=_faketime(FAKETIME="-2d"))
    alpha.start(extra_env=_faketime(FAKETIME="+2d"))
    data = b"To trinh so 7/TTr\n" * 300
    alpha.drop("beta", "to-trinh.txt", data)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="delivery across four days of skew")
    check_delivered(alpha, [beta], {"to-trinh.txt": data})
    meta = json.loads((beta.inbox / "alpha" / "to-trinh.txt.meta.json").read_text())
    # The fake clocks really were in force: "sent" is about four days after "received".
    assert 3.9 < _days_between(meta["received_at"], meta["sent_at"]) < 4.1, meta


def test_backward_step_with_the_peer_online(network) -> None:  # type: ignore[no-untyped-def]
    """Both clocks step back a day mid-run: a document dropped after the step is delivered."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta_clock = _start_stepping(beta, "+0")
    alpha_clock = _start_stepping(alpha, "+0")
    first, second = b"truoc\n" * 500, b"sau\n" * 500
    alpha.drop("beta", "truoc.txt", first)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the first delivery")
    alpha_clock.write_text("-1d\n")
    beta_clock.write_text("-1d\n")
    time.sleep(2)  # libfaketime re-reads the file at most every second
    alpha.drop("beta", "sau.txt", second)
    wait_for(lambda: sent_all(alpha, 2), timeout=30, what="delivery after a one-day backward step")
    check_delivered(alpha, [beta], {"truoc.txt": first, "sau.txt": second})


def test_backward_step_while_a_retry_is_pending(network) -> None:  # type: ignore[no-untyped-def]
    """The peer is down, a retry is scheduled, the sender's clock steps back a day, the peer
    returns: the retry must still happen within seconds (timers need a monotonic clock)."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha_clock = _start_stepping(alpha, "+0")
    data = b"cho\n" * 500
    alpha.drop("beta", "cho.txt", data)
    wait_for(lambda: "cannot reach beta" in alpha.log_text(), timeout=30,
             what="alpha to schedule a retry for the offline peer")
    alpha_clock.write_text("-1d\n")
    time.sleep(2)
    beta.start()
    wait_for(lambda: sent_all(alpha, 1), timeout=30,
             what="the pending retry to fire after a one-day backward step (were the "
                  "reactor's timers on the wall clock, every timer set before the step would "
                  "wait a day)")
    check_delivered(alpha, [beta], {"cho.txt": data})


def test_forward_step_fires_no_timer_early(network) -> None:  # type: ignore[no-untyped-def]
    """The sender's clock jumps a day ahead while its connection is idle: the idle timer
    (10 s in the test config) must not fire at the step, so the next document goes over the
    same connection. On wall-clock timers every pending timer would fire at once."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    alpha_clock = _start_stepping(alpha, "+0")
    first, second = b"truoc\n" * 500, b"sau\n" * 500
    alpha.drop("beta", "truoc.txt", first)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the first delivery")
    alpha_clock.write_text("+1d\n")
    time.sleep(2)  # libfaketime re-reads the file at most every second
    alpha.drop("beta", "sau.txt", second)
    wait_for(lambda: sent_all(alpha, 2), timeout=30, what="delivery after a one-day forward step")
    check_delivered(alpha, [beta], {"truoc.txt": first, "sau.txt": second})
    assert alpha.log_text().count("connected to beta") == 1, (
        "the idle connection was closed at the forward step (a timer fired early)")
