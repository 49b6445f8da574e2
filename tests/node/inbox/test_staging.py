"""The receiver's staging files (node/inbox/staging.py): what older versions or abandoned
transfers left in ``tmp/`` is cleaned up at start-up, and nothing else."""
from __future__ import annotations

import os
from pathlib import Path

from lienthong.node.inbox.staging import (
    STALE_STAGING_SECONDS,
    discard_legacy_partials,
    discard_stale_staging,
)
from lienthong.node.inbox.stream import RESUME_SUFFIX


def test_ciphertext_partials_of_an_older_version_are_removed(tmp_path: Path) -> None:
    """``tmp/receiving/<peer>/*.part`` (the old resume basis) is dropped; nothing else is."""
    folder = tmp_path / "receiving"
    (folder / "abcd1234").mkdir(parents=True)
    (folder / "abcd1234" / "0123-4567.part").write_bytes(b"x" * 100)
    (folder / "abcd1234" / "keep.txt").write_bytes(b"y")
    assert discard_legacy_partials(folder) == 1
    assert [p.name for p in (folder / "abcd1234").iterdir()] == ["keep.txt"]
    assert discard_legacy_partials(tmp_path / "missing") == 0


def test_staging_nobody_offered_again_for_a_week_is_removed(tmp_path: Path) -> None:
    """Decrypted plaintext of an abandoned transfer does not stay in tmp/staging for ever; a
    recent one, and one being received again right now, are kept."""
    folder = tmp_path / "staging"
    folder.mkdir()
    now = 2_000_000_000.0
    old, recent, busy = "a" * 32 + "-ABCD123", "b" * 32 + "-ABCD123", "c" * 32 + "-ABCD123"
    for name, age in ((old, STALE_STAGING_SECONDS + 60), (recent, 3600),
                      (busy, STALE_STAGING_SECONDS + 60)):
        for path in (folder / name, folder / (name + RESUME_SUFFIX)):
            path.write_bytes(b"plaintext")
            os.utime(path, (now - age, now - age))
    assert discard_stale_staging(folder, now, frozenset({"c" * 32})) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [recent, recent + RESUME_SUFFIX, busy, busy + RESUME_SUFFIX])
    assert discard_stale_staging(tmp_path / "missing", now) == 0
