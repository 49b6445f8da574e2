"""The status screen's newer parts (standby, folders too wide, the clerks' group, reconciliation,
deadlines, how a peer was found reachable) read in Vietnamese by default and in English on
request: labels, states and names, never the English sentence or the code."""
from __future__ import annotations

import io

from rich.console import Console

from lienthong.node.status.health import Thresholds, health_of, warnings_for
from lienthong.node.status.render import render_status
from tests.node.statushelp import Office, peer, rendered, snapshot_of


def _busy(office: Office) -> dict:
    """The office's snapshot with one of each newer part in it."""
    snapshot = snapshot_of(office, probe={
        "standby": [{"pid": 4321, "host": "may-du-phong", "state": "waiting",
                     "since": "2026-01-01T00:00:00Z"}],
        "too_wide": [{"folder": "inbox/hdnd", "folder_mode": None, "files": 2,
                      "file_modes": ["0644"], "allowed": "0600", "group": "vanthu",
                      "fix": "chmod -R go-rwx /srv/x"}],
        "not_writable": [], "disk": None})
    snapshot["review"] = {"reconciliations": [
        {"peer": "hdnd", "period": "2026-03", "state": "differs", "differences": 2,
         "days_not_compared": 0, "pending_seconds": None},
        {"peer": "ubnd", "period": "2026-03", "state": "pending", "differences": 0,
         "pending_seconds": 3 * 86400.0}], "witnesses": []}
    snapshot["deadlines"] = {"alerts": [
        {"kind": "quarterly", "period": "2026-Q2", "office": "hdnd", "owed_to": "tinhuy",
         "due": "2026-04-10", "state": "overdue", "working_days_left": None, "name": None},
        {"kind": "document", "period": "2026-04", "office": "tinhuy", "owed_to": "ubnd",
         "due": "2026-04-20", "state": "due", "working_days_left": 2, "name": "cv.pdf"}],
        "by_office": {}}
    peer(snapshot, "ubnd")["reachable"] = {"reachable": False, "at": "2026-01-01T00:00:00Z",
                                           "source": "test", "reason": "timeout"}
    peer(snapshot, "hdnd")["reachable"] = {"reachable": True, "at": None,
                                           "source": "connected now", "reason": None}
    snapshot["warnings"] = warnings_for(snapshot, Thresholds())
    snapshot["health"] = health_of(snapshot["warnings"])
    return snapshot


def test_the_newer_parts_read_in_vietnamese_by_default(office: Office) -> None:
    snapshot = _busy(office)
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_status(snapshot))  # no language given: Vietnamese
    text = console.export_text()
    assert text == rendered(snapshot, lang="vi")
    for expected in ("Nút dự phòng", "tiến trình 4321 trên may-du-phong đang chờ",
                     "(kiểm tra kết nối", "(đang có kết nối)", "Đối chiếu với hdnd",
                     "chương trình quý", "còn 2 ngày làm việc", "nhóm vanthu"):
        assert expected in text, expected
    for english in ("Standby", "waiting to take over", "connection test", "connected now",
                    "Reconciliation", "quarterly", "can be read by more people", "working day",
                    "overdue"):
        assert english not in text, english


def test_the_newer_parts_read_in_english_on_request(office: Office) -> None:
    text = rendered(_busy(office), lang="en")
    for expected in ("Standby", "process 4321 on may-du-phong is waiting to take over",
                     "connection test", "connected now", "Reconciliation with hdnd",
                     "quarterly programme", "can be read by more people"):
        assert expected in text, expected
