"""The probe of a home folder: files waiting in the outbox, folders not writable."""
from __future__ import annotations

from pathlib import Path

from lienthong.node.status.probe import probe_home


def test_probe_counts_files_waiting_in_the_outbox_but_not_temporary_ones(tmp_path: Path) -> None:
    """Visible files in outbox/<target>/ count; hidden, .part and ~$ files do not."""
    for name in ("a.pdf", ".b.pdf.part", "~$c.docx", "d.txt.part"):
        (tmp_path / "outbox" / "ubnd").mkdir(parents=True, exist_ok=True)
        (tmp_path / "outbox" / "ubnd" / name).write_text("x")
    probe = probe_home(tmp_path)
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
    assert probe_home(tmp_path)["outbox_waiting"] == 2
