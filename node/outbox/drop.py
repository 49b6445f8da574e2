"""Putting a file into the outbox the way a careful clerk would (used by ``lienthong send``).

The copy is written under a hidden temporary name the watcher ignores, fsynced, then renamed
into place, so the node can never take a half-copied file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from lienthong.config.schema import NAME_PATTERN, NodeConfig
from lienthong.node.core.names import unique_name


def target_folder_name(targets: list[str]) -> str:
    """``["hdnd"]`` → ``hdnd``; several peers → ``hdnd+ubnd`` (an ad-hoc group)."""
    if not targets:
        raise ValueError("name at least one peer or group with --to")
    for target in targets:
        if not NAME_PATTERN.match(target):
            raise ValueError(f"{target!r} is not a peer or group name")
    return "+".join(sorted(set(targets)))


def drop_into_outbox(config: NodeConfig, source: Path, targets: list[str]) -> Path:
    folder = config.outbox / target_folder_name(targets)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / unique_name(lambda n: os.path.lexists(folder / n), source.name)
    tmp = folder / f".lienthong-send-{os.getpid()}.part"
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
        dst.flush()
        os.fsync(dst.fileno())
    os.rename(tmp, final)
    return final


def make_target_folders(config: NodeConfig, peer_names: list[str]) -> list[Path]:
    """Create ``outbox/<peer>/`` for each enrolled peer and ``outbox/<group>/`` for each
    configured group, where a clerk expects them (at start-up, on enrolment, after a restore);
    returns the folders that were missing. A name that is not a safe folder name is skipped."""
    made = []
    for name in [*peer_names, *config.groups]:
        if not NAME_PATTERN.match(name):
            continue
        folder = config.outbox / name
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            made.append(folder)
    return made
