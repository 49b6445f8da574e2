"""Intake: the type gate, the move into the spool, and refusals into failed/ (what spool
recovery then finds is tests/node/spool/test_recovery.py)."""
from __future__ import annotations

import errno
import json
import os
import socket
import stat
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.outbox import intake
from lienthong.node.outbox.intake import take_file
from lienthong.node.outbox.refusals import Refused
from lienthong.node.outbox.walk import refuse_file
from lienthong.node.spool.record import INTAKE_FILE, PAYLOAD_FILE, TakenFile
from tests.node.intakehelp import NOW, Home, make_home

MID = "m-0001"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path)


def take(home: Home, path: Path, **kw: Any) -> TakenFile:
    args: dict[str, Any] = {"outbox": home.outbox, "spool_dir": home.spool, "message_id": MID,
                            "max_bytes": 64 << 20, "now": NOW}
    args.update(kw)
    return take_file(path, **args)


def refused(home: Home, path: Path, **kw: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        take(home, path, **kw)
    return caught.value


def refuse(home: Home, exc: Refused) -> Path:
    return refuse_file(exc.path, outbox=home.outbox, failed_dir=home.failed, reason=exc.reason,
                       code=exc.code, now=NOW, access=AccessPolicy())


def test_regular_file_is_moved_into_the_spool(home: Home) -> None:
    """A regular file ends up as spool/<mid>/payload with intake.json; the original is gone."""
    source = home.peer / "Báo cáo.pdf"
    source.write_bytes(b"%PDF-1.7 content")
    taken = take(home, source)
    folder = home.spool / MID
    assert taken.spool_path == folder / PAYLOAD_FILE
    assert taken.spool_path.read_bytes() == b"%PDF-1.7 content"
    assert not source.exists()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (taken.target, taken.hint, taken.size, taken.original_name) == (
        "peer", None, 16, "Báo cáo.pdf")
    record = json.loads((folder / INTAKE_FILE).read_bytes())
    assert record["target"] == "peer" and record["original_name"] == "Báo cáo.pdf"
    assert record["taken_at"] == NOW and record["size"] == 16 and record["message_id"] == MID
    assert sorted(os.listdir(folder)) == [INTAKE_FILE, PAYLOAD_FILE]


def test_subfolder_becomes_the_hint(home: Home) -> None:
    """outbox/<target>/<type>/file passes the type folder on as the hint."""
    (home.peer / "cong-van" / "2026").mkdir(parents=True)
    source = home.peer / "cong-van" / "2026" / "x.pdf"
    source.write_bytes(b"x")
    taken = take(home, source)
    assert (taken.target, taken.hint) == ("peer", "cong-van")


def test_nfd_name_is_recorded_as_nfc(home: Home) -> None:
    """A name written in NFD (macOS, some SMB clients) is recorded in NFC."""
    nfc = "Công văn số 12 - Nguyễn Thị Hường.pdf"
    source = home.peer / unicodedata.normalize("NFD", nfc)
    source.write_bytes(b"x")
    taken = take(home, source)
    assert taken.original_name == nfc
    assert json.loads((home.spool / MID / INTAKE_FILE).read_bytes())["original_name"] == nfc


def test_fsync_order_record_before_move(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """intake.json is fsynced before the rename; spool folder, spool and source folder after."""
    source = home.peer / "x.pdf"
    source.write_bytes(b"x")
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("rename", f"{src}->{dst}"))
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    take(home, source)
    moved = events.index(("rename", f"x.pdf->{PAYLOAD_FILE}"))
    folder = str(home.spool / MID)
    assert ("fsync", f"{folder}/{INTAKE_FILE}") in events[:moved]
    after = events[moved:]
    for synced in (folder, str(home.spool), str(home.peer)):
        assert ("fsync", synced) in after


def test_symlink_to_keystore_is_refused_and_moved_as_a_link(home: Home) -> None:
    """A symlink to a secret is never followed: refused, moved to failed/ as a link."""
    link = home.peer / "evil.pdf"
    link.symlink_to(home.keys / "keystore")
    exc = refused(home, link)
    assert exc.code == "symlink" and "symbolic link" in exc.reason and exc.belongs_in_failed
    assert os.listdir(home.spool) == []
    reason_file = refuse(home, exc)
    moved = home.failed / "evil.pdf"
    assert moved.is_symlink() and os.readlink(moved) == str(home.keys / "keystore")
    assert (home.keys / "keystore").read_bytes() == b"SECRET KEY MATERIAL"
    assert not os.path.lexists(link)
    text = reason_file.read_text()
    assert reason_file.name == "evil.pdf.reason.txt"
    assert NOW in text and "symbolic link" in text and "Copy the document itself" in text


def test_symlinked_target_folder_is_refused(home: Home) -> None:
    """A target folder swapped for a link to the key folder is refused, not walked through."""
    (home.outbox / "thief").symlink_to(home.keys, target_is_directory=True)
    exc = refused(home, home.outbox / "thief" / "keystore")
    assert exc.code == "symlink-folder" and exc.path == home.outbox / "thief"
    refuse(home, exc)
    assert (home.failed / "thief").is_symlink()
    assert (home.keys / "keystore").read_bytes() == b"SECRET KEY MATERIAL"


def _in_thread(fn: Any, timeout: float = 5.0) -> Any:
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked: a FIFO was opened without O_NONBLOCK"
    return result


def test_fifo_is_refused_without_blocking(home: Home) -> None:
    """A FIFO (no writer) is refused at once and moved into failed/ as a FIFO."""
    fifo = home.peer / "pipe.pdf"
    os.mkfifo(fifo)
    result = _in_thread(lambda: take(home, fifo))
    exc = result["error"]
    assert isinstance(exc, Refused) and exc.code == "fifo"
    _in_thread(lambda: refuse(home, exc))
    assert stat.S_ISFIFO(os.lstat(home.failed / "pipe.pdf").st_mode)


def test_open_flags_do_not_block_on_a_fifo(home: Home) -> None:
    """Even if a FIFO replaces a file after the lstat, the open itself cannot hang."""
    fifo = home.peer / "late.pdf"
    os.mkfifo(fifo)
    result = _in_thread(lambda: os.close(os.open(fifo, intake._FILE_FLAGS)))
    assert "error" not in result


def test_socket_is_refused(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """A UNIX socket in the outbox is refused and moved, never opened."""
    monkeypatch.chdir(home.peer)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind("sock.pdf")
        exc = refused(home, home.peer / "sock.pdf")
        assert exc.code == "socket"
        refuse(home, exc)
        assert stat.S_ISSOCK(os.lstat(home.failed / "sock.pdf").st_mode)
    finally:
        sock.close()


def test_hard_link_is_refused_and_only_the_outbox_name_moves(home: Home) -> None:
    """A hard link to the keystore is refused; the keystore keeps its name and content."""
    link = home.peer / "report.pdf"
    os.link(home.keys / "keystore", link)
    exc = refused(home, link)
    assert exc.code == "hardlink"
    refuse(home, exc)
    assert (home.keys / "keystore").read_bytes() == b"SECRET KEY MATERIAL"
    assert (home.failed / "report.pdf").exists() and not link.exists()


def test_directory_is_refused(home: Home) -> None:
    """A folder is not a document."""
    (home.peer / "folder").mkdir()
    assert refused(home, home.peer / "folder").code == "directory"


def test_empty_file_is_refused_unless_allowed(home: Home) -> None:
    """A zero-byte file is refused by default and taken when the policy allows it."""
    empty = home.peer / "empty.pdf"
    empty.write_bytes(b"")
    assert refused(home, empty).code == "empty"
    assert empty.exists()
    assert take(home, empty, allow_empty=True).size == 0


def test_too_large_is_refused_with_sizes(home: Home) -> None:
    """A file over the limit is refused with both sizes in the reason."""
    big = home.peer / "big.pdf"
    big.write_bytes(b"x" * 3000)
    exc = refused(home, big, max_bytes=2048)
    assert exc.code == "too-large" and "2.9 KB" in exc.reason and "2.0 KB" in exc.reason
    assert big.exists() and os.listdir(home.spool) == []


def test_vanished_file_is_left_alone(home: Home) -> None:
    """A path that no longer exists is 'vanished' and nothing belongs in failed/."""
    exc = refused(home, home.peer / "gone.pdf")
    assert exc.code == "vanished" and not exc.belongs_in_failed


def test_unreadable_file_is_refused(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied on open (simulated: tests run as root) is 'unreadable'."""
    source = home.peer / "locked.pdf"
    source.write_bytes(b"x")
    real_open = os.open

    def deny(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if path == "locked.pdf":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", deny)
    exc = refused(home, source)
    assert exc.code == "unreadable" and exc.belongs_in_failed
    assert source.exists() and os.listdir(home.spool) == []


def test_file_directly_in_outbox_is_refused(home: Home) -> None:
    """A file with no target folder is refused with a pointer to the right place."""
    stray = home.outbox / "x.pdf"
    stray.write_bytes(b"x")
    exc = refused(home, stray)
    assert exc.code == "no-target" and "folder of the office" in exc.reason


def test_undecodable_name_is_refused_and_renamed_in_failed(home: Home) -> None:
    """Invalid UTF-8 in a name is refused on capture; failed/ gets a clean name."""
    raw = os.fsencode(home.peer) + b"/bad\xff\xfe.pdf"
    with open(raw, "wb") as handle:
        handle.write(b"x")
    exc = refused(home, Path(os.fsdecode(raw)))
    assert exc.code == "bad-name"
    reason_file = refuse(home, exc)
    assert (home.failed / "bad.pdf").read_bytes() == b"x"
    assert "bad\\xff\\xfe.pdf" in reason_file.read_text()


def test_invalid_message_id_is_a_caller_error(home: Home) -> None:
    """A message ID is used as a folder name, so it must be a plain token."""
    (home.peer / "x.pdf").write_bytes(b"x")
    with pytest.raises(ValueError):
        take(home, home.peer / "x.pdf", message_id="../escape")


def test_metadata_is_written_and_fsynced_with_the_record_before_the_move(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata is inside intake.json, fsynced before the payload is moved in: a taken
    document is never without the metadata it was validated with (no meta.json any more)."""
    source = home.peer / "x.pdf"
    source.write_bytes(b"x")
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("rename", f"{src}->{dst}"))
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    take(home, source, meta={"kind": "document", "priority": 0})
    folder = home.spool / MID
    record = json.loads((folder / INTAKE_FILE).read_bytes())
    assert record["meta"] == {"kind": "document", "priority": 0}
    assert record["version"] == 3 and record["stream_ends"] is None  # not sealed here
    moved = events.index(("rename", f"x.pdf->{PAYLOAD_FILE}"))
    assert ("fsync", f"{folder}/{INTAKE_FILE}") in events[:moved]
    assert sorted(os.listdir(folder)) == [INTAKE_FILE, PAYLOAD_FILE]


def test_refused_take_with_metadata_leaves_no_spool_folder(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata written before a move that fails goes with the rest of the folder."""
    source = home.peer / "x.pdf"
    source.write_bytes(b"x")

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        raise PermissionError(errno.EACCES, "no")

    monkeypatch.setattr(os, "rename", rename)
    exc = refused(home, source, meta={"kind": "document"})
    assert exc.code == "not-movable"
    assert os.listdir(home.spool) == []


def test_change_between_open_and_move_puts_the_file_back(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that lands between the checks and the move: put back, spool cleaned, retry."""
    source = home.peer / "growing.pdf"
    source.write_bytes(b"first part")
    real_rename = os.rename

    def rename_while_writing(src: Any, dst: Any, **kw: Any) -> None:
        if src == "growing.pdf":
            with open(source, "ab") as handle:
                handle.write(b" and more")
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", rename_while_writing)
    exc = refused(home, source)
    assert exc.code == "changed-while-reading" and not exc.belongs_in_failed
    assert source.read_bytes() == b"first part and more"
    assert os.stat(source).st_nlink == 1
    assert os.listdir(home.spool) == []


def test_put_back_never_overwrites_a_new_file(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the clerk saved a new file under the same name meanwhile, ours returns as 'name (2)'."""
    source = home.peer / "r.pdf"
    source.write_bytes(b"old")
    real_rename = os.rename

    def rename_then_clerk_saves(src: Any, dst: Any, **kw: Any) -> None:
        if src == "r.pdf":
            handle = open(source, "ab")  # a writer that still has the file open
            real_rename(src, dst, **kw)
            handle.write(b"+late write")
            handle.close()
            source.write_bytes(b"brand new document")
            return
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", rename_then_clerk_saves)
    assert refused(home, source).code == "changed-while-reading"
    assert source.read_bytes() == b"brand new document"
    assert (home.peer / "r (2).pdf").read_bytes() == b"old+late write"
    assert os.listdir(home.spool) == []


def test_name_swapped_before_move_is_not_taken(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the name is swapped for another file just before the move, that file goes back."""
    source = home.peer / "s.pdf"
    source.write_bytes(b"checked")
    other = home.peer / ".lienthong-other"
    other.write_bytes(b"swapped in")
    real_rename = os.rename

    def swap_then_rename(src: Any, dst: Any, **kw: Any) -> None:
        if src == "s.pdf":
            real_rename(other, source)
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", swap_then_rename)
    assert refused(home, source).code == "changed-while-reading"
    assert source.read_bytes() == b"swapped in"
    assert os.listdir(home.spool) == []


def test_cross_device_move_copies_through_the_fd(home: Home,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On EXDEV the bytes are copied via the open descriptor, then the original is unlinked."""
    source = home.peer / "far.pdf"
    content = os.urandom(3 * (1 << 20) + 17)
    source.write_bytes(content)
    real_rename = os.rename

    def exdev(src: Any, dst: Any, **kw: Any) -> None:
        if src == "far.pdf":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", exdev)
    taken = take(home, source)
    assert taken.spool_path.read_bytes() == content
    assert not source.exists()
    assert sorted(os.listdir(home.spool / MID)) == [INTAKE_FILE, PAYLOAD_FILE]


def test_move_not_permitted_is_refused_and_spool_cleaned(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the outbox folder does not let us move the file, the refusal says so; no spool left."""
    source = home.peer / "stuck.pdf"
    source.write_bytes(b"x")
    real_rename = os.rename

    def denied(src: Any, dst: Any, **kw: Any) -> None:
        if src == "stuck.pdf":
            raise PermissionError(errno.EACCES, "Permission denied")
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", denied)
    exc = refused(home, source)
    assert exc.code == "not-movable" and source.exists() and os.listdir(home.spool) == []
