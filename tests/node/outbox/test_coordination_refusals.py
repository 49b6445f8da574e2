"""The coordination regulation's bad input, each through the real outbox intake with real keys
and a real store: a programme without a period or with a malformed one, a programme file that
does not parse, a number in neither notation or with the wrong type code, and a conclusion sent
by an office that did not host the meeting or not to exactly the offices concerned.

Each is refused into failed/ with its sidecar beside it and a reason that names the problem and
what to do, one ``refused`` audit event carries the code, and nothing is taken or sent."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lienthong.node.outbox.pipeline import Outbox
from tests.node.coordination.programmes import xlsx
from tests.node.runtimehelp import FakeReactor, Office, enrol, make_office

PROGRAMME = 'type = "chương trình"\nperiod = "2027-01"\n'
CONCLUSION = ('type = "kết luận"\nnumber = "15-KL/TU"\nmeeting = "Giao ban quý"\n'
              'meeting_host = "{host}"\nconcerned = [{concerned}]\n')

#: (sender, folder, file name, contents, sidecar, code, the problem, what to do)
CASES = [
    ("hdnd", "tinhuy", "CT khong ky.pdf", b"%PDF programme", 'type = "chương trình"\n',
     "bad-metadata", "must name the period", "2027-Q1"),
    ("hdnd", "tinhuy", "CT sai ky.pdf", b"%PDF programme",
     'type = "chương trình"\nperiod = "quý 1/2027"\n', "bad-metadata",
     "'quý 1/2027' is not a period", "write 2027"),
    ("hdnd", "tinhuy", "CT tuan 60.pdf", b"%PDF programme",
     'type = "chương trình"\nperiod = "2027-W60"\n', "bad-metadata", "2027-W60",
     "2027-W05"),
    ("hdnd", "tinhuy", "CT hong.ics", b"BEGIN:VCALENDAR\r\nnot really\r\n", PROGRAMME,
     "bad-programme", "not a valid iCalendar", "again"),
    ("hdnd", "tinhuy", "CT hong.xlsx", b"PK\x03\x04broken", PROGRAMME, "bad-programme",
     "not a readable .xlsx", "save"),
    ("hdnd", "tinhuy", "CT ngay sai.xlsx",
     xlsx([["hôm qua", "08:00", "Họp", "Chủ tịch", "Phòng 1", "HĐND"]]), PROGRAMME,
     "bad-programme", "'hôm qua' is not a date", "05/01/2027"),
    ("hdnd", "tinhuy", "Chi thi.pdf", b"%PDF directive",
     'type = "chỉ thị"\nnumber = "05/NQ-UBND"\n', "bad-number", "says NQ", "carries CT"),
    ("hdnd", "tinhuy", "Cong van.pdf", b"%PDF letter",
     'type = "công văn"\nnumber = "so 45 UBND"\n', "bad-number", "neither notation",
     "05/CT-UBND"),
    ("tinhuy", "hdnd+ubnd", "KL khong chu tri.pdf", b"%PDF KL",
     CONCLUSION.format(host="ubnd", concerned='"hdnd", "ubnd"'), "bad-metadata",
     "hosted by ubnd", "let the hosting office send it"),
    ("tinhuy", "hdnd", "KL thieu.pdf", b"%PDF KL",
     CONCLUSION.format(host="tinhuy", concerned='"hdnd", "ubnd"'), "bad-metadata",
     "missing: ubnd", "group folder of exactly those offices"),
    ("tinhuy", "hdnd+ubnd", "KL thua.pdf", b"%PDF KL",
     CONCLUSION.format(host="tinhuy", concerned='"hdnd"'), "bad-metadata",
     "not concerned: ubnd", "group folder of exactly those offices"),
]


@pytest.fixture
def offices(tmp_path: Path) -> dict[str, Office]:
    reactor = FakeReactor()
    made = {name: make_office(tmp_path, name, reactor, port=7443 + i, language="en")
            for i, name in enumerate(("tinhuy", "hdnd", "ubnd"))}
    for office in made.values():
        for other in made.values():
            if other is not office:
                enrol(office, other)
    return made


@pytest.mark.parametrize(("sender", "folder", "name", "data", "sidecar", "code", "problem",
                          "todo"), CASES, ids=[c[2] for c in CASES])
def test_refused_into_failed_with_its_sidecar_and_a_reason(
        offices: dict[str, Office], sender: str, folder: str, name: str, data: bytes,
        sidecar: str, code: str, problem: str, todo: str) -> None:
    office = offices[sender]
    config = office.runtime.config
    target = config.outbox / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{name}.meta.toml").write_text(sidecar, encoding="utf-8")
    (target / name).write_bytes(data)
    dispatched: list[object] = []
    finished: list[Any] = []
    Outbox(office.runtime, on_dispatch=dispatched.append).file_ready(
        target / name, folder).addBoth(finished.append)
    assert finished == [None]

    failed = config.failed
    assert (failed / name).read_bytes() == data
    assert (failed / f"{name}.meta.toml").read_text(encoding="utf-8") == sidecar
    reason = (failed / f"{name}.reason.txt").read_text(encoding="utf-8")
    assert code in reason and problem in reason and todo in reason, reason
    assert not (target / name).exists() and not (target / f"{name}.meta.toml").exists()

    refused = [e for e in office.store.audit_entries() if e.kind == "refused"]
    assert len(refused) == 1
    assert refused[0].detail["code"] == code and refused[0].detail["name"] == name
    assert problem in refused[0].detail["reason"]

    # Nothing taken, sealed or sent.
    assert dispatched == [] and office.store.recent_dispatches(5) == []
    assert [p for p in config.spool.iterdir() if p.is_dir()] == []
    assert not any(e.kind in ("taken", "sealed") for e in office.store.audit_entries())


def test_a_good_programme_and_a_good_conclusion_are_taken(offices: dict[str, Office]) -> None:
    """The same intake takes what is right (so the refusals above are about the input)."""
    for sender, folder, name, data, sidecar in (
            ("hdnd", "tinhuy", "CT.xlsx",
             xlsx([["05/01/2027", "08:00", "Họp", "Chủ tịch", "Phòng 1", "HĐND"]]), PROGRAMME),
            ("tinhuy", "hdnd+ubnd", "KL.pdf", b"%PDF KL",
             CONCLUSION.format(host="tinhuy", concerned='"hdnd", "ubnd"'))):
        office = offices[sender]
        target = office.runtime.config.outbox / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{name}.meta.toml").write_text(sidecar, encoding="utf-8")
        (target / name).write_bytes(data)
        dispatched: list[object] = []
        Outbox(office.runtime, on_dispatch=dispatched.append).file_ready(target / name, folder)
        assert len(dispatched) == 1, office.store.audit_entries()
        assert [d.name for d in office.store.recent_dispatches(5)] == [name]
        assert not (office.runtime.config.failed / name).exists()
