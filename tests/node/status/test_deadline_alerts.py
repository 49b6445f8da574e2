"""Programme reminders and overdue programmes in the status snapshot, its warnings (so
``status --check`` exits 1) and the Prometheus metrics."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from lienthong.config.schema import CoordinationSection
from lienthong.node.status.metrics import MetricsState, render_metrics
from lienthong.node.status.snapshot import build_snapshot
from lienthong.node.store.database import Store
from tests.node.coordination.test_year_walk import _now, send_programme
from tests.node.storehelp import T0, make_peer

SECTION = CoordinationSection(kinds=("monthly",), since="2026-11-01")


def snapshot_on(store: Store, day: str) -> dict:  # type: ignore[type-arg]
    return build_snapshot(store, node={"name": "tinhuy", "node_id": "x"}, home=Path("/h"),
                          now=_now(dt.date.fromisoformat(day)),
                          daemon={"running": True, "note": ""}, coordination=SECTION)


def test_reminder_then_overdue_warnings_and_metrics(tmp_path: Path) -> None:
    from lienthong.node.store.database import open_store
    stores = {name: open_store(f"sqlite:///{tmp_path / name / 's.db'}")
              for name in ("tinhuy", "hdnd", "ubnd")}
    try:
        for seed, name in enumerate(("tinhuy", "hdnd", "ubnd"), 1):
            for other, store in stores.items():
                if other != name:
                    store.add_peer(make_peer(name, seed), "card", T0)
        send_programme(stores, "hdnd", "2027-01", dt.date(2026, 12, 20), 1)
        send_programme(stores, "ubnd", "2027-01", dt.date(2026, 12, 21), 2)
        send_programme(stores, "hdnd", "2027-02", dt.date(2027, 1, 20), 3)
        store = stores["tinhuy"]
        # Thursday 21 January 2027: 2027-02 is due Monday 25 January, 2 working days later.
        early = snapshot_on(store, "2027-01-21")
        codes = [(w["code"], w["peer"]) for w in early["warnings"]]
        assert codes == [("programme-reminder", "ubnd")]
        assert "February 2027 from ubnd to tinhuy is due 25/01/2027: 2 working day(s) left" in \
            early["warnings"][0]["message"]
        from lienthong.node.language.text import Phrase
        assert "Tháng 02/2027" in Phrase.from_json(early["warnings"][0]["text"]).in_language("vi")
        assert early["health"] == "warning"
        late = snapshot_on(store, "2027-01-26")
        assert [(w["code"], w["peer"]) for w in late["warnings"]] == [
            ("programme-overdue", "ubnd")]
        # 2026-12 (before anything was sent) is missing; 2027-03 and 2027-04 are ahead
        assert late["deadlines"]["by_office"]["hdnd"] == {"on-time": 2, "missing": 1, "due": 2}
        text = render_metrics(late, MetricsState())
        assert 'lienthong_obligations{office="ubnd",state="overdue"} 1' in text
        assert 'lienthong_obligations{office="hdnd",state="on-time"} 2' in text
        quiet = snapshot_on(store, "2027-01-12")  # nothing due within 3 working days
        assert quiet["warnings"] == [] and quiet["health"] == "ok"
    finally:
        for store in stores.values():
            store.close()
