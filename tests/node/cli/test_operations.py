"""The rough edges a new office met (issue 20), at the command line: a failed init or restore
leaves nothing behind, init asks for an address other offices can dial, the clerks' outbox
folders exist after a restore, and backup reports the size of the file it wrote."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lienthong.keys.card import read_card
from lienthong.node.cli.main import main


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the English wording, so they ask for it (the default is Vietnamese;
    test_words.py shows the Vietnamese)."""
    monkeypatch.setenv("LIENTHONG_LANG", "en")


def _init(runner: CliRunner, home: Path, name: str, port: int) -> None:
    result = runner.invoke(main, ["init", str(home), "--name", name, "--listen",
                                  f"127.0.0.1:{port}", "--kdf", "minimal"])
    assert result.exit_code == 0, result.output


def test_a_failed_init_leaves_no_folder_behind(tmp_path: Path) -> None:
    """The configuration is refused after the folders were made: they go again; an empty
    folder the operator made beforehand is left, empty."""
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(tmp_path / "new"), "--name", "Tên sai!",
                                  "--listen", "127.0.0.1:17001", "--kdf", "minimal"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "new").exists()
    (tmp_path / "given").mkdir()
    result = runner.invoke(main, ["init", str(tmp_path / "given"), "--name", "Tên sai!",
                                  "--listen", "127.0.0.1:17001", "--kdf", "minimal"])
    assert result.exit_code == 2
    assert (tmp_path / "given").is_dir() and list((tmp_path / "given").iterdir()) == []


def test_init_with_a_wildcard_listen_asks_for_an_address_others_can_dial(
        tmp_path: Path) -> None:
    """Without --advertise the card would carry 0.0.0.0:7701: a script is refused with what to
    add (nothing is created), and a person at a terminal is asked."""
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(tmp_path / "a"), "--name", "alpha",
                                  "--kdf", "minimal"])
    assert result.exit_code == 2
    assert "--advertise" in result.output and "0.0.0.0:7701" in result.output
    assert not (tmp_path / "a").exists()
    result = runner.invoke(main, ["init", str(tmp_path / "b"), "--name", "beta", "--kdf",
                                  "minimal", "--advertise", "10.1.2.3:7701"])
    assert result.exit_code == 0, result.output
    card = read_card((tmp_path / "b" / "beta.card").read_text())
    assert card.addresses == ("10.1.2.3:7701",)


def test_a_failed_restore_leaves_no_folder_and_a_good_one_makes_the_outbox_folders(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    _init(runner, tmp_path / "b", "beta", 17002)
    home = ["--home", str(tmp_path / "a")]
    added = runner.invoke(main, ["peers", "add", str(tmp_path / "b" / "beta.card"), "--yes",
                                 *home])
    assert added.exit_code == 0, added.output
    backup_file = tmp_path / "alpha.backup"
    made = runner.invoke(main, ["backup", str(backup_file), *home])
    assert made.exit_code == 0, made.output
    assert f"({backup_file.stat().st_size:,} bytes)" in made.output

    monkeypatch.setenv("LIENTHONG_PASSPHRASE", "not the passphrase")
    failed = runner.invoke(main, ["restore", str(backup_file), str(tmp_path / "restored")])
    assert failed.exit_code == 2, failed.output
    assert not (tmp_path / "restored").exists()
    assert not list(tmp_path.glob(".restored.restore-*"))

    passphrase = (tmp_path / "a" / "keys" / "passphrase").read_text().strip()
    monkeypatch.setenv("LIENTHONG_PASSPHRASE", passphrase)
    restored = runner.invoke(main, ["restore", str(backup_file), str(tmp_path / "restored")])
    assert restored.exit_code == 0, restored.output
    assert (tmp_path / "restored" / "outbox" / "beta").is_dir()


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(command, click.Group):
        return [found for name, sub in command.commands.items()
                for found in _commands(sub, (*path, name))]
    return [path]


def test_every_command_takes_the_home_the_same_way(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--home on every command that works on a node home (the demo makes its own), and
    $LIENTHONG_HOME when none is given, init and run included."""
    missing = []
    for path in _commands(main):
        command = main
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        if path != ("demo",) and not any("--home" in p.opts for p in command.params
                                         if isinstance(p, click.Option)):
            missing.append(" ".join(path))
    assert missing == []
    runner = CliRunner()
    monkeypatch.setenv("LIENTHONG_HOME", str(tmp_path / "env-home"))
    made = runner.invoke(main, ["init", "--name", "alpha", "--listen", "127.0.0.1:17201",
                                "--kdf", "minimal"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "env-home" / "lienthong.toml").exists()
    listed = runner.invoke(main, ["peers", "list"])
    assert listed.exit_code == 0 and "No peers yet" in listed.output
    monkeypatch.delenv("LIENTHONG_HOME")
    unnamed = runner.invoke(main, ["init", "--name", "beta", "--kdf", "minimal",
                                   "--listen", "127.0.0.1:17202"])
    assert unnamed.exit_code == 2 and "LIENTHONG_HOME" in unnamed.output


def test_revoke_in_a_script_without_yes_refuses_in_words(tmp_path: Path) -> None:
    """Not "Aborted!": the refusal says what to add, and nothing is revoked."""
    runner = CliRunner()
    _init(runner, tmp_path / "a", "alpha", 17001)
    _init(runner, tmp_path / "b", "beta", 17002)
    home = ["--home", str(tmp_path / "a")]
    assert runner.invoke(main, ["peers", "add", str(tmp_path / "b" / "beta.card"), "--yes",
                                *home]).exit_code == 0
    refused = runner.invoke(main, ["peers", "revoke", "beta", *home])
    assert refused.exit_code == 2
    assert "Aborted" not in refused.output and "--yes" in refused.output
    listed = runner.invoke(main, ["peers", "list", "--json", *home])
    assert '"trusted"' in listed.output
