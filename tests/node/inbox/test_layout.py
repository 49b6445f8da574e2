"""The inbox layout (node/inbox/layout.py): what is written beside a received document."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.inbox import layout


def test_sidecar_contents_are_fsynced_not_only_their_names(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar whose name survives a power cut but whose bytes do not would be an empty file
    in the inbox: each sidecar's own descriptor is fsynced before the folder is."""
    synced: list[tuple[int, int]] = []
    real_fsync = layout.os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    final = tmp_path / "quyet-dinh.pdf"
    layout.write_sidecar_files(final, {"so_ky_hieu": "12/QĐ-UBND"}, "receipt.token",
                              AccessPolicy())
    meta = final.with_name(final.name + layout.META_SUFFIX)
    receipt = final.with_name(final.name + layout.RECEIPT_SUFFIX)
    assert json.loads(meta.read_text(encoding="utf-8")) == {"so_ky_hieu": "12/QĐ-UBND"}
    assert receipt.read_text(encoding="ascii") == "receipt.token\n"
    for path in (meta, receipt):
        st = path.stat()
        assert (st.st_dev, st.st_ino) in synced, path.name
