"""The blocking file work of the outbox (worker threads): take and seal, park in failed/.

(Filing into sent/ is node.sent_folder.)

Kept apart from ``node.outbox``, which runs on the reactor and decides the order of things.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.python.failure import Failure

from node.failpoints import failpoint
from node.home import fsync_dir
from node.intake import TakenFile, take_file
from node.names import MAX_NAME_BYTES, safe_file_name, unique_name
from node.sealing import PAYLOAD, seal_spooled
from node.sidecars import adopt_staged_meta
from node.spool import read_meta

#: Room kept in a failed/ name for the reason file written beside it.
FAILED_NAME_BYTES = MAX_NAME_BYTES - len(".reason.txt")


def take_and_seal(path: Path, take: dict[str, Any], seal: dict[str, Any] | None,
                  adopt_sidecar: Callable[[], None] | None = None
                  ) -> tuple[TakenFile, tuple[dict[str, Any], Any] | Failure | None]:
    """Take ``path`` into the spool and seal it, in ONE worker hop (blocking).

    A separate sealing hop cost a thread wake-up per document, and made the take's audit and
    the dispatch reach the database one after the other (two commits on the way to the offer)
    instead of together (one group commit). The take's errors (``Refused``) are raised; a
    sealing error is *returned* as a Failure, because the file is taken either way and the
    take must still be audited. ``seal`` None: the caller could not look up the recipients'
    keys and reports that itself after the take, as before.

    ``adopt_sidecar`` moves the document's sidecar into its spool folder right after the
    take, before sealing (which takes a second per GiB): a crash in between would otherwise
    leave the sidecar in the outbox, where it would attach to a later file of the same name.
    """
    taken = take_file(path, **take)
    if adopt_sidecar is not None:
        adopt_sidecar()
    failpoint("sender-after-take")
    if seal is None:
        return taken, None
    try:
        return taken, read_meta_and_seal(taken=taken, **seal)
    except Exception:  # noqa: BLE001 - reported where the sealing is awaited
        failure = Failure()
        failure.cleanFailure()
        return taken, failure


def read_meta_and_seal(spool_dir: Path, taken: TakenFile, *, node_keys: Any,
                       recipients: dict[str, Any], created: str) -> tuple[dict[str, Any], Any]:
    """The document's metadata and its sealed envelope (blocking).

    ``adopt_staged_meta`` finds a metadata file staged by an older version that crashed
    between staging and taking (one ``stat`` otherwise).
    """
    folder = spool_dir / taken.message_id
    adopt_staged_meta(spool_dir, taken.message_id)
    meta = read_meta(folder)
    if taken.hint and "folder_hint" not in meta:
        meta["folder_hint"] = taken.hint
    sealed = seal_spooled(folder, node_keys=node_keys, recipients=recipients,
                          name=taken.original_name, message_id=taken.message_id,
                          created=created, meta=meta)
    return meta, sealed


def move_to_failed(spool_folder: Path, failed_dir: Path, name: str, reason: str,
                   now: str) -> Path:
    """Park an undeliverable document in failed/ with a plain-language reason beside it."""
    failed_dir.mkdir(parents=True, exist_ok=True)
    target = failed_dir / unique_name(lambda n: os.path.lexists(failed_dir / n) or
                                      os.path.lexists(failed_dir / f"{n}.reason.txt"),
                                      safe_file_name(name, max_bytes=FAILED_NAME_BYTES),
                                      max_bytes=FAILED_NAME_BYTES)
    payload = spool_folder / PAYLOAD
    if payload.exists():
        os.rename(payload, target)
    target.with_name(target.name + ".reason.txt").write_text(
        f"{name} could not be delivered ({now}).\n\n{reason}\n\n"
        "Recipients that did receive it are listed in the audit log (lienthong audit). "
        "To try again, fix the cause and drop the file into the outbox again.\n",
        encoding="utf-8")
    fsync_dir(failed_dir)
    if spool_folder.exists():
        shutil.rmtree(spool_folder)
    return target

