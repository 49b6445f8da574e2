"""Statuses and recalls from peers (node/control/received.py) that do not verify: refused,
and the refusal audited with the kind of notice, on an inline runtime."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from lienthong.node.control.received import ReceivedControl
from lienthong.protocol.fields import new_message_id
from tests.node.runtimehelp import FakeReactor, enrol, make_office


@pytest.mark.parametrize("notice", ["status", "recall"])
def test_a_notice_that_does_not_verify_is_refused_and_audited(tmp_path: Path,
                                                              notice: str) -> None:
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    answered: list[bool] = []
    received = ReceivedControl(alpha.runtime, answer=lambda: answered.append(True))
    stored = tmp_path / f"{notice}.jws"
    stored.write_text("not.a.token\n", encoding="ascii")
    header = types.SimpleNamespace(message_id=new_message_id())
    apply = received.on_status if notice == "status" else received.on_recall

    outcome = apply(beta.node_id, header, stored)

    failures: list[object] = []
    outcome.addErrback(failures.append)
    assert failures == []
    (entry,) = alpha.store.audit_entries(kind="security-refused")
    assert (entry.peer, entry.message_id) == (beta.node_id, header.message_id)
    assert entry.detail["control_kind"] == notice
    assert answered == []
