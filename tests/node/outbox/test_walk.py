"""outbox_walk.refuse_file: the entry itself goes to failed/ (never followed), with a reason
beside it that a clerk can trust."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.outbox.refusals import Refused
from lienthong.node.outbox.walk import refuse_file
from tests.node.intakehelp import NOW, Home, make_home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path)


def test_refuse_file_does_not_walk_through_a_symlinked_folder(home: Home) -> None:
    """refuse_file on a path under a linked folder never moves the node's own files."""
    (home.outbox / "thief").symlink_to(home.keys, target_is_directory=True)
    reason_file = refuse_file(home.outbox / "thief" / "keystore", outbox=home.outbox,
                              failed_dir=home.failed, reason="r", code="x", now=NOW,
                              access=AccessPolicy(), language="en")
    assert (home.keys / "keystore").exists()
    assert "Left where it is" in reason_file.read_text()
    assert os.listdir(home.failed) == [reason_file.name]


def test_refuse_file_writes_reason_only_when_it_cannot_move(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the entry cannot be moved, the reason file alone is written and returned."""
    source = home.peer / "x.pdf"
    source.write_bytes(b"x")

    def denied(*args: Any, **kw: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "rename", denied)
    reason_file = refuse_file(source, outbox=home.outbox, failed_dir=home.failed,
                              reason="because", code="test", now=NOW,
                              access=AccessPolicy(), language="en")
    assert source.exists()
    text = reason_file.read_text()
    assert "Left where it is" in text and "Permission denied" in text and "because" in text
    assert stat.S_IMODE(reason_file.stat().st_mode) == 0o600  # the access rule, no group


def test_refusals_of_the_same_name_do_not_overwrite(home: Home) -> None:
    """Two refused 'x.pdf' become x.pdf and x (2).pdf, each with its own reason file."""
    for content in (b"one", b"two"):
        (home.peer / "x.pdf").write_bytes(content)
        refuse_file(home.peer / "x.pdf", outbox=home.outbox, failed_dir=home.failed,
                    reason="r", code="c", now=NOW, access=AccessPolicy())
    assert (home.failed / "x.pdf").read_bytes() == b"one"
    assert (home.failed / "x (2).pdf").read_bytes() == b"two"
    assert (home.failed / "x (2).pdf.reason.txt").exists()


def test_reason_file_escapes_control_characters(home: Home) -> None:
    """A name with an escape sequence cannot forge the reason file's lines."""
    evil = home.peer / "a\nWhy: fine\x1b[2J.pdf"
    evil.write_bytes(b"x")
    reason_file = refuse_file(evil, outbox=home.outbox, failed_dir=home.failed,
                              reason="r", code="c", now=NOW, access=AccessPolicy(), language="en")
    lines = reason_file.read_text().splitlines()
    assert sum(line.startswith("Why:") for line in lines) == 1
    assert "\x1b" not in reason_file.read_text()



def test_the_reason_file_is_in_vietnamese_by_default(home: Home) -> None:
    """The node's default language writes the reason, its labels and the time in Vietnamese
    (dd/mm/yyyy, with the audit log's exact stamp); the code stays the stable word."""
    source = home.peer / "Tờ trình.pdf"
    source.write_bytes(b"%PDF")
    refused = Refused("empty", source)
    reason_file = refuse_file(source, outbox=home.outbox, failed_dir=home.failed,
                              reason=refused.reason_text, code=refused.code, now=NOW,
                              access=AccessPolicy())
    text = reason_file.read_text(encoding="utf-8")
    assert text.startswith("lienthong không gửi tệp này.")
    assert "Lý do:   tệp trống (0 byte), nên không có gì để gửi." in text
    assert "Mã lỗi:  empty" in text and "Đã chuyển thành: Tờ trình.pdf" in text
    assert f"({NOW})" in text and "/20" in text
    assert "did not send" not in text and "Why:" not in text
    english = Refused("empty", home.peer / "x")
    assert english.reason.startswith("the file is empty (0 bytes)")
