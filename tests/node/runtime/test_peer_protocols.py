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
