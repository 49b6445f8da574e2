"""Enrolling many offices in one command: several cards, or a directory file signed by a
coordinating office; hostile files refused by name, nothing half-applied (real homes, real
SQLite stores, the real command line)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong.keys import jws
from lienthong.keys.card import read_card, verification_code
from lienthong.node.cli.main import main


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the English wording, so they ask for it (the default is Vietnamese;
    test_words.py shows the Vietnamese)."""
    monkeypatch.setenv("LIENTHONG_LANG", "en")


NAMES = ("tinhuy", "so-a", "so-b", "so-c", "so-d")


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Five fresh offices (not enrolled anywhere); each test copies the ones it changes."""
    base = tmp_path_factory.mktemp("province")
    runner = CliRunner()
    for port, name in enumerate(NAMES, start=17101):
        result = runner.invoke(main, ["init", str(base / name), "--name", name, "--listen",
                                      f"127.0.0.1:{port}", "--kdf", "minimal"])
        assert result.exit_code == 0, result.output
    return {name: base / name for name in NAMES}


@pytest.fixture
def province(homes: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    import shutil
    copies = {}
    for name, home in homes.items():
        shutil.copytree(home, tmp_path / name, symlinks=True)
        copies[name] = tmp_path / name
    return copies


def _run(*args: object, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def _card(home: Path) -> Path:
    return home / f"{home.name}.card"


def _enrolled(home: Path) -> list[str]:
    listed = json.loads(_run("peers", "list", "--json", "--home", home).output)
    return sorted(peer["name"] for peer in listed)


def _audit(home: Path, kind: str) -> list[dict]:
    with sqlite3.connect(home / "state" / "lienthong.db") as db:
        return [json.loads(row[0]) for row in
                db.execute("SELECT detail FROM audit WHERE kind = ?", (kind,))]


def _directory(province: dict[str, Path]) -> Path:
    """The coordinator enrols the four offices in one command and signs the directory."""
    coordinator = province["tinhuy"]
    cards = [_card(province[name]) for name in NAMES[1:]]
    result = _run("peers", "add", *cards, "--yes", "--home", coordinator)
    assert result.exit_code == 0, result.output
    out = coordinator / "province.directory"
    result = _run("peers", "make-directory", out, "--home", coordinator)
    assert result.exit_code == 0, result.output
    return out


def test_many_cards_in_one_command_show_each_code_and_enrol_together(province):
    coordinator = province["tinhuy"]
    own = read_card(_card(coordinator).read_text()).node_id
    cards = [_card(province[name]) for name in NAMES[1:]]
    declined = _run("peers", "add", *cards, "--home", coordinator, input="n\n")
    assert declined.exit_code == 2 and _enrolled(coordinator) == []
    result = _run("peers", "add", *cards, "--home", coordinator, input="y\n")
    assert result.exit_code == 0, result.output
    for path in cards:
        node_id = read_card(path.read_text()).node_id
        assert node_id in result.output and verification_code(own, node_id) in result.output
    assert _enrolled(coordinator) == ["so-a", "so-b", "so-c", "so-d"]
    assert len(_audit(coordinator, "peer-added")) == 4
    again = _run("peers", "add", *cards, "--yes", "--home", coordinator)
    assert again.exit_code == 0 and "Enrolled 0 offices" in again.output


def test_a_province_enrols_from_the_coordinators_directory(province):
    directory = _directory(province)
    office = province["so-a"]
    first = _run("peers", "add", "--directory", directory, "--coordinator", "tinhuy", "--yes",
                 "--home", office)
    assert first.exit_code == 2 and "not an office enrolled here" in first.output
    assert _audit(office, "enrolment-refused")[0]["coordinator"] == "tinhuy"
    assert _run("peers", "add", _card(province["tinhuy"]), "--yes", "--home",
                office).exit_code == 0
    result = _run("peers", "add", "--directory", directory, "--coordinator", "tinhuy",
                  "--json", "--yes", "--home", office)
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    own = read_card(_card(office).read_text()).node_id
    assert sorted(a["name"] for a in outcome["added"]) == ["so-b", "so-c", "so-d"]
    for added in outcome["added"]:
        assert added["verification_code"] == verification_code(own, added["node_id"])
    assert sorted(u["name"] for u in outcome["unchanged"]) == ["so-a", "tinhuy"]
    assert _enrolled(office) == ["so-b", "so-c", "so-d", "tinhuy"]
    assert (office / "outbox" / "so-c").is_dir()
    assert {d["coordinator"] for d in _audit(office, "peer-added")[1:]} == {"tinhuy"}


def test_a_tampered_card_inside_is_refused_by_name_and_the_rest_only_if_agreed(province):
    directory = _directory(province)
    lines = directory.read_text().splitlines()
    victim = _card(province["so-c"]).read_text().strip()
    head, payload, signature = victim.split(".")
    changed = {**jws.strict_json_object(jws.b64url_decode(payload)),
               "addresses": ["203.0.113.66:7443"]}
    lines[lines.index(victim)] = ".".join([head, jws.b64url_encode(jws.canonical_json(changed)),
                                           signature])
    directory.write_text("\n".join(lines) + "\n")
    office = province["so-a"]
    assert _run("peers", "add", _card(province["tinhuy"]), "--yes", "--home",
                office).exit_code == 0
    args = ("peers", "add", "--directory", directory, "--coordinator", "tinhuy", "--home", office)
    declined = _run(*args, input="n\n")
    assert declined.exit_code == 2, declined.output
    assert "REFUSED so-c" in declined.output and "Enrol the other 2 offices?" in declined.output
    assert _enrolled(office) == ["tinhuy"]
    accepted = _run(*args, "--yes")
    assert accepted.exit_code == 0, accepted.output
    assert _enrolled(office) == ["so-b", "so-d", "tinhuy"]
    refusals = _audit(office, "enrolment-refused")
    assert refusals and all(r["card"] == "so-c" for r in refusals)


def test_a_bundle_signed_by_another_enrolled_office_is_refused_whole(province):
    """so-b signs a directory (it has enrolled so-c and so-d); so-a names tinhuy as coordinator:
    nothing from that file is enrolled, even though so-a trusts tinhuy."""
    assert _run("peers", "add", _card(province["so-c"]), _card(province["so-d"]), "--yes",
                "--home", province["so-b"]).exit_code == 0
    forged = province["so-b"] / "mine.directory"
    assert _run("peers", "make-directory", forged, "--home", province["so-b"]).exit_code == 0
    office = province["so-a"]
    assert _run("peers", "add", _card(province["tinhuy"]), "--yes", "--home",
                office).exit_code == 0
    result = _run("peers", "add", "--directory", forged, "--coordinator", "tinhuy", "--yes",
                  "--home", office)
    assert result.exit_code == 2 and "not by the coordinating office" in result.output
    assert _enrolled(office) == ["tinhuy"]
    assert "not by the coordinating office" in _audit(office, "enrolment-refused")[-1]["reason"]


def test_duplicate_cards_for_one_name_are_both_refused(province, tmp_path):
    """A second office that took the name so-b: neither card wins."""
    result = _run("init", tmp_path / "dup" / "so-b", "--name", "so-b", "--listen",
                  "127.0.0.1:17199", "--kdf", "minimal")
    assert result.exit_code == 0, result.output
    coordinator = province["tinhuy"]
    result = _run("peers", "add", _card(province["so-b"]), _card(tmp_path / "dup" / "so-b"),
                  _card(province["so-c"]), "--yes", "--home", coordinator)
    assert result.exit_code == 0, result.output
    assert result.output.count("REFUSED so-b.card") == 2
    assert _enrolled(coordinator) == ["so-c"]


def test_a_store_error_midway_enrols_nothing(province):
    """The fourth insert fails in the real database: the first three are rolled back too."""
    coordinator = province["tinhuy"]
    assert _enrolled(coordinator) == []  # creates the store
    with sqlite3.connect(coordinator / "state" / "lienthong.db") as db:
        db.execute("CREATE TRIGGER refuse_so_d BEFORE INSERT ON peers WHEN NEW.name = 'so-d' "
                   "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    cards = [_card(province[name]) for name in NAMES[1:]]
    result = _run("peers", "add", *cards, "--yes", "--home", coordinator)
    assert result.exit_code == 2
    assert "nothing was enrolled: the database refused the change" in result.output
    assert _enrolled(coordinator) == []
    assert _audit(coordinator, "peer-added") == []


def test_enrolment_speaks_vietnamese_by_default_and_english_when_asked(province, monkeypatch):
    """The plan, the result and a keys-layer refusal nested in a command error (a directory
    file signed by another office) read in Vietnamese by default, in English with --lang en;
    the audit log stays English."""
    monkeypatch.delenv("LIENTHONG_LANG")
    coordinator = province["tinhuy"]
    cards = [_card(province[name]) for name in NAMES[1:3]]
    result = _run("peers", "add", *cards, "--yes", "--home", coordinator)
    assert result.exit_code == 0, result.output
    assert "Cơ quan mới (2)" in result.output and "Đã kết nạp 2 cơ quan" in result.output
    again = _run("--lang", "en", "peers", "add", *cards, "--yes", "--home", coordinator)
    assert "Enrolled 0 offices" in again.output and "Already enrolled" in again.output
    assert _run("peers", "add", _card(province["so-c"]), "--yes", "--home",
                province["so-b"]).exit_code == 0
    forged = province["so-b"] / "mine.directory"
    made = _run("peers", "make-directory", forged, "--home", province["so-b"])
    assert made.exit_code == 0 and "Đã ghi" in made.output
    office = province["so-a"]
    assert _run("peers", "add", _card(coordinator), "--yes", "--home", office).exit_code == 0
    refused = _run("peers", "add", "--directory", forged, "--coordinator", "tinhuy", "--yes",
                   "--home", office)
    assert refused.exit_code == 2
    assert "không phải cơ quan điều phối" in refused.output, refused.output
    assert "not by the coordinating office" not in refused.output
    english = _run("--lang", "en", "peers", "add", "--directory", forged, "--coordinator",
                   "tinhuy", "--yes", "--home", office)
    assert "not by the coordinating office" in english.output
    assert "not by the coordinating office" in _audit(office, "enrolment-refused")[-1]["reason"]
    listed = _run("peers", "list", "--home", office).output
    assert "Tin cậy" in listed or "tin cậy" in listed.lower(), listed
    shown = _run("peers", "show", "tinhuy", "--home", office).output
    assert "Mã xác minh:" in shown
    assert "Verification code:" in _run("--lang", "en", "peers", "show", "tinhuy", "--home",
                                         office).output


def test_enrolment_refusal_reasons_are_vietnamese_by_default_and_english_when_asked(
        province, tmp_path, monkeypatch):
    """The reasons of the plan (two cards for one name, a card changed after signing) come
    from keys/ as a template and fields and are said in the clerk's language at the edge; the
    audit log keeps the English reason."""
    monkeypatch.delenv("LIENTHONG_LANG")
    assert _run("init", tmp_path / "dup" / "so-b", "--name", "so-b", "--listen",
                "127.0.0.1:17198", "--kdf", "minimal").exit_code == 0
    broken = tmp_path / "broken.card"
    head, payload, signature = _card(province["so-d"]).read_text().strip().split(".")
    changed = {**jws.strict_json_object(jws.b64url_decode(payload)),
               "addresses": ["203.0.113.66:7443"]}
    broken.write_text(".".join([head, jws.b64url_encode(jws.canonical_json(changed)),
                                signature]) + "\n")
    args = ("peers", "add", _card(province["so-b"]), _card(tmp_path / "dup" / "so-b"), broken,
            _card(province["so-c"]), "--yes", "--home", province["tinhuy"])
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert result.output.count("có hai thẻ khác nhau cùng mang tên 'so-b'") == 2, result.output
    assert "TỪ CHỐI broken.card: thẻ nút đã bị sửa sau khi ký" in result.output
    assert "two different cards" not in result.output and "was changed" not in result.output
    reasons = [r["reason"] for r in _audit(province["tinhuy"], "enrolment-refused")]
    assert any("two different cards are offered for the name 'so-b'" in r for r in reasons)
    assert any("was changed after it was signed" in r for r in reasons)
    english = _run("--lang", "en", *args)
    assert "REFUSED broken.card: this peer card was changed after it was signed" in \
        english.output
    assert "two different cards are offered for the name 'so-b'" in english.output
