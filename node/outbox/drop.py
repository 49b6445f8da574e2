"""Putting a file into the outbox the way a careful clerk would: ``lienthong send``,
``lienthong message`` and the web pages' upload and message forms.

Every copy is written where the watcher does not look (a hidden temporary name, or the
home's ``tmp/``), fsynced, then renamed into ``outbox/<target>/``, its sidecar first, so the
node can never take a half-copied file nor a document without the metadata meant for it.
From there the file takes the one outbox pipeline: refusals, receipts and audit are the same
as for a file a clerk copied by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from lienthong.config.schema import NAME_PATTERN, NodeConfig
from lienthong.node.core.access import access_policy
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import unique_name
from lienthong.node.documents.metadata import MAX_MESSAGE_BYTES, SIDECAR_SUFFIX

UPLOADS = "web-uploads"


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
            access_policy(config.node.clerks_group).make_folder(folder, drop=True)
            made.append(folder)
    return made


def sidecar_text(fields: Mapping[str, str]) -> bytes:
    """A sidecar (``.meta.toml``) holding ``fields`` as TOML strings."""
    # JSON string syntax is valid TOML basic-string syntax for everything json.dumps writes.
    return "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n"
                   for key, value in fields.items()).encode("utf-8")


def write_message(config: NodeConfig, targets: list[str], text: str, *, now: float,
                  urgency: str = "normal", reply_to: str | None = None) -> Path:
    """Put ``text`` into ``outbox/<target>/`` as a message: sidecar first, then the .txt."""
    data = text.encode("utf-8")
    if not text.strip():
        raise ValueError("the message is empty")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a message is at most {MAX_MESSAGE_BYTES // 1024} KiB; send a longer "
                         "text as a document (lienthong send)")
    folder = config.outbox / target_folder_name(targets)
    access_policy(config.node.clerks_group).make_folder(folder, drop=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    name = unique_name(lambda n: os.path.lexists(folder / n)
                       or os.path.lexists(folder / (n + SIDECAR_SUFFIX)), f"{stamp}-message.txt")
    fields = {"type": "message", "urgency": urgency}
    if reply_to:
        fields["reply_to"] = reply_to
    access = access_policy(config.node.clerks_group)
    access.write_replacing(folder / (name + SIDECAR_SUFFIX), sidecar_text(fields))
    access.write_replacing(folder / name, data if data.endswith(b"\n") else data + b"\n")
    return folder / name


def drop_upload(config: NodeConfig, targets: list[str], name: str, data: bytes,
                fields: Mapping[str, str]) -> Path:
    """An uploaded document and its sidecar into ``outbox/<target>/`` by way of ``tmp/``.

    Both files are written and fsynced in a private folder under the home's ``tmp/`` (same
    file system as the outbox), then renamed in: the sidecar, then the document; the outbox
    folder is fsynced after. ``name`` must already be a safe file name.
    """
    folder = config.outbox / target_folder_name(targets)
    access = access_policy(config.node.clerks_group)
    access.make_folder(folder, drop=True)
    work = config.tmp / UPLOADS
    work.mkdir(parents=True, exist_ok=True)
    final = unique_name(lambda n: os.path.lexists(folder / n)
                        or os.path.lexists(folder / (n + SIDECAR_SUFFIX)), name)
    staged = work / f"{os.getpid()}-{time.monotonic_ns()}"
    staged.mkdir()
    try:
        access.write_synced(staged / "sidecar", sidecar_text(fields))
        access.write_synced(staged / "document", data)
        os.rename(staged / "sidecar", folder / (final + SIDECAR_SUFFIX))
        os.rename(staged / "document", folder / final)
        fsync_dir(folder)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return folder / final

