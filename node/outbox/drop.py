"""Putting a file into the outbox the way a careful clerk would (used by ``lienthong send``).

The copy is written under a hidden temporary name the watcher ignores, fsynced, then renamed
into place, so the node can never take a half-copied file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from lienthong.config.schema import NAME_PATTERN, NodeConfig
from lienthong.node.core.access import access_policy
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
    access_policy(config.node.clerks_group).make_folder(folder, drop=True)
    final = folder / unique_name(lambda n: os.path.lexists(folder / n), source.name)
    tmp = folder / f".lienthong-send-{os.getpid()}.part"
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
        dst.flush()
        os.fsync(dst.fileno())
    os.rename(tmp, final)
    return final
