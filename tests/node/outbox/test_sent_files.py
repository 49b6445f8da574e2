"""Filing into ``sent/`` (node/outbox/sent.py): what is durable before a spool folder goes.

A power cut after the spool folder is removed must not leave an empty receipt or summary in
``sent/``: nothing could write them again. So every file written beside a filed document is
fsynced (all written first, then each fsynced: one pass for the batch) before its folder's
fsync, and that before any spool folder is removed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.outbox import sent
from lienthong.node.spool.record import INTAKE_FILE, PAYLOAD_FILE


def _moves(tmp_path: Path, count: int) -> list[sent._Move]:
    moves = []
    for n in range(count):
        spool = tmp_path / "spool" / f"m{n}"
        spool.mkdir(parents=True)
        (spool / PAYLOAD_FILE).write_bytes(b"document %d" % n)
        (spool / INTAKE_FILE).write_text("{}")
        moves.append(sent._Move(spool_folder=spool,
                                sent_path=tmp_path / "sent" / "beta" / f"{n}.pdf",
                                receipts=(("BETA", f"receipt-{n}"),), names={"BETA": "beta"},
                                summary={"message_id": f"m{n}"}))
    return moves


def test_receipts_and_summaries_are_fsynced_before_their_folder_and_the_spool_folder_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[tuple[str, object]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        steps.append(("file", os.fstat(fd).st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(sent, "fsync_dir", lambda folder: steps.append(("folder", folder)))
    real_remove = sent.remove_spool_folder
    monkeypatch.setattr(sent, "remove_spool_folder",
                        lambda folder, ready=None: (steps.append(("remove", folder)),
                                                    real_remove(folder, ready)))
    moves = _moves(tmp_path, 3)

    assert sent._move_all_to_sent(moves, AccessPolicy()) == [True, True, True]

    written = [move.sent_path.with_name(move.sent_path.name + suffix) for move in moves
               for suffix in (".beta.receipt.jws", ".meta.json")]
    assert [kind for kind, _ in steps] == ["file"] * 6 + ["folder"] + ["remove"] * 3
    assert {ino for kind, ino in steps if kind == "file"} == {p.stat().st_ino for p in written}
    assert steps[6] == ("folder", tmp_path / "sent" / "beta")
    for n, move in enumerate(moves):
        assert move.sent_path.read_bytes() == b"document %d" % n
        assert move.sent_path.with_name(f"{n}.pdf.beta.receipt.jws").read_text() == \
            f"receipt-{n}\n"
        assert not move.spool_folder.exists()


def test_a_failed_write_closes_what_was_opened_and_removes_no_spool_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moves = _moves(tmp_path, 2)
    opened: list[int] = []
    real_started = sent.write_started

    def started(fd: int, data: bytes) -> None:
        opened.append(fd)
        if len(opened) == 3:
            raise OSError(28, "No space left on device")
        real_started(fd, data)

    monkeypatch.setattr(sent, "write_started", started)
    with pytest.raises(OSError):
        sent._move_all_to_sent(moves, AccessPolicy())
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(fd)          # closed
    assert all(move.spool_folder.exists() for move in moves)
