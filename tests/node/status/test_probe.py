"""The probe of a home folder: files waiting in the outbox, folders not writable."""
from __future__ import annotations

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
