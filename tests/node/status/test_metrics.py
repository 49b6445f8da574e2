"""The Prometheus metrics: queues, traffic, failures, and labels that cannot be injected."""
from __future__ import annotations

import re

from lienthong.node.status.metrics import (
    MetricsState,
    escape_label,
    histogram,
    label_code,
    render_metrics,
)
from tests.node.statushelp import Office, snapshot_of


def metric_lines(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_describe_queues_traffic_and_failures(office: Office) -> None:
    """Per-peer gauges and counters, failures by kind/code, and a cumulative histogram."""
    store = office.store()
    state = MetricsState()
    try:
        snap = snapshot_of(office, running=True, live={"peers": {}, "uptime_seconds": 5.0})
        names = {p["node_id"]: p["name"] for p in snap["peers"]}
        state.refresh(store, names)
        state.refresh(store, names)  # folding twice must not count twice
    finally:
        store.close()
    text = render_metrics(snap, state)
    assert metric_lines(text, "lienthong_queue_depth") == {
        'lienthong_queue_depth{peer="hdnd"}': 0, 'lienthong_queue_depth{peer="ubnd"}': 1}
    assert metric_lines(text, "lienthong_documents_sent_total")[
        'lienthong_documents_sent_total{peer="hdnd"}'] == 1
    failures = metric_lines(text, "lienthong_failures_total")
    assert failures == {
        'lienthong_failures_total{kind="rejected-by-peer",code="other",peer="hdnd"}': 1,
        'lienthong_failures_total{kind="security-refused",code="tls-unknown-key",peer="none"}':
            1}
    buckets = metric_lines(text, "lienthong_receipt_latency_seconds_bucket")
    assert buckets['lienthong_receipt_latency_seconds_bucket{le="1.0"}'] == 0
    assert buckets['lienthong_receipt_latency_seconds_bucket{le="5.0"}'] == 1
    assert buckets['lienthong_receipt_latency_seconds_bucket{le="+Inf"}'] == 1
    assert metric_lines(text, "lienthong_uptime_seconds") == {"lienthong_uptime_seconds": 5.0}
    assert re.search(r'^lienthong_warnings\{code="peer-unreachable"\} 1$', text, re.M) is None


def test_metric_labels_cannot_be_injected_or_multiplied() -> None:
    """Label values are escaped; peer codes are used only if ours-looking and bounded."""
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    known: set[str] = set()
    assert label_code('x"} 1\nfake 2', known) == "other"
    assert label_code("digest-mismatch", known) == "digest-mismatch"
    for index in range(200):
        label_code(f"code-{index}", known)
    assert len(known) == 64 and label_code("code-999", known) == "other"
    assert histogram([0.5, 3, 3, 100000]).cumulative[:3] == (1, 3, 3)
