"""Which envelope version a document is sealed as: v3 only when every recipient last spoke
protocol 2, and the record survives a restart (or its loss, which only means v2)."""
from __future__ import annotations

from pathlib import Path

from lienthong.node.runtime.peer_protocols import (
    FILE_NAME,
    PeerProtocols,
    load_peer_protocols,
    save_peer_protocols,
)


def test_v3_only_when_every_recipient_speaks_protocol_2() -> None:
    known = PeerProtocols()
    assert known.envelope_version(["a"], max_protocol=2) == 2       # never met: v2
    assert known.note("a", 2) and not known.note("a", 2)
    assert known.envelope_version(["a"], max_protocol=2) == 3
    assert known.envelope_version(["a"], max_protocol=1) == 2       # held to protocol 1
    known.note("b", 1)
    assert known.envelope_version(["a", "b"], max_protocol=2) == 2
    assert known.note("b", 2)
    assert known.envelope_version(["a", "b"], max_protocol=2) == 3
    assert known.note("a", 1)                                       # moved back
    assert known.envelope_version(["a", "b"], max_protocol=2) == 2
    assert known.envelope_version([], max_protocol=2) == 2


def test_the_record_is_saved_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert load_peer_protocols(state) == {}
    save_peer_protocols(state, {"b": 1, "a": 2})
    assert load_peer_protocols(state) == {"a": 2, "b": 1}
    assert (state / FILE_NAME).stat().st_mode & 0o777 == 0o600
    (state / FILE_NAME).write_text('{"a": 2, "b": "two", "c": true}')
    assert load_peer_protocols(state) == {"a": 2}
    (state / FILE_NAME).write_text("not json")
    assert load_peer_protocols(state) == {}


def test_saves_run_one_at_a_time_each_with_the_latest_record(tmp_path: Path) -> None:
    """Two peers met at once: the second save waits for the first (two threads renaming one
    temporary file raced), and writes the record as it is when it runs."""
    from twisted.internet.defer import Deferred

    from tests.node.runtimehelp import FakeReactor, make_office

    runtime = make_office(tmp_path, "aa", FakeReactor()).runtime
    started: list[tuple[object, dict[str, int]]] = []
    pending: list[Deferred[None]] = []

    def io(function: object, state: Path, known: dict[str, int]) -> Deferred[None]:
        started.append((function, dict(known)))
        pending.append(Deferred())
        return pending[-1]

    runtime.io = io  # type: ignore[method-assign]
    runtime.note_peer_protocol("b", 2)
    runtime.note_peer_protocol("c", 2)
    assert [known for _, known in started] == [{"b": 2}]     # the second waits
    pending[0].callback(None)
    assert [known for _, known in started] == [{"b": 2}, {"b": 2, "c": 2}]
    pending[1].callback(None)
