"""Warnings and their thresholds: unreachable peers, overdue receipts, disk, failures."""
from __future__ import annotations

from lienthong.node.status.health import Thresholds, health_of
from lienthong.node.status.snapshot import build_snapshot
from tests.node.statushelp import NOW, Office, snapshot_of


def test_peer_unreachable_for_hours_is_a_warning(office: Office) -> None:
    """ubnd, never seen, a document waiting 2 h+: overdue by default, unreachable past 1 h."""
    snap = snapshot_of(office, running=True, live={"peers": {}, "transfers": []})
    codes = {(w["code"], w["peer"]) for w in snap["warnings"]}
    assert ("peer-unreachable", "ubnd") not in codes and ("receipt-overdue", "ubnd") in codes
    store = office.store()
    try:
        tight = build_snapshot(store, node={"name": "tinhuy", "home": "h"},
                               home=office.honest.home, now=NOW, daemon={"running": True},
                               live={"peers": {}}, probe={},
                               thresholds=Thresholds(peer_unreachable_hours=1.0))
        loose = build_snapshot(store, node={"name": "tinhuy", "home": "h"},
                               home=office.honest.home, now=NOW, daemon={"running": True},
                               live={"peers": {}}, probe={},
                               thresholds=Thresholds(peer_unreachable_hours=48.0))
    finally:
        store.close()
    unreachable = [w for w in tight["warnings"] if w["code"] == "peer-unreachable"]
    assert len(unreachable) == 1 and unreachable[0]["peer"] == "ubnd"
    assert "Connection refused" in unreachable[0]["message"]
    overdue = [w for w in loose["warnings"] if w["code"] == "receipt-overdue"]
    assert len(overdue) == 1 and overdue[0]["peer"] == "ubnd"


def test_low_disk_and_unwritable_folders_are_critical(office: Office) -> None:
    """A probe with 100 MiB free and state/ unwritable yields two critical warnings."""
    probe = {"disk": {"free_bytes": 100 * 1024 ** 2, "total_bytes": 100 * 1024 ** 3},
             "not_writable": ["state"], "outbox_waiting": 3, "failed_files": 0}
    snap = snapshot_of(office, probe=probe, running=True, live={"peers": {}})
    critical = [w["code"] for w in snap["warnings"] if w["level"] == "critical"]
    assert critical == ["disk-low", "not-writable"]
    assert snap["outbox"]["waiting_in_outbox"] == 3


def test_recent_failures_and_security_refusals_warn(office: Office) -> None:
    """Audited refusals in the last 24 h are grouped by kind and code and raise a warning."""
    snap = snapshot_of(office, running=True, live={"peers": {}})
    kinds = {(f["kind"], f["code"]) for f in snap["failures_24h"]}
    assert ("security-refused", "tls-unknown-key") in kinds
    assert any(w["code"] == "security-refusals" for w in snap["warnings"])
    later = snapshot_of(office, now=NOW + 2 * 86400, running=True, live={"peers": {}})
    assert later["failures_24h"] == []


def test_health_is_the_most_serious_warning_level() -> None:
    assert health_of([]) == "ok"
    assert health_of([{"level": "warning"}]) == "warning"
    assert health_of([{"level": "warning"}, {"level": "critical"}]) == "critical"
