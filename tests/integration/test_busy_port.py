"""A node whose port is taken says so in one sentence (issue 20): which port, which program
holds it (when the system says), and the setting to change; no traceback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.integration.harness import ROOT


def test_a_port_in_use_is_named_with_its_holder_and_the_setting_to_change(network) -> None:  # type: ignore[no-untyped-def]
    alpha = network("alpha", enrol=False)["alpha"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", alpha.port))
        busy.listen()
        done = subprocess.run([sys.executable, "-m", "lienthong.node", "run", str(alpha.home)],
                              capture_output=True, text=True, cwd=str(ROOT), timeout=60,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert f"cannot listen on 127.0.0.1:{alpha.port}" in done.stderr
    assert "[node] listen" in done.stderr and "lienthong.toml" in done.stderr
    assert f"(pid {os.getpid()})" in done.stderr
    # A start that failed leaves nothing in the audit log (no node-stopped without a start).
    assert not {"node-started", "node-stopped"} & set(alpha.audit_kinds())
