"""What is not an ordinary file is refused into failed/, never followed or sent."""
from __future__ import annotations

import os

from lienthong.config.loader import load_config
from tests.integration.harness import check_delivered, sent_all, wait_for


def test_symlink_fifo_and_hard_link_are_refused_and_the_node_keeps_delivering(network) -> None:  # type: ignore[no-untyped-def]
    """A link to the keystore, a FIFO and a hard link land in failed/ with reasons, in
    Vietnamese (the offices' default language); none is sent."""
    nodes = network("alpha", "beta", language="vi")
    alpha, beta = nodes["alpha"], nodes["beta"]
    keystore = load_config(alpha.home).keystore.path
    keystore_before = (keystore.read_bytes(), os.lstat(keystore))
    elsewhere = alpha.home / "ban-goc.txt"
    elsewhere.write_bytes(b"a document that also lives outside the outbox\n")
    alpha.start()
    beta.start()
    folder = alpha.outbox / "beta"
    folder.mkdir(exist_ok=True)
    os.symlink(keystore, folder / "keystore.json")
    os.mkfifo(folder / "ong-dan.pdf")
    os.link(elsewhere, folder / "lien-ket.txt")
    failed = alpha.home / "failed"
    expected = {"keystore.json": "symlink", "ong-dan.pdf": "fifo", "lien-ket.txt": "hardlink"}
    wait_for(lambda: all((failed / f"{name}.reason.txt").exists() for name in expected),
             timeout=30, what="the three refusals")
    for name, code in expected.items():
        reason = (failed / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert f"Mã lỗi:  {code}" in reason and "lienthong không gửi tệp này" in reason, reason
        assert "chỉ gửi tệp thông thường" in reason or "liên kết cứng" in reason, reason
        assert os.path.lexists(failed / name)
    assert os.path.islink(failed / "keystore.json")
    assert os.readlink(failed / "keystore.json") == str(keystore)
    assert os.stat(failed / "lien-ket.txt").st_ino == os.stat(elsewhere).st_ino
    assert list(folder.iterdir()) == []
    content, lstat = keystore_before
    assert keystore.read_bytes() == content
    now = os.lstat(keystore)
    assert (now.st_ino, now.st_mode, now.st_size, now.st_mtime_ns, now.st_nlink) == (
        lstat.st_ino, lstat.st_mode, lstat.st_size, lstat.st_mtime_ns, lstat.st_nlink)
    assert alpha.query("recent_dispatches", 10) == []
    assert sorted(e.detail["code"] for e in alpha.query("audit_entries", kind="refused")) == \
        sorted(expected.values())

    data = b"Bao cao tuan\n" * 100
    alpha.drop("beta", "bao-cao.txt", data)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the ordinary file to be receipted")
    check_delivered(alpha, [beta], {"bao-cao.txt": data})
    assert len(alpha.query("recent_dispatches", 10)) == 1
    assert alpha.process is not None and alpha.process.poll() is None
    assert keystore.read_bytes() == content
