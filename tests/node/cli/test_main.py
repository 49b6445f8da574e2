"""The command line as a clerk or IT officer uses it: init, peers, send; errors are sentences."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong.config.loader import load_config
from lienthong.keys.card import read_card, verification_code
from lienthong.node.cli.main import main


def _init(runner: CliRunner, home: Path, name: str, port: int) -> str:
    result = runner.invoke(main, ["init", str(home), "--name", name, "--listen",
                                  f"127.0.0.1:{port}", "--kdf", "minimal"])
    assert result.exit_code == 0, result.output
    return result.output


def test_init_creates_a_private_home_and_prints_the_node_id(tmp_path: Path) -> None:
    """init writes config, a 0600 keystore in a 0700 folder, a card, and prints the node ID."""
    runner = CliRunner()
    output = _init(runner, tmp_path / "a", "alpha", 17001)
    card = read_card((tmp_path / "a" / "alpha.card").read_text())
    assert card.node_id in output
    keystore = tmp_path / "a" / "keys" / "keystore.json"
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert stat.S_IMODE(keystore.parent.stat().st_mode) == 0o700
    assert card.addresses == ("127.0.0.1:17001",)


def test_init_refuses_an_existing_home(tmp_path: Path) -> None:
    """A second init in the same folder is refused with a sentence, not a traceback."""
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    result = runner.invoke(main, ["--lang", "en", "init", str(tmp_path / "a"), "--name",
                                  "alpha", "--kdf", "minimal"])
    assert result.exit_code == 2
    assert "already holds a node" in result.output
    said = runner.invoke(main, ["init", str(tmp_path / "a"), "--name", "alpha", "--kdf",
                                "minimal"])
    assert said.exit_code == 2 and said.output.startswith("Lỗi: "), said.output
    assert "đã chứa một nút (đã có lienthong.toml)" in said.output


def test_peers_add_shows_code_and_enrols_then_show_revoke_remove(tmp_path: Path) -> None:
    """peers add shows the node ID and the shared code; show/revoke/remove act on the store."""
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    _init(runner, tmp_path / "b", "beta", 17002)
    alpha_card = read_card((tmp_path / "a" / "alpha.card").read_text())
    beta_card = read_card((tmp_path / "b" / "beta.card").read_text())
    home = ["--home", str(tmp_path / "a")]
    refused = runner.invoke(main, ["--lang", "en", "peers", "add",
                                   str(tmp_path / "b" / "beta.card"), *home], input="n\n")
    assert refused.exit_code == 2 and "not enrolled" in refused.output
    result = runner.invoke(main, ["peers", "add", str(tmp_path / "b" / "beta.card"), *home],
                           input="y\n")
    assert result.exit_code == 0, result.output
    assert beta_card.node_id in result.output
    assert verification_code(alpha_card.node_id, beta_card.node_id) in result.output
    assert (tmp_path / "a" / "outbox" / "beta").is_dir()
    listed = json.loads(runner.invoke(main, ["peers", "list", "--json", *home]).output)
    assert [(p["name"], p["state"]) for p in listed] == [("beta", "trusted")]
    shown = runner.invoke(main, ["peers", "show", "beta", *home])
    assert "identity" in shown.output and beta_card.node_id in shown.output
    revoked = runner.invoke(main, ["peers", "revoke", "beta", "--reason", "key lost", "--yes",
                                   *home])
    assert revoked.exit_code == 0, revoked.output
    listed = json.loads(runner.invoke(main, ["peers", "list", "--json", *home]).output)
    assert listed[0]["state"] == "revoked"
    removed = runner.invoke(main, ["peers", "remove", "beta", "--yes", *home])
    assert removed.exit_code == 0
    assert json.loads(runner.invoke(main, ["peers", "list", "--json", *home]).output) == []


def test_tampered_card_is_refused(tmp_path: Path) -> None:
    """A card whose bytes were altered is refused with the reason, and nothing is enrolled."""
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    _init(runner, tmp_path / "b", "beta", 17002)
    token = (tmp_path / "b" / "beta.card").read_text().strip()
    head, payload, signature = token.split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    bad = tmp_path / "bad.card"
    bad.write_text(".".join([head, flipped, signature]) + "\n")
    result = runner.invoke(main, ["peers", "add", str(bad), "--yes", "--home", str(tmp_path / "a")])
    assert result.exit_code == 2
    listed = json.loads(runner.invoke(main, ["peers", "list", "--json", "--home",
                                             str(tmp_path / "a")]).output)
    assert listed == []


def test_send_puts_the_file_in_the_outbox_atomically(tmp_path: Path) -> None:
    """send copies the file into outbox/<a+b>/ under its own name, leaving no temp file."""
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    source = tmp_path / "Tờ trình.pdf"
    source.write_bytes(b"%PDF-1.7 to trinh")
    result = runner.invoke(main, ["send", str(source), "--to", "ubnd,hdnd", "--home",
                                  str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "a" / "outbox" / "hdnd+ubnd"
    assert sorted(os.listdir(folder)) == ["Tờ trình.pdf"]
    assert (folder / "Tờ trình.pdf").read_bytes() == b"%PDF-1.7 to trinh"


def test_the_edge_turns_node_and_lower_layer_errors_into_a_sentence_and_status_2(
        tmp_path: Path) -> None:
    """Commands let NodeError (here a BackupError), KeysError and ConfigError rise; the group
    prints the message, no traceback, and exits 2."""
    runner = CliRunner()
    not_a_backup = tmp_path / "backup.lienthong"
    not_a_backup.write_bytes(b"not a backup at all")
    restored = runner.invoke(main, ["--lang", "en", "restore", str(not_a_backup),
                                    str(tmp_path / "home")])
    assert restored.exit_code == 2 and restored.output.startswith("Error: "), restored.output
    assert isinstance(restored.exception, SystemExit) and "Traceback" not in restored.output
    unconfigured = runner.invoke(main, ["--lang", "en", "status", str(tmp_path / "nowhere")])
    assert unconfigured.exit_code == 2 and unconfigured.output.startswith("Error: "), \
        unconfigured.output
    _init(runner, tmp_path / "a", "alpha", 17001)
    load_config(tmp_path / "a").card_path.write_text("damaged", encoding="utf-8")
    unreadable = runner.invoke(main, ["--lang", "en", "status", str(tmp_path / "a")])
    assert unreadable.exit_code == 2, unreadable.output
    assert "cannot read this node's own card" in unreadable.output


def test_run_standby_refuses_a_sqlite_store_and_a_bad_listen_address(tmp_path: Path) -> None:
    """run --standby needs a PostgreSQL store; --listen is checked like [node] listen. Both are
    one sentence and exit status 2, before anything is written."""
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    result = runner.invoke(main, ["--lang", "en", "run", "--standby", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "shares one PostgreSQL database" in result.output
    result = runner.invoke(main, ["--lang", "en", "run", "--listen", "nowhere",
                                  str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "--listen: expected an address like 127.0.0.1:7701" in result.output
    assert not (tmp_path / "a" / "logs" / "lienthong.jsonl").exists()


def test_errors_are_said_in_vietnamese_by_default_and_in_english_on_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration error (config/ cannot import the catalog: it carries its format string
    and fields) and a node's own error are shown in Vietnamese unless --lang en, LIENTHONG_LANG
    or the node's ``language = "en"`` says otherwise."""
    monkeypatch.delenv("LIENTHONG_LANG", raising=False)
    runner = CliRunner()
    missing = runner.invoke(main, ["status", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert missing.output.startswith("Lỗi: ") and "không có cấu hình ở đây" in missing.output
    english = runner.invoke(main, ["--lang", "en", "status", str(tmp_path / "nowhere")])
    assert english.output.startswith("Error: ") and "no configuration here" in english.output
    monkeypatch.setenv("LIENTHONG_LANG", "en")
    assert "no configuration here" in runner.invoke(
        main, ["status", str(tmp_path / "nowhere")]).output
    monkeypatch.delenv("LIENTHONG_LANG")
    _init(runner, tmp_path / "a", "alpha", 17001)
    config_file = tmp_path / "a" / "lienthong.toml"
    config_file.write_text(config_file.read_text(encoding="utf-8").replace(
        'language = "vi"', 'language = "en"'), encoding="utf-8")
    load_config(tmp_path / "a").card_path.write_text("damaged", encoding="utf-8")
    unreadable = runner.invoke(main, ["status", str(tmp_path / "a")])
    assert unreadable.exit_code == 2 and "cannot read this node's own card" in unreadable.output
    config_file.write_text(config_file.read_text(encoding="utf-8").replace(
        'language = "en"', 'language = "vi"'), encoding="utf-8")
    unreadable = runner.invoke(main, ["status", str(tmp_path / "a")])
    assert unreadable.exit_code == 2 and "Lỗi: " in unreadable.output


def test_every_command_summary_is_in_vietnamese_and_english_on_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``lienthong --help`` and each command's help show its summary in Vietnamese by default
    (the catalog has every one: node/language/extract.py puts them there); --lang en (or
    LIENTHONG_LANG=en) gives back the English text."""
    from lienthong.node.language.catalog import translate
    from lienthong.node.language.extract import summary
    monkeypatch.delenv("LIENTHONG_LANG", raising=False)
    runner = CliRunner()
    shown = runner.invoke(main, ["--help"])
    assert shown.exit_code == 0 and "trao đổi văn bản giữa các cơ quan" in shown.output
    assert "Chạy nút cho đến khi nhận SIGTERM" in shown.output
    english = runner.invoke(main, ["--lang", "en", "--help"])
    assert "signed, end-to-end encrypted" in english.output
    assert "Run the node daemon until SIGTERM" in english.output
    nested = runner.invoke(main, ["peers", "--help"])
    assert "Đăng ký các cơ quan từ tệp thẻ" in nested.output
    status_help = runner.invoke(main, ["--lang=en", "status", "--help"])
    assert "One screen: is the node healthy" in status_help.output
    monkeypatch.setenv("LIENTHONG_LANG", "en")
    assert "List enrolled peers." in runner.invoke(main, ["peers", "--help"]).output

    def commands(command):  # type: ignore[no-untyped-def]
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from commands(sub)
    untranslated = [c.name for c in commands(main) if translate(
        "vi", summary(c.__dict__.get("_english_help", c.help))) == summary(
        c.__dict__.get("_english_help", c.help))]
    assert untranslated == []


def test_reconcile_and_report_errors_speak_the_clerks_language(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """A bad --period for reconcile, and report without --out, are one sentence in
    Vietnamese by default and in English with --lang en."""
    monkeypatch.delenv("LIENTHONG_LANG", raising=False)
    args = ["reconcile", "--peer", "hdnd", "--period", "2026-13", "--home", str(tmp_path)]
    vi = CliRunner().invoke(main, args)
    assert vi.exit_code == 2 and "không phải là một kỳ có thật" in vi.output, vi.output
    en = CliRunner().invoke(main, ["--lang", "en", *args])
    assert en.exit_code == 2 and "is not a period of a real date" in en.output
    assert "Lỗi" in CliRunner().invoke(main, ["report", "--year", "2026"]).output


def test_init_send_and_run_standby_speak_vietnamese_by_default_and_english_on_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """init's report, send's confirmation and run --standby's refusal on a SQLite store are
    in Vietnamese by default and in English with --lang en."""
    monkeypatch.delenv("LIENTHONG_LANG", raising=False)
    runner = CliRunner()
    output = _init(runner, tmp_path / "a", "alpha", 17001)
    assert "Đã tạo nút 'alpha'" in output and "Mã nút:" in output and "Thẻ nút:" in output
    assert "Created node" not in output
    english = runner.invoke(main, ["--lang", "en", "init", str(tmp_path / "b"), "--name",
                                   "beta", "--listen", "127.0.0.1:17002", "--kdf", "minimal"])
    assert "Created node 'beta'" in english.output and "Node ID:" in english.output
    source = tmp_path / "Tờ trình.pdf"
    source.write_bytes(b"%PDF-1.7 to trinh")
    home = ["--home", str(tmp_path / "a")]
    sent = runner.invoke(main, ["send", str(source), "--to", "ubnd", *home])
    assert sent.exit_code == 0 and "Đã xếp 'Tờ trình.pdf' vào hàng đợi" in sent.output
    sent = runner.invoke(main, ["--lang", "en", "send", str(source), "--to", "hdnd", *home])
    assert "Queued 'Tờ trình.pdf' as" in sent.output, sent.output
    standby = runner.invoke(main, ["run", "--standby", str(tmp_path / "a")])
    assert standby.exit_code == 2 and "dùng chung một cơ sở dữ liệu PostgreSQL" in \
        standby.output, standby.output
