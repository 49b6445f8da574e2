"""Spool recovery: what ``recover_spool`` makes of each folder a take (or a crash) left, and
metadata an older version staged beside them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lienthong.node.outbox.intake import take_file
from lienthong.node.spool.record import INTAKE_FILE, PAYLOAD_FILE, TakenFile, read_meta
from lienthong.node.spool.recovery import (
    SpoolState,
    adopt_staged_meta,
    recover_spool,
    staged_meta_path,
    sweep_staged,
    write_staged_meta,
)
from tests.node.intakehelp import NOW, Home, make_home

STAGED_MID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path)


def _take(home: Home, path: Path, message_id: str) -> TakenFile:
    return take_file(path, outbox=home.outbox, spool_dir=home.spool, message_id=message_id,
                     max_bytes=64 << 20, now=NOW)


def test_recover_spool_reports_each_state(home: Home) -> None:
    """Taken, never-moved, damaged and mismatched spool folders are told apart, no crash."""
    (home.peer / "a.pdf").write_bytes(b"aaa")
    taken = _take(home, home.peer / "a.pdf", "m-taken")
    (home.spool / "m-nopayload").mkdir()
    (home.spool / "m-nopayload" / INTAKE_FILE).write_bytes(
        (home.spool / "m-taken" / INTAKE_FILE).read_bytes().replace(b"m-taken", b"m-nopayload"))
    (home.spool / "m-empty").mkdir()
    (home.spool / "m-corrupt").mkdir()
    (home.spool / "m-corrupt" / INTAKE_FILE).write_bytes(b"{not json")
    (home.spool / "m-corrupt" / PAYLOAD_FILE).write_bytes(b"x")
    (home.spool / "m-dupkeys").mkdir()
    (home.spool / "m-dupkeys" / INTAKE_FILE).write_bytes(b'{"format":1,"format":2}')
    (home.spool / "m-dupkeys" / PAYLOAD_FILE).write_bytes(b"x")
    (home.spool / "m-short").mkdir()
    (home.spool / "m-short" / INTAKE_FILE).write_bytes(
        (home.spool / "m-taken" / INTAKE_FILE).read_bytes().replace(b"m-taken", b"m-short"))
    (home.spool / "m-short" / PAYLOAD_FILE).write_bytes(b"a")
    (home.spool / "stray-file").write_bytes(b"x")
    found = {item.message_id: item for item in recover_spool(home.spool)}
    assert set(found) == {"m-taken", "m-nopayload", "m-empty", "m-corrupt", "m-dupkeys",
                          "m-short"}
    assert found["m-taken"].state is SpoolState.TAKEN and found["m-taken"].taken == taken
    assert found["m-nopayload"].state is SpoolState.INCOMPLETE
    assert found["m-empty"].state is SpoolState.INCOMPLETE
    assert found["m-corrupt"].state is SpoolState.DAMAGED and found["m-corrupt"].problem
    assert found["m-dupkeys"].state is SpoolState.DAMAGED
    assert found["m-short"].state is SpoolState.DAMAGED and "1 bytes" in found["m-short"].problem


def test_recover_spool_rejects_a_record_for_another_message(home: Home) -> None:
    """An intake.json naming another message ID (copied folder) is damaged, not trusted."""
    (home.peer / "a.pdf").write_bytes(b"aaa")
    _take(home, home.peer / "a.pdf", "m-one")
    os.rename(home.spool / "m-one", home.spool / "m-two")
    (item,) = recover_spool(home.spool)
    assert item.state is SpoolState.DAMAGED and "m-one" in (item.problem or "")


def test_staged_metadata_is_adopted_by_the_spool_folder_or_swept(tmp_path: Path) -> None:
    """Metadata staged before the take lands in meta.json once the folder exists; staged
    metadata of a take that never happened is removed at start-up."""
    spool = tmp_path / "spool"
    spool.mkdir()
    write_staged_meta(spool, STAGED_MID, {"kind": "document", "priority": 0})
    adopt_staged_meta(spool, STAGED_MID)  # no folder yet: nothing happens
    assert staged_meta_path(spool, STAGED_MID).exists()
    (spool / STAGED_MID).mkdir()
    adopt_staged_meta(spool, STAGED_MID)
    assert read_meta(spool / STAGED_MID) == {"kind": "document", "priority": 0}
    assert not staged_meta_path(spool, STAGED_MID).exists()
    other = "f" * 32
    write_staged_meta(spool, other, {"kind": "document"})
    assert sweep_staged(spool) == 1 and not staged_meta_path(spool, other).exists()
