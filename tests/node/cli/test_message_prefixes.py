"""Message IDs people can type (issue 20): mark, track, recall accept a unique prefix of 6
characters or more and list the documents that match when it is ambiguous; the node's own
statuses and recalls are not documents there, nor among the latest documents in status."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from lienthong.config.loader import load_config
from lienthong.keys.card import read_card
from lienthong.keys.directory import Peer
from lienthong.node.cli.main import main
from lienthong.node.store.database import open_store
from tests.node.storehelp import T0, make_dispatch

ONE = "abcdef12" + "0" * 24
TWO = "abcdef34" + "0" * 24
STATUS = "abcdef99" + "0" * 24


def _home(tmp_path: Path) -> list[str]:
    runner = CliRunner()
    for name, port in (("alpha", 17101), ("beta", 17102)):
        done = runner.invoke(main, ["init", str(tmp_path / name), "--name", name, "--listen",
                                    f"127.0.0.1:{port}", "--kdf", "minimal"])
        assert done.exit_code == 0, done.output
    card = read_card((tmp_path / "beta" / "beta.card").read_text())
    store = open_store(load_config(tmp_path / "alpha").store.url)
    try:
        store.add_peer(Peer.from_card(card, now=T0), card.token, T0)
        store.add_dispatches([
            replace(make_dispatch(1, (card.node_id,), name="Công văn 1.pdf"), message_id=ONE),
            replace(make_dispatch(2, (card.node_id,), name="Công văn 2.pdf"), message_id=TWO),
            replace(make_dispatch(3, (card.node_id,), name="status.jws"), message_id=STATUS,
                    meta={"kind": "status"})], T0)
    finally:
        store.close()
    return ["--home", str(tmp_path / "alpha")]


def test_a_unique_prefix_names_a_document_and_an_ambiguous_one_lists_them(
        tmp_path: Path) -> None:
    home = _home(tmp_path)
    runner = CliRunner(env={"LIENTHONG_LANG": "en"})  # the wording of the errors
    tracked = runner.invoke(main, ["track", "ABCDEF12", "--json", *home])
    assert tracked.exit_code == 0, tracked.output
    assert json.loads(tracked.output)["message_id"] == ONE
    ambiguous = runner.invoke(main, ["track", "abcdef", *home])
    assert ambiguous.exit_code == 2
    assert "2 documents start with abcdef" in ambiguous.output
    assert ONE in ambiguous.output and "Công văn 2.pdf" in ambiguous.output
    assert STATUS not in ambiguous.output  # a status is not a document
    assert runner.invoke(main, ["track", "abcdef9", *home]).exit_code == 2
    short = runner.invoke(main, ["recall", "abcde", "--reason", "sai", *home])
    assert short.exit_code == 2 and "first 6 characters" in short.output
    recalled = runner.invoke(main, ["recall", "abcdef34", "--reason", "sai sót", *home])
    assert recalled.exit_code == 0, recalled.output
    assert "Công văn 2.pdf" in recalled.output
    trail = runner.invoke(main, ["audit", "trail", "abcdef", *home])
    assert trail.exit_code == 2 and "2 documents" in trail.output
    assert "Công văn 1.pdf" in trail.output and "Công văn 2.pdf" in trail.output


def test_status_lists_documents_not_the_nodes_own_control_objects(tmp_path: Path) -> None:
    home = _home(tmp_path)
    shown = CliRunner().invoke(main, ["status", "--json", *home])
    assert shown.exit_code == 0, shown.output
    names = [row["name"] for row in json.loads(shown.output)["recent_sent"]]
    assert sorted(names) == ["Công văn 1.pdf", "Công văn 2.pdf"]
