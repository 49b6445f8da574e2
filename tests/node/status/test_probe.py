"""The probe of a home folder: files waiting in the outbox, folders not writable."""
from __future__ import annotations

import os
from pathlib import Path

from lienthong.node.status.probe import probe_home


def test_probe_counts_files_waiting_in_the_outbox_but_not_temporary_ones(tmp_path: Path) -> None:
    """Visible files in outbox/<target>/ count; hidden, .part and ~$ files do not."""
    for name in ("a.pdf", ".b.pdf.part", "~$c.docx", "d.txt.part"):
        (tmp_path / "outbox" / "ubnd").mkdir(parents=True, exist_ok=True)
        (tmp_path / "outbox" / "ubnd" / name).write_text("x")
    probe = probe_home(tmp_path, None)
    assert probe["outbox_waiting"] == 1
    assert "state" in probe["not_writable"]  # missing folders cannot be written either


def test_probe_counts_documents_not_hint_folders_nor_sidecars(tmp_path: Path) -> None:
    """Issue 20: an empty hint folder (hoa-toc/) is not a file waiting, nor is a document's
    sidecar; a document inside a hint folder is."""
    target = tmp_path / "outbox" / "ubnd"
    (target / "hoa-toc").mkdir(parents=True)
    (target / "khan").mkdir()
    (target / "a.pdf").write_text("x")
    (target / "a.pdf.meta.toml").write_text('type = "công văn"\n')
    (target / "khan" / "b.pdf").write_text("x")
    assert probe_home(tmp_path, None)["outbox_waiting"] == 2


def test_probe_names_folders_wider_than_the_access_rule_and_counts_their_files(
        tmp_path: Path) -> None:
    """A sidecar left 0644 by an older version: the warning names inbox/hdnd and counts the
    file, never names it, and says how to fix it."""
    from lienthong.node.core.access import AccessPolicy
    from lienthong.node.core.home import make_folders
    from lienthong.node.status.health import too_wide_message
    make_folders(tmp_path, AccessPolicy())
    (tmp_path / "inbox" / "hdnd").mkdir(mode=0o700)
    secret = tmp_path / "inbox" / "hdnd" / "Đơn tố cáo ông A.pdf.meta.json"
    secret.write_bytes(b"{}")
    os.chmod(secret, 0o644)
    probe = probe_home(tmp_path, None)
    assert probe["too_wide"] == [{
        "folder": "inbox/hdnd", "folder_mode": None, "files": 1, "file_modes": ["0644"],
        "allowed": "0600", "group": None, "fix": f"chmod -R go-rwx '{secret.parent}'"}]
    message = str(too_wide_message(probe["too_wide"][0]))
    assert "1 file(s) in inbox/hdnd (mode 0644, at most 0600)" in message
    assert "tố cáo" not in message and "chmod -R go-rwx" in message


def test_the_status_api_reuses_one_survey_for_a_while(tmp_path: Path) -> None:
    from lienthong.node.core.access import AccessPolicy
    from lienthong.node.core.home import make_folders
    from lienthong.node.status.probe import AccessSurvey
    make_folders(tmp_path, AccessPolicy())
    now = [0.0]
    survey = AccessSurvey(tmp_path, None, clock=lambda: now[0], max_age=300)
    assert survey.current() == ([], None)
    os.chmod(tmp_path / "logs", 0o755)
    now[0] = 299
    assert survey.current() == ([], None)
    now[0] = 300
    assert [w["folder"] for w in survey.current()[0] or []] == ["logs"]
    assert AccessSurvey(tmp_path, "no-such-clerks").current()[1].startswith("The clerks' group")
