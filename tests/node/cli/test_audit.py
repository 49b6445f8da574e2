"""The audit and receipt commands, run through click on an honest store built by the real code."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from lienthong.keys.card import read_card
from lienthong.keys.jws import b64url_encode, canonical_json
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.cli.main import main
from lienthong.node.store.audit_chain import GENESIS_HASH
from tests.node.audit.test_verify import SENT_TEXT, Home, make_honest_home


@pytest.fixture
def honest(tmp_path: Path) -> Home:
    return make_honest_home(tmp_path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--lang", "en", *(str(a) for a in args)],
                                catch_exceptions=False)
    return result.exit_code, result.output


def okp(public: bytes) -> OKPKey:
    return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public)})


# -- verify --------------------------------------------------------------------------------------

def test_verify_passes_with_exit_0_on_an_honest_store(honest: Home) -> None:
    """audit verify HOME says it verified and exits 0."""
    code, output = run("audit", "verify", honest.home)
    assert code == 0, output
    assert "✓ Verified" in output and "6 entries" in output and "2 checked" in output


def test_verify_names_the_edited_entry_and_exits_1(honest: Home) -> None:
    """After editing entry 3 the command exits 1 and prints 'audit entry 3'."""
    with sqlite3.connect(honest.db_path) as raw:
        raw.execute("UPDATE audit SET time = '2026-11-25T09:00:00.000Z' WHERE seq = 3")
    code, output = run("audit", "verify", "--home", honest.home)
    assert code == 1
    assert "✗ audit entry 3:" in output and "FAILED: 1 problem(s)" in output


def test_verify_json_lists_each_problem(honest: Home) -> None:
    """--json gives ok=false and one problem per altered file, with its path."""
    honest.sent_file.write_bytes(b"changed")
    code, output = run("audit", "verify", honest.home, "--json")
    report = json.loads(output)
    assert code == 1 and report["ok"] is False
    assert [(p["check"], p["path"]) for p in report["problems"]] == [
        ("files", "sent/hdnd/Công văn 45.txt")]


# -- list and trail ------------------------------------------------------------------------------

def test_audit_alone_lists_and_filters_by_peer_and_kind(honest: Home) -> None:
    """'audit HOME' lists; --peer and --kind narrow it; --json gives the stored fields."""
    code, output = run("audit", honest.home, "--json")
    assert code == 0 and [e["seq"] for e in json.loads(output)] == [1, 2, 3, 4, 5, 6]
    code, output = run("audit", "list", honest.home, "--peer", "hdnd", "--json")
    assert [e["kind"] for e in json.loads(output)] == ["receipt-verified", "received",
                                                       "receipt-issued"]
    code, output = run("audit", "list", honest.home, "--state", "received", "--json")
    assert [e["peer_name"] for e in json.loads(output)] == ["hdnd"]
    code, output = run("audit", "list", honest.home, "--limit", "2")
    assert "receipt-issued" in output and "taken" not in output


def test_audit_list_filters_by_date_range_and_document(honest: Home) -> None:
    """--since/--until take dates and times; --document takes a name part or a digest."""
    code, output = run("audit", "list", honest.home, "--since", "2026-11-25T08:00:06+00:00",
                       "--json")
    assert [e["kind"] for e in json.loads(output)] == ["received", "receipt-issued"]
    code, output = run("audit", "list", honest.home, "--until", "2026-11-24", "--json")
    assert json.loads(output) == []
    code, output = run("audit", "list", honest.home, "--document", "kỳ họp", "--json")
    assert {e["message_id"] for e in json.loads(output)} == {honest.received_message_id}
    digest = hashlib.sha256(SENT_TEXT).hexdigest()
    code, output = run("audit", "list", honest.home, "--document", digest, "--json")
    assert [e["kind"] for e in json.loads(output)] == ["sealed", "receipt-verified",
                                                       "delivered"]
    code, output = run("audit", "list", honest.home, "--peer", "nobody")
    assert code == 2 and "no peer named 'nobody'" in output


def test_trail_shows_one_document_from_a_prefix_or_name(honest: Home) -> None:
    """audit trail finds a document by the start of its ID or part of its name."""
    code, output = run("audit", "trail", honest.sent_message_id[:8], honest.home)
    assert code == 0 and "Công văn 45.txt" in output and "receipt-verified" in output
    code, output = run("audit", "trail", "Báo cáo", "--home", honest.home, "--json")
    story = json.loads(output)
    assert story["received"][0]["from"] == "hdnd" and story["sent"] is None
    assert [e["kind"] for e in story["events"]] == ["received", "receipt-issued"]
    code, output = run("audit", "trail", "không có", honest.home)
    assert code == 2 and "no document matches" in output


# -- export --------------------------------------------------------------------------------------

def test_csv_export_lets_an_auditor_recompute_the_chain(honest: Home) -> None:
    """From the CSV alone (hashlib + json), every entry's hash recomputes and links up."""
    code, output = run("audit", "export", honest.home, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert code == 0 and len(rows) == 6
    prev = GENESIS_HASH
    for row in rows:
        fields = {"seq": int(row["seq"]), "time": row["time"], "kind": row["kind"],
                  "peer": row["peer"] or None, "message_id": row["message_id"] or None,
                  "digest": row["digest"] or None, "detail": json.loads(row["detail"])}
        data = prev.encode() + b"\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"),
                                                 ensure_ascii=False).encode()
        assert row["prev_hash"] == prev and hashlib.sha256(data).hexdigest() == row["hash"]
        prev = row["hash"]
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row.values())


def test_json_export_carries_heads_an_auditor_can_check_with_joserfc(honest: Home,
                                                                     tmp_path: Path) -> None:
    """The exported head verifies with joserfc and the node's card key, and matches the tip."""
    target = tmp_path / "audit.json"
    code, _ = run("audit", "export", honest.home, "--format", "json", "-o", target)
    export = json.loads(target.read_text())
    head = export["heads"][-1]
    with warnings.catch_warnings():  # joserfc 1.8 flags the name "EdDSA" (RFC 9864)
        warnings.simplefilter("ignore")
        verified = jose_jws.deserialize_compact(head["signature"],
                                                okp(honest.card.identity_public),
                                                algorithms=["EdDSA"])
    payload = json.loads(verified.payload)
    assert code == 0 and payload["seq"] == export["entries"][-1]["seq"] == head["seq"]
    assert payload["hash"] == export["entries"][-1]["hash"]
    assert payload["node_id"] == export["node"]["node_id"] == honest.card.node_id


def test_export_filters_like_list(honest: Home) -> None:
    """--kind applies to the export too."""
    code, output = run("audit", "export", honest.home, "--format", "json", "--kind", "taken")
    assert code == 0 and [e["kind"] for e in json.loads(output)["entries"]] == ["taken"]


def test_hostile_detail_cannot_become_a_spreadsheet_formula(honest: Home) -> None:
    """A peer-supplied name starting with '=' stays inside the JSON detail cell."""
    store = honest.store()
    try:
        store.append_audit("rejected", "2026-11-25T08:01:00.000Z", peer=honest.peer.node_id,
                           detail={"name": '=HYPERLINK("http://evil")', "code": "bad-envelope"})
    finally:
        store.close()
    code, output = run("audit", "export", honest.home, "--format", "csv")
    last = list(csv.reader(io.StringIO(output)))[-1]
    assert code == 0 and last[7].startswith("{") and "=HYPERLINK" in last[7]
    assert not any(cell.startswith("=") for cell in last)


# -- receipt verify ------------------------------------------------------------------------------

def receipt_file(honest: Home) -> Path:
    return honest.sent_file.parent / "Công văn 45.txt.hdnd.receipt.jws"


def card_file(honest: Home, tmp_path: Path) -> Path:
    path = tmp_path / "hdnd.card"
    path.write_text(honest.peer_card.token + "\n")
    return path


def test_receipt_verifies_offline_with_the_peer_card_and_the_document(
        honest: Home, tmp_path: Path) -> None:
    """With only the peer's card, the receipt verifies and names exactly the kept document."""
    code, output = run("receipt", "verify", receipt_file(honest), "--card",
                       card_file(honest, tmp_path), "--document", honest.sent_file)
    assert code == 0, output
    assert "✓ Valid receipt, signed by hdnd" in output and "is exactly that document" in output


def test_receipt_with_another_document_or_a_changed_byte_fails(honest: Home,
                                                                tmp_path: Path) -> None:
    """Another file, or one altered character in the receipt, exits 1."""
    other = tmp_path / "other.txt"
    other.write_bytes(b"not the document")
    code, output = run("receipt", "verify", receipt_file(honest), "--card",
                       card_file(honest, tmp_path), "--document", other)
    assert code == 1 and "the receipt names" in output
    token = receipt_file(honest).read_text().strip()
    head, payload, signature = token.split(".")
    bad = tmp_path / "bad.jws"
    bad.write_text(f"{head}.{payload[:-3]}{'A' if payload[-3] != 'A' else 'B'}{payload[-2:]}"
                   f".{signature}")
    code, output = run("receipt", "verify", bad, "--card", card_file(honest, tmp_path))
    assert code == 1 and "✗" in output


def test_receipt_verify_without_a_card_uses_the_key_history(honest: Home) -> None:
    """Without --card, the signer's key comes from this node's directory (and JSON says so)."""
    code, output = run("receipt", "verify", receipt_file(honest), "--home", honest.home, "--json")
    result = json.loads(output)
    assert code == 0 and result["valid"] and result["signer"] == "hdnd"
    assert result["sha256"] == hashlib.sha256(SENT_TEXT).hexdigest()


def test_receipt_verify_refuses_a_card_of_another_office(honest: Home, tmp_path: Path) -> None:
    """Our own card cannot vouch for hdnd's receipt."""
    own = tmp_path / "own.card"
    own.write_text(honest.card.token)
    code, output = run("receipt", "verify", receipt_file(honest), "--card", own)
    assert code == 1 and "does NOT verify" in output


def test_canonical_json_is_what_the_docs_tell_auditors_to_use() -> None:
    """json.dumps(sort_keys, compact separators, ensure_ascii=False) equals canonical_json."""
    value = {"b": 1, "a": "Tờ trình", "c": None}
    assert json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode() == canonical_json(value)


# -- docs/audit.md ---------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs" / "audit.md"


def docs_example(name: str) -> str:
    found = re.search(rf"<!-- example:{name} -->\n```text\n(.*?)\n```", DOCS.read_text(),
                      re.S)
    assert found is not None, f"docs/audit.md lost its {name} example"
    return found.group(1)


def test_the_worked_example_in_the_docs_verifies(tmp_path: Path) -> None:
    """The receipt, card and document printed in docs/audit.md verify, as the text says."""
    document = (docs_example("document") + "\n").encode()
    card = read_card(docs_example("card"))
    token = docs_example("receipt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verified = jose_jws.deserialize_compact(token, okp(card.identity_public),
                                                algorithms=["EdDSA"])
    payload = json.loads(verified.payload)
    assert payload["sha256"] == hashlib.sha256(document).hexdigest() and payload["size"] == 84
    assert payload["recipient"] == card.node_id == node_id_from_public_key(card.identity_public)
    text = DOCS.read_text()
    assert payload["sha256"] in text and card.node_id in text and payload["message_id"] in text
    files = {name: tmp_path / name for name in ("receipt.jws", "hdnd.card", "doc.txt")}
    files["receipt.jws"].write_text(token + "\n")
    files["hdnd.card"].write_text(card.token + "\n")
    files["doc.txt"].write_bytes(document)
    code, output = run("receipt", "verify", files["receipt.jws"], "--card", files["hdnd.card"],
                       "--document", files["doc.txt"])
    assert code == 0 and "is exactly that document" in output
