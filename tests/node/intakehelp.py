"""A node home with only the folders intake and refusals touch (tests of node/outbox/intake.py,
node/outbox/walk.py and node/spool/recovery.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NOW = "2026-11-25T22:00:00Z"


@dataclass
class Home:
    outbox: Path
    spool: Path
    failed: Path
    keys: Path

    @property
    def peer(self) -> Path:
        return self.outbox / "peer"


def make_home(tmp_path: Path) -> Home:
    """outbox/peer, spool, failed, and keys/keystore (what a symlink attack would go for)."""
    h = Home(tmp_path / "outbox", tmp_path / "spool", tmp_path / "failed", tmp_path / "keys")
    for folder in (h.outbox, h.spool, h.failed, h.keys, h.peer):
        folder.mkdir()
    (h.keys / "keystore").write_bytes(b"SECRET KEY MATERIAL")
    return h
