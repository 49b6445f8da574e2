"""``Node.stop`` stops what owns a thread even when a step before it fails: the status API's
read thread (and the web and head signer with it) would otherwise keep the process alive
after the reactor stopped, as a failed year history once did."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import fail, succeed

from lienthong.node.app.node import Node
from tests.node.runtimehelp import FakeReactor, make_office


class Stoppable:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> Any:
        self.stopped = True
        return succeed(None)


def test_the_status_api_and_head_signer_stop_when_an_earlier_step_fails(
        tmp_path: Path) -> None:
    node = Node(make_office(tmp_path, "alpha", FakeReactor()).runtime)
    status, signer = Stoppable(), Stoppable()
    node.status_api, node.head_signer = status, signer  # type: ignore[assignment]
    node._stop_work = lambda: fail(RuntimeError("the sidecars could not be flushed"))  # type: ignore[method-assign]
    failures: list[Any] = []
    node.stop().addErrback(failures.append)
    assert [f.getErrorMessage() for f in failures] == ["the sidecars could not be flushed"]
    assert status.stopped and signer.stopped
