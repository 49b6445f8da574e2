"""What a clerk (or malware) can put in an outbox: links, special files, empty, unreadable and
half-written files, and far more files at once than inotify can report.

Only regular files with one link are sent (docs/reliability.md §1.7). Everything else is
refused into ``failed/`` with a reason a clerk can act on, never opened or followed: above all
a symbolic link to the node's own keystore must not send the keystore. A file still being
written is taken once, complete. A mass drop that overflows the inotify queue is caught by the
scans.

Mass drop size: 100,000 files when ``LIENTHONG_FULL_FAULTS=1``; otherwise 2,000 files whose
writes are interleaved so that they still make more than inotify's 16,384 queued events while
the node is stopped (SIGSTOP), so the overflow path runs either way.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time

from tests.faults.conftest import FULL
from tests.integration.harness import TestNode, check_delivered, sent_all, start_wrapped, wait_for

#: Root reads any file; dropping these capabilities makes mode 000 mean "unreadable", as it
#: does for the service account a node runs as in production.
NO_DAC_OVERRIDE = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
                   if os.geteuid() == 0 else [])


def _states(node: TestNode) -> dict[str, int]:
    return {state: n for state, n in node.query("dispatches_by_state").items() if n}


def _reasons(node: TestNode) -> dict[str, str]:
    """Refusal code by the name the entry had in the outbox, from failed/*.reason.txt."""
    found = {}
    for reason in (node.home / "failed").glob("*.reason.txt"):
        text = reason.read_text()
        name = re.search(r"^File:\s+outbox/[^/]+/(.*)$", text, re.M)
        code = re.search(r"^Code:\s+(\S+)", text, re.M)
        if name and code:
            found[name.group(1)] = code.group(1)
    return found


def test_links_special_empty_and_unreadable_files_are_refused(network, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Symlinks (to the keystore, /etc/passwd, a folder, nowhere), a hard link, a FIFO, a socket,
    an empty and an unreadable file: each refused into failed/ with its own code and an audit
    event, none followed or sent; a normal file dropped beside them is delivered."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    start_wrapped(alpha, NO_DAC_OVERRIDE)
    folder = alpha.outbox / "beta"
    folder.mkdir(parents=True, exist_ok=True)
    keystore = alpha.home / "keys" / "keystore.json"
    keystore_bytes = keystore.read_bytes()
    elsewhere = alpha.home / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "goc.pdf").write_bytes(b"a document that lives elsewhere\n")

    (folder / "khoa.json").symlink_to(keystore)
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "thu-muc-khoa").symlink_to(alpha.home / "keys")
    (folder / "treo.pdf").symlink_to(tmp_path / "nowhere.pdf")
    os.link(elsewhere / "goc.pdf", folder / "lien-ket-cung.pdf")
    os.mkfifo(folder / "ong.fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "o-cam.sock"))
    (folder / "rong.pdf").write_bytes(b"")
    (folder / "khong-doc.pdf").write_bytes(b"no read permission\n")
    os.chmod(folder / "khong-doc.pdf", 0)
    good = b"Van ban binh thuong\n" * 100
    alpha.drop("beta", "hop-le.pdf", good)

    expected = {"khoa.json": "symlink", "passwd.txt": "symlink", "thu-muc-khoa": "symlink",
                "treo.pdf": "symlink", "lien-ket-cung.pdf": "hardlink", "ong.fifo": "fifo",
                "o-cam.sock": "socket", "rong.pdf": "empty", "khong-doc.pdf": "unreadable"}
    try:
        wait_for(lambda: set(expected) <= set(_reasons(alpha)), timeout=30,
                 what=f"every special entry to be refused (so far {_reasons(alpha)})")
        wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the normal file to be delivered")
    finally:
        server.close()
    assert {name: _reasons(alpha)[name] for name in expected} == expected
    check_delivered(alpha, [beta], {"hop-le.pdf": good})
    assert keystore.read_bytes() == keystore_bytes and not keystore.is_symlink()
    assert (elsewhere / "goc.pdf").read_bytes() == b"a document that lives elsewhere\n"
    assert (alpha.home / "failed" / "khoa.json").is_symlink(), "the link itself is parked"
    codes = {json.loads(e.detail_json).get("code")
             for e in alpha.query("audit_entries", kind="refused")}
    assert set(expected.values()) <= codes
    assert _states(alpha) == {"sent": 1}


def test_file_still_being_written_is_sent_once_complete(network) -> None:  # type: ignore[no-untyped-def]
    """A program writes a document in place for about three seconds: the node waits, then
    sends the complete file exactly once (never a truncated copy)."""
    nodes = network("alpha", "beta", settings={"stable_seconds = 1.0": "stable_seconds = 1.0"})
    alpha, beta = nodes["alpha"], nodes["beta"]
    beta.start()
    alpha.start()
    folder = alpha.outbox / "beta"
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [os.urandom(32 * 1024) for _ in range(15)]
    with open(folder / "dang-viet.pdf", "wb") as sink:
        for chunk in chunks:
            sink.write(chunk)
            sink.flush()
            time.sleep(0.2)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the finished file to be delivered")
    time.sleep(1.5)  # anything taken twice would have been taken by now
    check_delivered(alpha, [beta], {"dang-viet.pdf": b"".join(chunks)})
    assert _states(alpha) == {"sent": 1}


def _interleaved_drop(folder, count: int, writes: int) -> None:  # type: ignore[no-untyped-def]
    """Create ``count`` files, each written in ``writes`` pieces round-robin over batches of
    files, so every write is a separate inotify event (the kernel merges only repeats)."""
    batch = 100
    for start in range(0, count, batch):
        handles = [open(folder / f"lo-{i:06d}.txt", "wb")  # noqa: SIM115 - closed below
                   for i in range(start, min(start + batch, count))]
        for piece in range(writes):
            for handle in handles:
                handle.write(f"{handle.name} phan {piece}\n".encode())
                handle.flush()
        for handle in handles:
            handle.close()


def test_mass_drop_overflowing_inotify_is_caught_by_scans(network) -> None:  # type: ignore[no-untyped-def]
    """Many files appear while the node is stopped, more events than inotify queues: after the
    overflow, the scans take every file exactly once (the peer is offline; capture only)."""
    count, writes = (100_000, 1) if FULL else (2_000, 10)
    print(f"mass drop: {count} files x {writes} writes "
          f"(LIENTHONG_FULL_FAULTS={'1' if FULL else 'unset'})")
    nodes = network("alpha", "beta")
    alpha = nodes["alpha"]
    folder = alpha.outbox / "beta"
    folder.mkdir(parents=True, exist_ok=True)  # before the start, so it is already watched
    alpha.start()
    time.sleep(1)
    assert alpha.process is not None
    alpha.process.send_signal(signal.SIGSTOP)
    try:
        _interleaved_drop(folder, count, writes)
    finally:
        alpha.process.send_signal(signal.SIGCONT)
    started = time.monotonic()
    wait_for(lambda: sum(alpha.query("dispatches_by_state").values()) >= count,
             timeout=3600 if FULL else 300, interval=1,
             what=f"all {count} files to be taken")
    print(f"took {count} files in {time.monotonic() - started:.1f} s")
    assert "inotify queue overflow" in alpha.log_text(), \
        "the drop did not overflow inotify, so this test did not test the scan fallback"
    time.sleep(3)  # one more scan interval: nothing may be taken twice
    rows = alpha.query("recent_dispatches", count + 10)
    names = [row.name for row in rows]
    assert len(names) == count and set(names) == {f"lo-{i:06d}.txt" for i in range(count)}
    assert [p.name for p in folder.iterdir()] == []
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("lo-"))
