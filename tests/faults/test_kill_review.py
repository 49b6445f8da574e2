"""SIGKILL a node between storing a peer's audit head and witnessing it; the restart applies it.

The head was committed at hdnd (so tinhuy's retry gets HAVE and never makes the handler run
again); without the start-up catch-up tinhuy's head would go unwitnessed and tinhuy's
witness numbering from hdnd would not cover it (docs/design.md §6).
"""
from __future__ import annotations

from lienthong.config.loader import load_config
from lienthong.keys import jws
from lienthong.node.audit.heads import HEAD_TYP
from lienthong.node.audit.witnesses import HEAD_KIND, OUTCOME_KINDS
from tests.integration.harness import wait_for
from tests.integration.test_review import FAST_REVIEW


def test_kill_before_a_received_head_is_applied(network) -> None:  # type: ignore[no-untyped-def]
    nodes = network("tinhuy", "hdnd", settings=FAST_REVIEW)
    tinhuy, hdnd = nodes["tinhuy"], nodes["hdnd"]
    # hdnd sends no head of its own, so the first control document it gets is tinhuy's head
    # (not tinhuy's witness of an hdnd head).
    config = load_config(hdnd.home).source
    config.write_text(config.read_text().replace("witness_interval = 1", "witness_interval = "
                                                 "86400"))
    hdnd.start(extra_env={"LIENTHONG_FAILPOINT": "receiver-before-control-applied"})
    tinhuy.start()
    code = hdnd.wait_exit(timeout=60)
    assert code == -9, f"hdnd exited with {code}, not SIGKILL:\n{hdnd.log_text()}"
    (crashed,) = hdnd.query("unsettled_control", HEAD_KIND, OUTCOME_KINDS)
    assert hdnd.query("peer_heads") == []
    head = jws.decode((hdnd.home / crashed.stored_path).read_text().strip(), HEAD_TYP)
    seq = head.payload["seq"]
    # tinhuy is down while hdnd restarts, so nothing newer overtakes the head being applied.
    tinhuy.stop()

    hdnd.start()

    wait_for(lambda: hdnd.query("unsettled_control", HEAD_KIND, OUTCOME_KINDS) == [],
             timeout=30, what="hdnd to apply the head it stored before the kill")
    (outcome,) = hdnd.query("audit_entries", message_id=crashed.message_id,
                            kind="audit-head-witnessed")
    assert (outcome.detail["seq"], outcome.detail["index"]) == (seq, 1)
    assert [(h.seq, h.witness_index) for h in hdnd.query("peer_heads")][:1] == [(seq, 1)]
    assert "received before a restart" in hdnd.log_text()
    assert "security-refused" not in hdnd.audit_kinds()
    tinhuy.start()
    wait_for(lambda: any(w.witness_node_id == hdnd.node_id and w.seq == seq
                         and w.witness_index == 1 for w in tinhuy.query("head_witnesses")),
             timeout=60, what="tinhuy to receive hdnd's witness of the head from before the kill")
