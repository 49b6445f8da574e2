"""Taking a document out of the clerk's outbox into the spool (refusing it into failed/ is
node/outbox/walk.py ``refuse_file``, which walks the outbox the same careful way).

Theory of operation
-------------------
The watcher only says "this path looks complete". Everything that decides whether a file
may leave the office happens here, on the file itself, in a fixed order (docs/design.md
§5.1, steps 2 and 5):

1. Reach the file's folder from the outbox one component at a time with ``O_NOFOLLOW``,
   so a folder swapped for a symbolic link (to the node's keys, say) is refused instead of
   followed. Every later call is relative to that folder's descriptor.
2. ``lstat`` the entry: only a regular file with one link, within the size limit, goes on.
   FIFOs, sockets and devices are never opened.
3. Open it ``O_RDONLY|O_NOFOLLOW|O_NONBLOCK`` (a FIFO slipped in after the ``lstat`` cannot
   hang us, a symlink cannot be followed) and check that the descriptor is the very inode
   we looked at, and that it still passes step 2.
4. Create ``spool/<message_id>/`` (0700), write ``intake.json`` (which, since version 2,
   also holds ``meta``, the validated envelope metadata, when the caller gives it; since
   version 3, the stream ends of a document sealed before its take: see below) there and
   fsync it, *then* rename the file to ``spool/<message_id>/payload``: a crash leaves either a
   folder with ``intake.json`` and no payload (nothing was taken; the file is still in the
   outbox) or a complete pair that ``recover_spool`` reports -- with its metadata already in
   it. Across filesystems (``EXDEV``) the bytes are copied through the open descriptor,
   fsynced, and only then is the original unlinked. Versions before 2 wrote the metadata
   to a separate ``meta.json`` (one more file and fsync per document); ``read_meta``
   (node/spool/record.py, where the record's format lives) still reads it.
5. After the move, the payload must be the inode we opened, with the size and mtime we
   recorded. If not, someone was still writing (or swapped the name): we put the entry back
   into the outbox under its name (or ``name (2)`` if the clerk has since saved a new file
   there; a hard link is used so nothing is ever overwritten), discard the spool folder and
   raise ``Refused("changed-while-reading")``. The watcher will offer it again once it is
   quiet. Putting it back, rather than keeping it, is the choice here because a writer that
   still holds the file open would keep changing the spooled copy.

A file that a writer keeps open and changes *after* step 5 is still possible; the packager
must ``fstat`` before and after hashing the payload and refuse a mismatch.

Sealed before the take (``preseal``, the outbox's small files: node/outbox/file_work.py).
Between steps 3 and 4 the file is read and sealed through the descriptor checked in step 3,
and the public ends of the envelope's stream go into ``intake.json``: written and fsynced
with the record, they need no ``stream-ends.bin`` of their own (one file, one fsync and one
inode fewer per document; docs/benchmarks.md, History 47). Step 5 then also proves the
sealed bytes are the taken ones: the same inode, size and mtime as when it was opened,
before the reading. A crash while sealing leaves the file in the outbox and no spool folder
(it is taken again); a crash after the take leaves a complete pair whose recorded ends are
of no use without the header token, which only the dispatch row holds: recovery seals it
again and keeps the new ends in a file, which wins over the record (docs/design.md §6).

The folder fsyncs that make the take durable (the new folder's entries, its entry in
``spool/``, the file's absence from the outbox folder) are done before ``take_file``
returns -- unless the caller passes a :class:`DirSyncs`: then they are owed to it, and the
caller flushes it before anything (an audit entry, a dispatch row) refers to the taken
documents. A batch of takes into the same ``spool/`` from the same outbox folder then
fsyncs each folder once (``file_work.take_and_seal_batch``). Until the flush, a crash
may undo the rename (the file is still in the outbox, as if never taken) or keep it
(``recover_spool`` finds a complete pair): both are states a crash right after the take
could already leave, because nothing has been recorded about the document yet.

One record per batch (``prepare_take`` then ``take_files``: the outbox's batches of small
files, node/outbox/file_work.py). Steps 1-3 (and the sealing before the take) are done for
every file of the batch first; then ONE record naming all of them (``intake.json`` version 4:
a version-3 record each, node/spool/record.py) is written and fsynced in the first file's new
folder and hard-linked as ``intake.json`` into each other new folder; only then is any file
moved in (step 4's rename and step 5, file by file). A record and its fsync per document were
the largest single cost of a take in a burst (docs/benchmarks.md, History 52); a link is a
directory entry, made durable by the folder fsync each take already owes. Every folder thus
holds its document's record before its file can move in, as with a record each: a crash
before a file moved leaves its folder with the record and no payload (nothing taken; the
file is still in the outbox), after it a complete pair whose record ``read_record`` finds by
the folder's name (docs/design.md §6). A file refused in step 5 discards its own folder (its
link); the others keep theirs. A batch of one writes a version-3 record, as before.

Ready folders (node/spool/ready.py). The first folder of a batch -- a lone document's only
one -- is, when one is ready, a folder made ahead of the take (``.lienthong-ready-<random>``
in ``spool/``, holding an empty ``intake.json``) renamed to the message ID, its record written
into that file and fsynced: the same folder and record as ``mkdir`` and a new file, without
the two inode allocations (about 1.7 ms of kernel time on the node's disk). The order is
unchanged (the record fsynced before the file moves in), so a crash leaves the same states;
a ready folder itself is a dot-name that ``recover_spool`` skips (docs/design.md §6). The
other folders of a batch are, when there are some, recycled ones (the emptied folders of
documents filed into sent/, ``ReadyFolders.take_empty``) renamed to their message IDs: what
``mkdir`` makes, an empty folder, without the inode allocation.

All functions block (fsync, copying); the daemon runs them in a thread.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.keys.jws import canonical_json
from lienthong.node.core import fence
from lienthong.node.core.failpoints import failpoint
from lienthong.node.core.names import TEMP_PREFIX, unique_name
from lienthong.node.core.writeback import sync_and_close
from lienthong.node.documents.petitions import is_petition, opaque_file_name
from lienthong.node.outbox.refusals import Refused, refused_for, size_text
from lienthong.node.outbox.walk import (
    DIR_FLAGS,
    NEW_FILE_FLAGS,
    lstat_mode,
    open_parent,
    parts_under,
    write_all,
    write_new_file,
)
from lienthong.node.spool.ready import ReadyFolders, open_empty_record
from lienthong.node.spool.record import (
    BATCH_VERSION,
    INTAKE_FILE,
    INTAKE_FORMAT,
    INTAKE_VERSION,
    META_FILE,
    PAYLOAD_FILE,
    TakenFile,
    taken_from_record,
)

_PARTIAL_PAYLOAD = TEMP_PREFIX + "payload.part"
_COPY_CHUNK = 1 << 20
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

class DirSyncs:
    """Folder fsyncs owed by a batch of takes, each folder once (see the module docstring).

    Holds a duplicate descriptor of each folder, so the very folder the take used (reached
    without following links) is the one fsynced, even if a name was swapped meanwhile.
    """

    def __init__(self) -> None:
        self._fds: dict[tuple[int, int], int] = {}

    def add(self, fd: int) -> None:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if key not in self._fds:
            self._fds[key] = os.dup(fd)

    def flush(self) -> None:
        """fsync every folder (in the order added) and forget them; raises the first error."""
        fds, self._fds = list(self._fds.values()), {}
        sync_and_close(fds)


#: Seals the checked, open file before it is taken (``fd``, the record so far): its stream
#: ends to record in ``intake.json``, or None (not sealed: it is sealed after the take).
Preseal = Callable[[int, dict[str, Any]], "bytes | None"]


def take_file(path: Path, *, outbox: Path, spool_dir: Path, message_id: str,
              max_bytes: int, now: str, allow_empty: bool = False,
              meta: dict[str, Any] | None = None, syncs: DirSyncs | None = None,
              preseal: Preseal | None = None) -> TakenFile:
    """Move ``path`` (inside ``outbox``) to ``spool_dir/<message_id>/payload`` or raise Refused.

    ``outbox`` is needed to name the target and to reach the file without following any
    symbolic link below the outbox. ``now`` is recorded as the time taken. ``meta`` (the
    envelope metadata validated from the sidecar) is written into ``intake.json``, so a
    taken document is never without it. ``syncs``: the folder fsyncs are owed to it instead
    of done here (the module docstring says when that is safe). ``preseal``: the file is
    sealed through the checked descriptor before its record is written (module docstring,
    step 4), and the stream ends it returns go into the record.
    """
    if not _MESSAGE_ID.match(message_id):
        raise ValueError(f"message ID {message_id!r} is not a safe folder name")
    parts = parts_under(outbox, path)
    parent_fd = open_parent(outbox, parts)
    try:
        return _take(path, parts, parent_fd, spool_dir=spool_dir, message_id=message_id,
                     max_bytes=max_bytes, now=now, allow_empty=allow_empty, meta=meta,
                     syncs=syncs, preseal=preseal)
    finally:
        os.close(parent_fd)


def _take(path: Path, parts: tuple[str, ...], parent_fd: int, *, spool_dir: Path,
          message_id: str, max_bytes: int, now: str, allow_empty: bool,
          meta: dict[str, Any] | None = None, syncs: DirSyncs | None = None,
          preseal: Preseal | None = None) -> TakenFile:
    pending = _prepare(path, parts, parent_fd, message_id=message_id, max_bytes=max_bytes,
                       now=now, allow_empty=allow_empty, meta=meta, preseal=preseal)
    try:
        _make_folders(spool_dir, [pending], canonical_json(pending.record))
        return _move_in(spool_dir, pending, syncs)
    finally:
        pending.close(parent=False)


@dataclass(slots=True)
class PendingTake:
    """A file checked (steps 1-3) and its record made, not yet moved into the spool."""

    path: Path
    name: str
    parent_fd: int
    fd: int
    opened: os.stat_result
    record: dict[str, Any]

    @property
    def message_id(self) -> str:
        return str(self.record["message_id"])

    closed: bool = False

    def close(self, *, parent: bool = True) -> None:
        """Close the file (and its folder's descriptor, unless ``parent`` is False); once."""
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)
        if parent:
            os.close(self.parent_fd)


def _prepare(path: Path, parts: tuple[str, ...], parent_fd: int, *, message_id: str,
             max_bytes: int, now: str, allow_empty: bool, meta: dict[str, Any] | None,
             preseal: Preseal | None) -> PendingTake:
    """Steps 1-3 (and a sealing before the take): the open, checked file and its record."""
    name = parts[-1]
    seen = _lstat(parent_fd, name, path)
    _check_kind(seen, path)
    if len(parts) == 1:
        raise Refused("no-target", path)
    target, hint, original_name = _names(parts, path)
    if is_petition(meta):
        # A petition's real name travels sealed (the outbox put it in ``meta``); everything
        # else names it opaquely (node/documents/petitions.py).
        original_name = opaque_file_name(message_id, original_name)
    _check_contents(seen, path, max_bytes, allow_empty)
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise refused_for(exc, path) from exc
    try:
        opened = os.fstat(fd)
        if _identity(opened) != _identity(seen) or _contents(opened) != _contents(seen):
            raise Refused("changed-while-reading", path)
        _check_kind(opened, path)
        _check_contents(opened, path, max_bytes, allow_empty)
        record = {"format": INTAKE_FORMAT, "version": INTAKE_VERSION, "message_id": message_id,
                  "target": target, "original_name": original_name, "hint": hint,
                  "size": opened.st_size, "mtime_ns": opened.st_mtime_ns, "taken_at": now,
                  "meta": meta, "stream_ends": None}
        if preseal is not None:
            ends = preseal(fd, record)
            record["stream_ends"] = ends.hex() if ends is not None else None
    except BaseException:
        os.close(fd)
        raise
    return PendingTake(path, name, parent_fd, fd, opened, record)


def prepare_take(path: Path, *, outbox: Path, message_id: str, max_bytes: int, now: str,
                 allow_empty: bool = False, meta: dict[str, Any] | None = None,
                 preseal: Preseal | None = None) -> PendingTake:
    """Steps 1-3 for one file of a batch (``take_files`` moves them in); raises Refused. The
    caller closes what it returns (``take_files`` does)."""
    if not _MESSAGE_ID.match(message_id):
        raise ValueError(f"message ID {message_id!r} is not a safe folder name")
    parts = parts_under(outbox, path)
    parent_fd = open_parent(outbox, parts)
    try:
        return _prepare(path, parts, parent_fd, message_id=message_id, max_bytes=max_bytes,
                        now=now, allow_empty=allow_empty, meta=meta, preseal=preseal)
    except BaseException:
        os.close(parent_fd)
        raise


def take_files(pendings: list[PendingTake], spool_dir: Path, syncs: DirSyncs,
               ready: ReadyFolders | None = None) -> list[TakenFile | Exception]:
    """Step 4 and 5 for a batch of prepared files, with ONE record for the batch ("One record
    per batch" in the module docstring); each file's TakenFile or its own error. The folder
    fsyncs are owed to ``syncs``. ``ready``: the folders made ahead of the take (node/spool/
    ready.py), of which the batch's first file uses one. Closes every pending take."""
    results: list[TakenFile | Exception] = []
    try:
        if len(pendings) == 1:
            data = canonical_json(pendings[0].record)
        else:
            data = canonical_json({"format": INTAKE_FORMAT, "version": BATCH_VERSION,
                                   "records": [p.record for p in pendings]})
        try:
            _make_folders(spool_dir, pendings, data, ready)
        except Exception as exc:  # noqa: BLE001 - nothing was moved: each file fails with it
            return [exc for _ in pendings]
        for pending in pendings:
            try:
                results.append(_move_in(spool_dir, pending, syncs))
            except Exception as exc:  # noqa: BLE001 - each file's refusal is its own
                results.append(exc)
            if len(pendings) > 1:
                failpoint("sender-during-batch-take")
    finally:
        for pending in pendings:
            pending.close()
    return results


def _make_folders(spool_dir: Path, pendings: list[PendingTake], data: bytes,
                  ready: ReadyFolders | None = None) -> None:
    """Step 4's first half: ``spool/<message_id>/`` for each file, the record written and
    fsynced in the first folder and hard-linked into the others (one file, one fsync), before
    any file is moved. The first folder is a ready one renamed, if ``ready`` has one ("Ready
    folders" in the module docstring). On error every folder made is removed again."""
    # A node of an active/standby pair takes a file only while its lease is proven.
    fence.check()
    spool_fd = os.open(spool_dir, DIR_FLAGS)
    made: list[str] = []
    try:
        first = pendings[0].message_id
        for pending in pendings:
            if ready is None:
                ready_name = None
            elif pending.message_id == first:
                ready_name = ready.take()
            else:
                # The others link the record: an empty recycled folder will do.
                ready_name = ready.take_empty()
            if ready_name is None:
                os.mkdir(pending.message_id, 0o700, dir_fd=spool_fd)
            else:
                _rename_ready(spool_fd, ready_name, pending.message_id)
            made.append(pending.message_id)
            if pending.message_id == first:
                folder_fd = os.open(first, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=spool_fd)
                try:
                    if ready_name is None:
                        write_new_file(folder_fd, INTAKE_FILE, data, 0o600)
                    else:
                        _write_ready_record(folder_fd, data)
                finally:
                    os.close(folder_fd)
            else:
                os.link(f"{first}/{INTAKE_FILE}", f"{pending.message_id}/{INTAKE_FILE}",
                        src_dir_fd=spool_fd, dst_dir_fd=spool_fd, follow_symlinks=False)
    except BaseException:
        for message_id in made:
            folder_fd = os.open(message_id, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=spool_fd)
            try:
                _discard_spool_folder(spool_fd, folder_fd, message_id)
            finally:
                os.close(folder_fd)
        raise
    finally:
        os.close(spool_fd)


def _rename_ready(spool_fd: int, ready_name: str, message_id: str) -> None:
    """A ready folder becomes ``message_id``'s; like ``mkdir``, never over an existing entry
    (a rename would replace an empty folder of that name)."""
    if lstat_mode(message_id, spool_fd) is not None:
        raise FileExistsError(errno.EEXIST, "spool folder exists", message_id)
    os.rename(ready_name, message_id, src_dir_fd=spool_fd, dst_dir_fd=spool_fd)
    failpoint("sender-after-ready-folder-renamed")


def _write_ready_record(folder_fd: int, data: bytes) -> None:
    """The record written into a ready folder's empty ``intake.json`` and fsynced: what
    ``write_new_file`` does, less the inode allocation."""
    fd = open_empty_record(folder_fd)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_in(spool_dir: Path, pending: PendingTake, syncs: DirSyncs | None) -> TakenFile:
    """Step 4's second half and step 5 for one prepared file whose folder and record exist."""
    message_id = pending.message_id
    spool_fd = os.open(spool_dir, DIR_FLAGS)
    try:
        folder_fd = os.open(message_id, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=spool_fd)
        try:
            _move_into_spool(pending.fd, pending.opened, pending.name, pending.path,
                             pending.parent_fd, folder_fd, spool_fd, message_id,
                             pending.record, sync=syncs is None)
            if syncs is not None:
                for owed in (folder_fd, spool_fd, pending.parent_fd):
                    syncs.add(owed)
        finally:
            os.close(folder_fd)
        if syncs is None:
            os.fsync(spool_fd)
    finally:
        os.close(spool_fd)
    if syncs is None:
        os.fsync(pending.parent_fd)
    return taken_from_record(pending.record, spool_dir / message_id)


def _move_into_spool(fd: int, opened: os.stat_result, name: str, path: Path, parent_fd: int,
                     folder_fd: int, spool_fd: int, message_id: str,
                     record: dict[str, Any], *, sync: bool = True) -> None:
    """Steps 4 and 5 of the theory of operation; leaves no spool folder behind on refusal.
    ``sync`` False: the caller fsyncs the folder (``DirSyncs``)."""
    # The record is written (``_make_folders``); the lease is checked again for each move.
    fence.check()
    try:
        try:
            os.rename(name, PAYLOAD_FILE, src_dir_fd=parent_fd, dst_dir_fd=folder_fd)
            renamed = True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                code = "not-movable" if exc.errno in (errno.EACCES, errno.EPERM) else None
                raise (Refused(code, path) if code else refused_for(exc, path)) from exc
            renamed = False
            _copy_into_spool(fd, folder_fd, opened.st_size, path)
    except BaseException:
        _discard_spool_folder(spool_fd, folder_fd, message_id)
        raise
    if sync:
        os.fsync(folder_fd)
    after = os.fstat(fd)
    if renamed:
        landed = os.stat(PAYLOAD_FILE, dir_fd=folder_fd, follow_symlinks=False)
        if _identity(landed) != _identity(opened) or _contents(after) != _contents(opened):
            _put_back(folder_fd, parent_fd, name)
            _discard_spool_folder(spool_fd, folder_fd, message_id)
            raise Refused("changed-while-reading", path)
        return
    if _contents(after) != _contents(opened):
        os.unlink(PAYLOAD_FILE, dir_fd=folder_fd)
        _discard_spool_folder(spool_fd, folder_fd, message_id)
        raise Refused("changed-while-reading", path)
    try:
        still_there = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if _identity(still_there) == _identity(opened):
        os.unlink(name, dir_fd=parent_fd)
    # Otherwise the clerk replaced the file meanwhile: that new file is a new document.


def _copy_into_spool(fd: int, folder_fd: int, size: int, path: Path) -> None:
    """Copy through the already-checked descriptor (never by name), fsync, then name it."""
    out = os.open(_PARTIAL_PAYLOAD, NEW_FILE_FLAGS, 0o600, dir_fd=folder_fd)
    copied = 0
    try:
        while chunk := os.pread(fd, _COPY_CHUNK, copied):
            write_all(out, chunk)
            copied += len(chunk)
        os.fsync(out)
    finally:
        os.close(out)
    if copied != size:
        raise Refused("changed-while-reading", path)
    os.rename(_PARTIAL_PAYLOAD, PAYLOAD_FILE, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)


def _put_back(folder_fd: int, parent_fd: int, name: str) -> None:
    """Return the payload to the outbox under ``name`` or a free variant; never overwrite."""
    candidate = name
    for _ in range(100):
        try:
            os.link(PAYLOAD_FILE, candidate, src_dir_fd=folder_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)
        except FileExistsError:
            candidate = unique_name(lambda other: _lexists(parent_fd, other), name)
            continue
        except OSError:
            # No hard links on this filesystem: rename to a name we just saw free.
            if _lexists(parent_fd, candidate):
                candidate = unique_name(lambda other: _lexists(parent_fd, other), name)
            os.rename(PAYLOAD_FILE, candidate, src_dir_fd=folder_fd, dst_dir_fd=parent_fd)
            break
        os.unlink(PAYLOAD_FILE, dir_fd=folder_fd)
        break
    else:
        raise FileExistsError(f"could not put {name!r} back into the outbox")
    os.fsync(parent_fd)


def _discard_spool_folder(spool_fd: int, folder_fd: int, message_id: str) -> None:
    """Remove a spool folder that holds no payload (only our record and partial copy)."""
    for leftover in (INTAKE_FILE, META_FILE, _PARTIAL_PAYLOAD):
        try:
            os.unlink(leftover, dir_fd=folder_fd)
        except FileNotFoundError:
            pass
    os.rmdir(message_id, dir_fd=spool_fd)
    os.fsync(spool_fd)


def _names(parts: tuple[str, ...], path: Path) -> tuple[str, str | None, str]:
    """Target, subfolder hint and file name, NFC; refuses undecodable names."""
    named = parts if len(parts) > 2 else (parts[0], parts[-1])
    if any(0xD800 <= ord(char) <= 0xDFFF for text in named for char in text):
        raise Refused("bad-name", path)
    hint = unicodedata.normalize("NFC", parts[1]) if len(parts) > 2 else None
    return (unicodedata.normalize("NFC", parts[0]), hint,
            unicodedata.normalize("NFC", parts[-1]))


def _check_kind(st: os.stat_result, path: Path) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        raise Refused("symlink", path)
    if stat.S_ISDIR(mode):
        raise Refused("directory", path)
    if stat.S_ISFIFO(mode):
        raise Refused("fifo", path)
    if stat.S_ISSOCK(mode):
        raise Refused("socket", path)
    raise Refused("device", path)


def _check_contents(st: os.stat_result, path: Path, max_bytes: int, allow_empty: bool) -> None:
    if st.st_nlink != 1:
        raise Refused("hardlink", path)
    if st.st_size > max_bytes:
        raise Refused("too-large", path, size=size_text(st.st_size), limit=size_text(max_bytes))
    if st.st_size == 0 and not allow_empty:
        raise Refused("empty", path)


def _lstat(dir_fd: int, name: str, path: Path) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise refused_for(exc, path) from exc


def _lexists(dir_fd: int, name: str) -> bool:
    return lstat_mode(name, dir_fd) is not None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _contents(st: os.stat_result) -> tuple[int, int]:
    return st.st_size, st.st_mtime_ns
