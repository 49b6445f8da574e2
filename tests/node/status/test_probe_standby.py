"""lienthong status shows the waiting members of an active/standby pair (state/standby-HOST.json,
written by node/app/standby.py), but not one of this machine whose process has ended."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from lienthong.node.status.probe import probe_home


def test_a_waiting_standby_is_shown_and_a_dead_one_of_this_machine_is_not(tmp_path: Path
                                                                         ) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    here = socket.gethostname()
    records = {"standby-other-host.json": {"pid": 1234, "host": "other-host",
                                           "state": "database-unreachable",
                                           "since": "2026-12-07T08:00:00Z", "detail": "x"},
               f"standby-{here}.json": {"pid": int(ended.stdout), "host": here,
                                        "state": "waiting", "since": "2026-12-07T08:00:00Z"}}
    for name, record in records.items():
        (state / name).write_text(json.dumps(record))
    (state / "standby-broken.json").write_text("{not json")
    assert probe_home(tmp_path, None)["standby"] == [
        {"pid": 1234, "host": "other-host", "state": "database-unreachable",
         "since": "2026-12-07T08:00:00Z"}]
    records[f"standby-{here}.json"]["pid"] = os.getpid()
    (state / f"standby-{here}.json").write_text(json.dumps(records[f"standby-{here}.json"]))
    hosts = [entry["host"] for entry in probe_home(tmp_path, None)["standby"]]
    assert hosts == ["other-host", here]
