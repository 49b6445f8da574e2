"""Document metadata (node/documents/metadata.py), their tables (node/store/documents.py) and
CLI commands."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lienthong.config.template import render_config
from lienthong.node.cli.main import main
from lienthong.node.control.lifecycle import lifecycle
from lienthong.node.documents.confidentiality import check_confidentiality
from lienthong.node.documents.metadata import DocumentMeta, document_meta, parse_sidecar
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.vocabulary import (
    CONFIDENTIALITY_NAMES,
    STATUS_NAMES,
    TYPE_NAMES,
    URGENCY_NAMES,
    lookup_key,
    resolve_confidentiality,
    resolve_status,
    resolve_type,
    resolve_urgency,
)
from lienthong.node.outbox.drop import write_message
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import InvalidTransition, NewRecall, NewStatus
from tests.node.storehelp import T0, T1, T2, make_dispatch, make_received

MID = "0123456789abcdef0123456789abcdef"


# -- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("hỏa tốc", "flash"), ("Hoả tốc", "flash"), ("HOA_TOC", "flash"), ("hoa-toc", "flash"),
    ("thượng khẩn", "very-urgent"), ("Very urgent", "very-urgent"), ("khẩn", "urgent"),
    ("thường", "normal"), ("flash", "flash"),
])
def test_urgency_names_in_any_spelling(text: str, expected: str) -> None:
    """Vietnamese with or without diacritics, hyphens, underscores or capitals all resolve."""
    assert resolve_urgency(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("nghị quyết", "resolution"), ("nghi-quyet", "resolution"), ("NQ", "resolution"),
    ("Quyết định", "decision"), ("QĐ", "decision"), ("công văn", "letter"),
    ("cong-van", "letter"), ("báo cáo", "report"), ("thông báo", "announcement"),
    ("kết luận", "conclusion"), ("chương trình", "programme"), ("tin nhắn", "message"),
])
def test_document_type_names(text: str, expected: str) -> None:
    """Types are found by their Vietnamese names and abbreviations (12-NQ/TU, 45/QĐ-UBND)."""
    assert resolve_type(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("mật", "confidential"), ("Tối mật", "secret"), ("tuyet-mat", "top-secret"),
    ("top secret", "top-secret"), ("không mật", "normal"),
])
def test_confidentiality_names(text: str, expected: str) -> None:
    """The three classes of state secrets keep their Vietnamese names apart."""
    assert resolve_confidentiality(text) == expected


def test_every_table_is_unambiguous() -> None:
    """No spelling in a table names two different values (the lookup would silently pick)."""
    for table in (TYPE_NAMES, URGENCY_NAMES, CONFIDENTIALITY_NAMES, STATUS_NAMES):
        seen: dict[str, str] = {}
        for canonical, names in table.items():
            for name in (canonical, *names):
                assert seen.setdefault(lookup_key(name), canonical) == canonical, name
    assert resolve_status("vào sổ") == "registered" and resolve_status("từ chối") == "rejected"


# -- sidecar and folder ------------------------------------------------------------------------

FULL = """\
type = "nghị quyết"
number = "12-NQ/TU"
issuer = "Tỉnh ủy"
date = 2026-11-20
subject = "Về chuyển đổi số"
signer = "Nguyễn Văn An"
urgency = "hỏa tốc"
confidentiality = "mật"
due = "30/11/2026"
reply_to = "0123456789ABCDEF0123456789ABCDEF"
"""


def test_full_sidecar_becomes_the_signed_metadata() -> None:
    """Every field is validated and normalised; flash becomes priority 0."""
    meta = document_meta(parse_sidecar(FULL.encode()))
    assert meta.as_envelope_meta() == {
        "kind": "document", "type": "resolution", "number": "12-NQ/TU", "issuer": "Tỉnh ủy",
        "date": "2026-11-20", "subject": "Về chuyển đổi số", "signer": "Nguyễn Văn An",
        "urgency": "flash", "confidentiality": "confidential", "due": "2026-11-30",
        "reply_to": MID, "priority": 0}


def test_vietnamese_field_names_are_accepted() -> None:
    """A document system may write unaccented Vietnamese keys (so_ky_hieu, do_khan...)."""
    fields = parse_sidecar('so_ky_hieu = "45/QĐ-UBND"\ndo_khan = "khẩn"\nloai = "QĐ"\n'.encode())
    meta = document_meta(fields)
    assert (meta.number, meta.urgency, meta.type, meta.priority) == ("45/QĐ-UBND", "urgent",
                                                                     "decision", 2)


def test_no_sidecar_and_no_folder_is_a_normal_document() -> None:
    """Without metadata a document is normal and unclassified: priority 3."""
    assert document_meta({}).as_envelope_meta() == {
        "kind": "document", "urgency": "normal", "confidentiality": "normal", "priority": 3}


@pytest.mark.parametrize("sidecar,match", [
    (b'urgency = "rat gap"\n', r"urgency: 'rat gap' is not known; use one of: normal \(thường\)"),
    (b'type = "thu moi"\n', r"type: 'thu moi' is not known.*resolution \(nghị quyết\)"),
    (b'number = ""\n', r"number: is empty"),
    (b'date = "20.11.2026"\n', r"date: expected a date such as 2026-11-25"),
    (b'date = 2026-11-20T08:00:00\n', r"date: expected a date without a time"),
    (b'reply_to = "12"\n', r"reply_to: expected a message ID"),
    (b'signer = "A\\u202eB"\n', r"signer: contains control"),
    (b'number = "1"\nso = "2"\n', r"gives the field 'number' twice"),
    (b'ngay_ky = 1\n', r"unknown field 'ngay_ky'; the fields are: type, number"),
    (b'number = "12\n', r"is not valid TOML"),
    (b'\xff\xfe', r"not UTF-8"),
    (b'date = 2026-11-20\ndue = 2026-11-01\n', r"due: 2026-11-01 is before the document's date"),
    (b"# " + b"x" * 70000, r"at most 65536 bytes"),
])
def test_sidecar_mistakes_name_the_field_and_what_is_allowed(sidecar: bytes, match: str) -> None:
    """Every refusal says which field is wrong and what would be right."""
    with pytest.raises(MetadataError, match=match) as caught:
        document_meta(parse_sidecar(sidecar, name="x.pdf.meta.toml"))
    assert caught.value.code == "bad-metadata"


def test_folder_names_the_type_or_the_urgency() -> None:
    """outbox/<peer>/nghi-quyet/ sets the type; outbox/<peer>/hoa-toc/ sets the urgency."""
    assert document_meta({}, hint="nghi-quyet").type == "resolution"
    assert document_meta({"number": "12-NQ/TU"}, hint="Nghị quyết").number == "12-NQ/TU"
    assert document_meta({}, hint="hoa-toc").urgency == "flash"
    assert document_meta({"type": "resolution"}, hint="nghi-quyet").type == "resolution"


def test_folder_and_sidecar_that_disagree_or_unknown_folder_are_refused() -> None:
    """A contradiction is not resolved silently; an unknown folder lists the choices."""
    with pytest.raises(MetadataError, match="the sidecar says 'report' but the folder"):
        document_meta({"type": "bao-cao"}, hint="nghi-quyet")
    with pytest.raises(MetadataError, match=r"'lưu trữ' is neither a document type nor an "
                                            r"urgency. Use a type: resolution"):
        document_meta({}, hint="lưu trữ")


def test_configured_types_restrict_what_clerks_may_send() -> None:
    """With [documents] types = ["report", "to-trinh"], a resolution is refused; messages and
    the office's own type are allowed."""
    types = ("report", "to-trinh")
    assert document_meta({"type": "To trinh"}, types=types).type == "to-trinh"
    assert document_meta({"type": "tin nhắn"}, types=types).kind == "message"
    with pytest.raises(MetadataError, match="use one of: report .báo cáo., to-trinh, message"):
        document_meta({"type": "nghị quyết"}, types=types)


def test_document_meta_refuses_impossible_values() -> None:
    """The frozen value checks itself too (no unknown urgency can reach the envelope)."""
    with pytest.raises(ValueError):
        DocumentMeta(urgency="sometime")


def test_confidentiality_guard() -> None:
    """Secret needs permission per peer (or via a group); top-secret is not implied by secret;
    a group dispatch names every member that is not allowed."""
    allowed = {"hdnd": ("secret",), "council": ("top-secret",)}
    groups = {"council": ("ubnd", "mttq")}
    check_confidentiality("confidential", ["so-tc"], allowed=allowed, groups=groups)
    check_confidentiality("secret", ["hdnd"], allowed=allowed, groups=groups)
    check_confidentiality("top-secret", ["ubnd", "mttq"], allowed=allowed, groups=groups)
    with pytest.raises(MetadataError, match="not allowed to send top-secret documents to hdnd"):
        check_confidentiality("top-secret", ["hdnd"], allowed=allowed, groups=groups)
    with pytest.raises(MetadataError, match=r"secret documents to so-tc, ubnd\b") as caught:
        check_confidentiality("secret", ["hdnd", "ubnd", "so-tc"], allowed=allowed,
                              groups=groups)
    assert caught.value.code == "confidentiality-refused"




# -- the tables --------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def _status(status: str, token: str, peer: str = "HDND", time: str = T1) -> NewStatus:
    digest = (token * 64)[:64]
    return NewStatus(message_id=MID, peer_node_id=peer, sender_node_id="ME", status=status,
                     note="", register_number="152/VP" if status == "registered" else None,
                     token=f"t.{token}.s", token_sha256=digest, receipt_sha256="a" * 64,
                     time=time)


def test_control_requests_go_new_to_done_or_failed_once(store: Store) -> None:
    """Requests are served oldest first; a finished one cannot change its outcome."""
    first = store.add_control_request("status", MID, {"status": "registered"}, T0, peer="S")
    second = store.add_control_request("recall", MID, {"reason": "nhầm"}, T1)
    assert [r.id for r in store.control_requests()] == [first.id, second.id]
    store.finish_control_request(first.id, T2)
    store.finish_control_request(first.id, T2)
    store.finish_control_request(second.id, T2, error="no such document")
    assert store.control_requests() == []
    assert store.get_control_request(second.id).error == "no such document"
    with pytest.raises(InvalidTransition):
        store.finish_control_request(first.id, T2, error="late")
    with pytest.raises(ValueError):
        store.add_control_request("delete", MID, {}, T0)


def test_statuses_are_kept_once_in_order(store: Store) -> None:
    """The same token twice is one row; the latest processing status ignores recall answers."""
    assert store.record_status(_status("registered", "a"), T1)
    assert not store.record_status(_status("registered", "a"), T2)
    assert store.record_status(_status("in-progress", "b", time=T2), T2)
    assert store.record_status(_status("recall-accepted", "c", time=T2), T2)
    assert [s.status for s in store.statuses_for(MID)] == ["registered", "in-progress",
                                                           "recall-accepted"]
    assert store.last_processing_status(MID, "HDND") == "in-progress"
    assert store.last_processing_status(MID, "UBND") is None
    assert store.has_status("a" * 64) and not store.has_status("d" * 64)


def test_recalls_are_kept_once_and_refusals_say_why(store: Store) -> None:
    """A recall token is kept once; a refused recall must carry its reason."""
    item = NewRecall(message_id=MID, sender_node_id="S", token="r.t.s", token_sha256="b" * 64,
                     reason="nhầm", replaced_by=None, state="accepted", refusal=None,
                     recalled_path="recalled/alpha/cv.pdf", time=T0)
    assert store.record_recall(item, T1) and not store.record_recall(item, T2)
    assert store.recall_by_token("b" * 64).recalled_path == "recalled/alpha/cv.pdf"
    assert [r.state for r in store.recalls_for(MID, "S")] == ["accepted"]
    with pytest.raises(ValueError):
        NewRecall(message_id=MID, sender_node_id="S", token="t", token_sha256="c" * 64,
                  reason="x", replaced_by=None, state="refused", refusal=None,
                  recalled_path=None, time=T0)


# -- command line ------------------------------------------------------------------------------

@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "lienthong.toml").write_text(render_config(
        name="tinhuy", display_name="Tỉnh ủy", listen="127.0.0.1:7701",
        advertise=["127.0.0.1:7701"]), encoding="utf-8")
    return home


def run(home: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--lang", "en", *args, "--home", str(home)])


def test_write_message_puts_the_sidecar_first_then_the_text(home: Path) -> None:
    """The .meta.toml exists before the .txt appears, and says type = message."""
    from lienthong.config.loader import load_config
    config = load_config(home)
    path = write_message(config, ["hdnd"], "Họp lúc 14h", now=1795600000.0, urgency="flash",
                         reply_to=MID)
    assert path.parent == config.outbox / "hdnd" and path.name.endswith("-message.txt")
    assert path.read_text(encoding="utf-8") == "Họp lúc 14h\n"
    meta = document_meta(parse_sidecar(path.with_name(path.name + ".meta.toml").read_bytes()))
    assert (meta.kind, meta.urgency, meta.reply_to) == ("message", "flash", MID)
    second = write_message(config, ["hdnd"], "Lần hai", now=1795600000.0)
    assert second != path and second.exists()
    with pytest.raises(ValueError, match="empty"):
        write_message(config, ["hdnd"], "  ", now=0.0)
    with pytest.raises(ValueError, match="at most 64 KiB"):
        write_message(config, ["hdnd"], "x" * 70000, now=0.0)


def test_cli_message_checks_its_options(home: Path) -> None:
    """An unknown urgency or a malformed reply-to is refused before anything is written."""
    assert "not known" in run(home, "message", "--to", "hdnd", "--urgency", "gấp", "x").output
    bad = run(home, "message", "--to", "hdnd", "--reply-to", "12", "x")
    assert bad.exit_code == 2 and "--reply-to" in bad.output
    assert not (home / "outbox" / "hdnd").exists()


def test_cli_mark_refuses_what_the_daemon_could_not_do(home: Path) -> None:
    """Unknown document, unknown status, registered without a number, rejected without a
    reason and a finished document are refused with a plain sentence (exit 2)."""
    cases = [
        (["mark", MID, "registered", "--number", "1"], "no document with message ID"),
        (["mark", MID, "archived"], "STATUS 'archived' is not known"),
        (["mark", MID, "vào sổ"], "needs the incoming-register number"),
        (["mark", MID, "từ chối"], "needs the reason"),
        (["mark", "xyz", "completed"], "32 hexadecimal"),
    ]
    for args, message in cases:
        result = run(home, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    store = open_store(f"sqlite:///{home / 'state' / 'lienthong.db'}")
    try:
        received = make_received(1, "SENDER")
        store.begin_publish(received, T0)
        store.complete_publish("SENDER", received.message_id, "receipt", T0)
        store.record_status(NewStatus(received.message_id, "ME", "SENDER", "completed", "",
                                      None, "t", "9" * 64, "a" * 64, T1), T1)
    finally:
        store.close()
    result = run(home, "mark", received.message_id, "in-progress")
    assert result.exit_code == 2 and "already 'completed'" in result.output


def test_cli_recall_and_track(home: Path) -> None:
    """recall queues a request for a sent document once; track shows the matrix as JSON."""
    store = open_store(f"sqlite:///{home / 'state' / 'lienthong.db'}")
    try:
        dispatch = make_dispatch(5, ("HDND", "UBND"))
        store.add_dispatch(dispatch, T0)
        store.record_receipt(dispatch.message_id, "HDND", "rec.eipt.sig", T1)
    finally:
        store.close()
    assert "no document" in run(home, "recall", MID, "--reason", "x").output
    queued = run(home, "recall", dispatch.message_id, "--reason", "Ban hành nhầm")
    assert queued.exit_code == 0, queued.output
    tracked = json.loads(run(home, "track", dispatch.message_id, "--json").output)
    assert {r["node_id"]: r["delivery"] for r in tracked["recipients"]} == {
        "HDND": "delivered", "UBND": "waiting"}
    store = open_store(f"sqlite:///{home / 'state' / 'lienthong.db'}")
    try:
        (request,) = store.control_requests()
        assert (request.kind, request.payload["reason"]) == ("recall", "Ban hành nhầm")
        assert lifecycle(store, MID) == {"message_id": MID, "recalls": []}
    finally:
        store.close()
    assert run(home, "track", MID).exit_code == 2


def test_dates_accept_toml_dates() -> None:
    """A TOML date value (unquoted) is read as such."""
    assert document_meta({"date": dt.date(2026, 11, 20)}).date == "2026-11-20"


def test_recall_mark_and_track_speak_vietnamese_by_default_and_english_on_request(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What recall, mark and track print is in the clerk's language: Vietnamese by default
    (states and statuses by their Vietnamese names, dates dd/mm/yyyy), English with --lang en."""
    monkeypatch.delenv("LIENTHONG_LANG", raising=False)
    store = open_store(f"sqlite:///{home / 'state' / 'lienthong.db'}")
    try:
        dispatch = make_dispatch(5, ("HDND", "UBND"))
        store.add_dispatch(dispatch, T0)
        store.record_receipt(dispatch.message_id, "HDND", "rec.eipt.sig", T1)
        received = make_received(1, "SENDER")
        store.begin_publish(received, T0)
        store.complete_publish("SENDER", received.message_id, "receipt", T0)
    finally:
        store.close()

    def vi(*args: str) -> Any:
        return CliRunner().invoke(main, [*args, "--home", str(home)])
    recalled = vi("recall", dispatch.message_id, "--reason", "Ban hành nhầm")
    assert recalled.exit_code == 0 and "Đang thu hồi" in recalled.output, recalled.output
    tracked = vi("track", dispatch.message_id)
    assert tracked.exit_code == 0, tracked.output
    assert "đã gửi" in tracked.output and "Đã chuyển, đã kiểm tra biên nhận" in tracked.output
    assert "Đang chờ chuyển" in tracked.output and "delivered" not in tracked.output
    english = run(home, "track", dispatch.message_id)
    assert "(sent, " in english.output and "Delivered, receipt verified" in english.output
    marked = vi("mark", received.message_id, "registered", "--number", "152/VP")
    assert marked.exit_code == 0 and "là đã vào sổ" in marked.output, marked.output
    marked = run(home, "mark", received.message_id, "assigned")
    assert "as assigned; the running node signs it" in marked.output, marked.output
