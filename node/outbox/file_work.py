"""The blocking file work of the outbox (worker threads): take and seal, park in failed/.

(Filing into sent/ is node/outbox/sent.py.)

Kept apart from node/outbox/pipeline.py, which runs on the reactor and decides the order of
things.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nacl.public
from twisted.python.failure import Failure

from lienthong.keys.identity import NodeKeys
from lienthong.keys.jws import canonical_json, strict_json_object
from lienthong.node.core.access import AccessPolicy
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.home import fsync_dir
from lienthong.node.core.names import MAX_NAME_BYTES, safe_file_name, unique_name
from lienthong.node.language.catalog import DEFAULT_LANGUAGE
from lienthong.node.language.text import Phrase
from lienthong.node.outbox.intake import (
    DirSyncs,
    PendingTake,
    prepare_take,
    take_file,
    take_files,
)
from lienthong.node.outbox.sidecars import SidecarFound
from lienthong.node.outbox.walk import when_text
from lienthong.node.spool.ready import ReadyFolders
from lienthong.node.spool.record import PAYLOAD_FILE, TakenFile, read_meta
from lienthong.node.spool.recovery import adopt_staged_meta
from lienthong.node.spool.sealing import SEALED_ONLY_KINDS, seal_opened, seal_spooled
from lienthong.protocol.sealing import SealedEnvelope

#: Room kept in a failed/ name for the reason file written beside it.
FAILED_NAME_BYTES = MAX_NAME_BYTES - len(".reason.txt")


def take_and_seal(path: Path, take: dict[str, Any], seal: dict[str, Any] | None,
                  adopt_sidecar: Callable[[], None] | None = None,
                  unless_exists: Path | None = None, *, syncs: DirSyncs | None = None
                  ) -> tuple[TakenFile, tuple[dict[str, Any], Any] | Failure | None]:
    """Take ``path`` into the spool and seal it, in ONE worker hop (blocking).

    A separate sealing hop cost a thread wake-up per document, and made the take's audit and
    the dispatch reach the database one after the other (two commits on the way to the offer)
    instead of together (one group commit). The take's errors (``Refused``) are raised; a
    sealing error is *returned* as a Failure, because the file is taken either way and the
    take must still be audited. ``seal`` None: the caller could not look up the recipients'
    keys and reports that itself after the take, as before.

    The envelope is sealed with ``take["meta"]`` as validated (it is also in ``intake.json``;
    reading it back cost a file read per document). A small file without a sidecar is sealed
    before it is taken, through the take's checked descriptor, and its stream ends are
    written with its ``intake.json`` (``_seal_before_take``); any other is sealed after the
    take and its ends kept in a file beside the payload. The new folder is fsynced once,
    after its last entry is written, together with ``spool/`` and the outbox folder: before
    this function returns, or -- ``syncs`` given, a batch -- when the batch flushes it, which
    is still before anything is recorded about the document (``intake.DirSyncs``).

    ``adopt_sidecar`` moves the document's sidecar into its spool folder right after the
    take, before sealing (which takes a second per GiB): a crash in between would otherwise
    leave the sidecar in the outbox, where it would attach to a later file of the same name.
    Such a take fsyncs its folders at once, before the sidecar moves (as before batching), so
    the sidecar never lands in a folder whose own entry could still be lost.

    ``unless_exists``: the sidecar nobody has looked for yet (``sidecars.plain_document``);
    if there is an entry of that name, nothing is taken and ``SidecarFound`` is raised.
    """
    if unless_exists is not None and os.path.lexists(unless_exists):
        raise SidecarFound(str(unless_exists))
    deferred = None if adopt_sidecar is not None else syncs if syncs is not None else DirSyncs()
    early: list[tuple[dict[str, Any], SealedEnvelope]] = []
    preseal = None
    if adopt_sidecar is None and seal is not None:
        def preseal(fd: int, record: dict[str, Any]) -> bytes | None:
            return _seal_before_take(fd, record, take.get("meta"), seal, early)
    try:
        taken = take_file(path, **take, syncs=deferred, preseal=preseal)
        if adopt_sidecar is not None:
            adopt_sidecar()
        return _after_take(taken, take, seal, early, sync_folder=deferred is None)
    finally:
        if deferred is not None and deferred is not syncs:
            deferred.flush()


#: Files up to this size are sealed before they are taken (``_seal_before_take``); larger
#: ones are taken first, out of the clerk's way, and then read (as ``batches.ALONE_BYTES``).
PRESEAL_BYTES = 4 * 1024 * 1024


def _seal_before_take(fd: int, record: dict[str, Any], meta: dict[str, Any] | None,
                      seal: dict[str, Any],
                      early: list[tuple[dict[str, Any], SealedEnvelope]]) -> bytes | None:
    """Seal a small file through the take's checked descriptor, before its record is
    written (node/outbox/intake.py, "Sealed before the take"); its stream ends for the record,
    and the metadata as signed and the envelope appended to ``early``.

    None (sealed after the take instead, as before): a large file, one a v3 envelope offers
    before reading it (``streamed_above``), or any sealing error -- sealing after the take
    meets it again and reports it with the file taken, as it always did."""
    signed = strict_json_object(canonical_json(meta)) if meta is not None else {}
    version = 3 if signed.get("kind") in SEALED_ONLY_KINDS else seal.get("version", 2)
    size = record["size"]
    streamed = seal.get("streamed_above")
    if size > PRESEAL_BYTES or (version >= 3 and streamed is not None and size > streamed):
        return None
    if record["hint"] and "folder_hint" not in signed:
        signed["folder_hint"] = record["hint"]
    try:
        with open(fd, "rb", closefd=False) as source:
            source.seek(0)
            sealed, ends = seal_opened(
                source, node_keys=seal["node_keys"], recipients=seal["recipients"],
                name=record["original_name"], message_id=record["message_id"],
                created=seal["created"], meta=signed, version=version)
    except Exception:  # noqa: BLE001 - sealed again after the take, which reports it
        return None
    if sealed.header.size != size:
        return None
    early.append((signed, sealed))
    return ends


def take_and_seal_batch(items: list[tuple[Path, dict[str, Any], dict[str, Any] | None,
                                          Callable[[], None] | None, Path | None]],
                        ready: ReadyFolders | None = None
                        ) -> list[tuple[TakenFile, Any] | Failure]:
    """``take_and_seal`` each item, in ONE worker hop; each item's result or Failure.

    One file's refusal (or error) is its own: the others are taken regardless. The files
    without a sidecar to adopt are checked (and small ones sealed) first, then taken together
    with ONE record for all of them (node/outbox/intake.py, "One record per batch"). The
    folders the takes share (``spool/``, the outbox folder they were dropped in) are fsynced
    once for the batch, after the last take and before any result is returned: until then
    nothing refers to these documents, so a crash before the flush leaves only states a crash
    during a single take could leave (``intake`` module docstring). If that flush fails, the
    whole batch fails with its error (``recover`` seals what was taken at the next start).
    ``ready``: folders made ahead of the take, for the batch's first file (node/spool/ready.py).
    """
    syncs = DirSyncs()
    results: list[tuple[TakenFile, Any] | Failure | None] = [None] * len(items)
    together: list[tuple[int, PendingTake, list[tuple[dict[str, Any], SealedEnvelope]]]] = []
    try:
        for index, (path, take, seal, adopt, unless_exists) in enumerate(items):
            try:
                if adopt is not None:   # taken alone, its folders fsynced at once
                    results[index] = take_and_seal(path, take, seal, adopt, unless_exists,
                                                   syncs=syncs)
                    continue
                early: list[tuple[dict[str, Any], SealedEnvelope]] = []
                together.append((index, _prepare(path, take, seal, unless_exists, early),
                                 early))
            except Exception:  # noqa: BLE001 - each file's refusal goes to its own caller
                results[index] = _failure()
        if together:
            spool = items[together[0][0]][1]["spool_dir"]
            taken_all = take_files([pending for _, pending, _ in together], spool, syncs,
                                   ready if ready is not None and ready.spool_dir == spool
                                   else None)
            for (index, _, early), taken in zip(together, taken_all, strict=True):
                if isinstance(taken, Exception):
                    try:
                        raise taken
                    except Exception:  # noqa: BLE001 - as a Failure with its traceback
                        results[index] = _failure()
                    continue
                _, take, seal, _, _ = items[index]
                results[index] = _after_take(taken, take, seal, early, sync_folder=False)
    finally:
        for _, pending, _ in together:   # closed by take_files; if it never ran, here
            pending.close()
        syncs.flush()
    return [result if result is not None else Failure(RuntimeError("not taken"))
            for result in results]


def _prepare(path: Path, take: dict[str, Any], seal: dict[str, Any] | None,
             unless_exists: Path | None,
             early: list[tuple[dict[str, Any], SealedEnvelope]]) -> PendingTake:
    """Check ``path`` for a batch's take (and seal it first if small: ``early``)."""
    if unless_exists is not None and os.path.lexists(unless_exists):
        raise SidecarFound(str(unless_exists))
    preseal = None
    if seal is not None:
        def preseal(fd: int, record: dict[str, Any]) -> bytes | None:
            return _seal_before_take(fd, record, take.get("meta"), seal, early)
    return prepare_take(path, **{key: value for key, value in take.items()
                                 if key != "spool_dir"}, preseal=preseal)


def _after_take(taken: TakenFile, take: dict[str, Any], seal: dict[str, Any] | None,
                early: list[tuple[dict[str, Any], SealedEnvelope]], *, sync_folder: bool
                ) -> tuple[TakenFile, tuple[dict[str, Any], Any] | Failure | None]:
    """What ``take_and_seal`` returns once ``taken`` is in the spool: its sealing (before the
    take, or now), or the sealing's Failure, or None without ``seal``."""
    failpoint("sender-after-take")
    if seal is None:
        return taken, None
    if early:
        return taken, early[0]
    try:
        meta = (strict_json_object(canonical_json(take["meta"]))
                if take.get("meta") is not None else {})
        return taken, seal_taken(taken, meta, sync_folder=sync_folder, **seal)
    except Exception:  # noqa: BLE001 - reported where the sealing is awaited
        return taken, _failure()


def _failure() -> Failure:
    failure = Failure()
    failure.cleanFailure()
    return failure


def seal_taken(taken: TakenFile, meta: dict[str, Any], *, spool_dir: Path, node_keys: NodeKeys,
               recipients: Mapping[str, tuple[str, nacl.public.PublicKey]], created: str,
               sync_folder: bool = True, version: int = 2, streamed_above: int | None = None
               ) -> tuple[dict[str, Any], SealedEnvelope]:
    """Seal a taken document with its metadata (blocking); the metadata as signed, and the
    sealed envelope."""
    if taken.hint and "folder_hint" not in meta:
        meta["folder_hint"] = taken.hint
    sealed = seal_spooled(spool_dir / taken.message_id, node_keys=node_keys,
                          recipients=recipients, name=taken.original_name,
                          message_id=taken.message_id, created=created, meta=meta,
                          sync_folder=sync_folder, version=version,
                          streamed_above=streamed_above)
    return meta, sealed


def read_meta_and_seal(spool_dir: Path, taken: TakenFile, *, node_keys: NodeKeys,
                       recipients: Mapping[str, tuple[str, nacl.public.PublicKey]],
                       created: str, version: int = 2, streamed_above: int | None = None
                       ) -> tuple[dict[str, Any], SealedEnvelope]:
    """Seal a document already in the spool (recovery, control messages), with the metadata
    recorded beside it (blocking).

    ``adopt_staged_meta`` finds a metadata file staged by an older version that crashed
    between staging and taking (one ``stat`` otherwise).
    """
    adopt_staged_meta(spool_dir, taken.message_id)
    return seal_taken(taken, read_meta(spool_dir / taken.message_id), spool_dir=spool_dir,
                      node_keys=node_keys, recipients=recipients, created=created,
                      version=version, streamed_above=streamed_above)


def move_to_failed(spool_folder: Path, failed_dir: Path, name: str, reason: str,
                   now: str, access: AccessPolicy, language: str = DEFAULT_LANGUAGE) -> Path:
    """Park an undeliverable document in failed/ with a plain-language reason beside it,
    both with the access rule (node/core/access.py), the reason in ``language`` (the node's;
    the reason itself is as delivery recorded it)."""
    access.make_folder(failed_dir)
    target = failed_dir / unique_name(lambda n: os.path.lexists(failed_dir / n) or
                                      os.path.lexists(failed_dir / f"{n}.reason.txt"),
                                      safe_file_name(name, max_bytes=FAILED_NAME_BYTES),
                                      max_bytes=FAILED_NAME_BYTES)
    payload = spool_folder / PAYLOAD_FILE
    if payload.exists():
        os.rename(payload, target)
        access.settle(target)
    access.write_file(target.with_name(target.name + ".reason.txt"), Phrase(
        "{name} could not be delivered ({time}).\n\n{reason}\n\nRecipients that did receive "
        "it are listed in the audit log (lienthong audit). To try again, fix the cause and "
        "drop the file into the outbox again.\n", name=name, time=when_text(now, language),
        reason=reason).in_language(language).encode())
    fsync_dir(failed_dir)
    if spool_folder.exists():
        shutil.rmtree(spool_folder)
    return target

