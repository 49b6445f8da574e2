"""The access rule (node/core/access.py): the modes and group of what the node keeps for its
clerks, made, settled, surveyed and enforced on real files."""
from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from lienthong.node.core.access import AccessError, AccessPolicy, access_policy
from lienthong.node.core.home import make_folders

GROUP = AccessPolicy(group=grp.getgrgid(os.getegid()).gr_name, gid=os.getegid())


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_without_a_group_everything_is_the_node_users_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_folders(home, AccessPolicy())
    assert _mode(home) == 0o700
    for name in ("outbox", "inbox", "sent", "failed", "logs", "keys", "spool", "tmp", "state"):
        assert _mode(home / name) == 0o700, name
    AccessPolicy().write_synced(home / "inbox" / "x.meta.json", b"{}")
    assert _mode(home / "inbox" / "x.meta.json") == 0o600


def test_with_a_group_clerks_read_their_folders_and_write_the_outbox(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_folders(home, GROUP)
    assert _mode(home) == 0o2750
    for name in ("inbox", "sent", "failed", "logs"):
        assert _mode(home / name) == 0o2750, name
    assert _mode(home / "outbox") == 0o2770
    for name in ("keys", "spool", "tmp", "state"):
        assert _mode(home / name) == 0o700, name
    GROUP.make_folder(home / "recalled" / "hdnd")
    assert _mode(home / "recalled") == _mode(home / "recalled" / "hdnd") == 0o2750
    fd = GROUP.create(home / "sent" / "a.pdf", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    os.close(fd)
    assert _mode(home / "sent" / "a.pdf") == 0o640
    assert os.stat(home / "sent" / "a.pdf").st_gid == GROUP.gid


def test_a_file_another_user_owns_is_replaced_by_the_nodes_own_copy(tmp_path: Path) -> None:
    """A clerk's file renamed into sent/ keeps neither the clerk's mode nor the clerk."""
    if os.geteuid() != 0:
        pytest.fail("this test gives a file to another user: run the suite as root, as "
                    ".ci/run does (sudo python3 dev.py test)")
    sent = tmp_path / "sent"
    sent.mkdir()
    clerks = sent / "cong-van.pdf"
    clerks.write_bytes(b"the clerk's document")
    os.chmod(clerks, 0o666)
    os.chown(clerks, 65534, 65534)
    GROUP.settle(clerks)
    info = os.stat(clerks)
    assert (info.st_uid, info.st_gid, _mode(clerks)) == (0, GROUP.gid, 0o640)
    assert clerks.read_bytes() == b"the clerk's document"
    assert [p.name for p in sent.iterdir()] == ["cong-van.pdf"]


def test_settle_leaves_a_refused_symlink_or_fifo_alone(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to("/etc/passwd")
    GROUP.settle(tmp_path / "fifo")  # neither opened (it would block) nor followed
    GROUP.settle(tmp_path / "link")
    assert _mode(Path("/etc/passwd")) == 0o644


def test_survey_names_what_is_wider_and_enforce_fixes_what_the_node_owns(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_folders(home, AccessPolicy())
    inbox = home / "inbox" / "hdnd"
    inbox.mkdir(mode=0o755)
    os.chmod(inbox, 0o755)
    (inbox / "qd.pdf.meta.json").write_bytes(b"{}")
    os.chmod(inbox / "qd.pdf.meta.json", 0o644)
    os.chmod(home / "logs", 0o755)
    os.chmod(home / "spool", 0o755)
    (home / "spool" / "anything").write_bytes(b"")  # inside a node folder: not covered
    os.chmod(home / "spool" / "anything", 0o644)
    found = {p.path.relative_to(home).as_posix(): p for p in AccessPolicy().survey(home)}
    assert set(found) == {"inbox/hdnd", "inbox/hdnd/qd.pdf.meta.json", "logs", "spool"}
    assert found["inbox/hdnd/qd.pdf.meta.json"].fix == \
        f"chmod 0600 '{inbox / 'qd.pdf.meta.json'}'"
    changed, left = AccessPolicy().enforce(home)
    assert (changed, left) == (4, [])
    assert AccessPolicy().survey(home) == []
    assert _mode(inbox / "qd.pdf.meta.json") == 0o600


def test_enforce_gives_existing_files_the_group_configured_since(tmp_path: Path) -> None:
    """A group configured after documents arrived: at the next start they become readable
    by it (the node owns them), and the outbox becomes writable by it."""
    home = tmp_path / "home"
    make_folders(home, AccessPolicy())
    (home / "inbox" / "hdnd").mkdir(mode=0o700)
    AccessPolicy().write_synced(home / "inbox" / "hdnd" / "qd.pdf", b"x")
    make_folders(home, GROUP)
    GROUP.enforce(home)
    assert _mode(home / "inbox" / "hdnd") == 0o2750
    assert _mode(home / "inbox" / "hdnd" / "qd.pdf") == 0o640
    assert _mode(home / "outbox") == 0o2770


def test_a_group_that_does_not_exist_is_a_clear_error() -> None:
    with pytest.raises(AccessError, match="groupadd no-such-clerks"):
        access_policy("no-such-clerks")


def test_write_replacing_gives_the_rule_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A file written whole by rename: the old contents are replaced, the rule's mode and group
    hold (even under a permissive umask), and nothing else is left in the folder."""
    target = tmp_path / "draft.ics"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    old_umask = os.umask(0)
    try:
        GROUP.write_replacing(target, b"new")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o640 and os.lstat(target).st_gid == os.getegid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draft.ics"]
