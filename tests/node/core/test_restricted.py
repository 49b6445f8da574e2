"""The restricted folder of petitions: 2750/0640 (the access rule) for the node's user and
the petition staff's group; a user outside that group reads nothing, tried as a real other
Unix user (root runs a child process that becomes ``nobody``)."""
from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.node.core.restricted import RestrictedFolderError, restrict, restricted_folder

NOBODY = 65534
GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A folder everyone may traverse (tmp_path's parents are 0700, which would hide the
    restricted folder from another user for the wrong reason)."""
    base = Path(tempfile.mkdtemp(prefix="lienthong-restricted-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_folders_2750_files_0640_given_to_the_group(open_base: Path) -> None:
    folder = restricted_folder(open_base / "petitions" / "inbox" / "tinhuy", GROUP,
                               below=open_base / "petitions")
    document = folder / "petition-0123.pdf"
    document.write_bytes(b"x")
    os.chmod(document, 0o600)
    restrict(document, GROUP)
    assert [mode(p) for p in (open_base / "petitions", folder.parent, folder)] == [0o2750] * 3
    assert mode(document) == 0o640 and document.stat().st_gid == os.getgid()


def test_without_a_group_only_the_nodes_user(open_base: Path) -> None:
    folder = restricted_folder(open_base / "p" / "inbox", "", below=open_base / "p")
    (folder / "f").write_bytes(b"x")
    restrict(folder / "f", "")
    assert (mode(folder), mode(folder / "f")) == (0o700, 0o600)


def test_a_missing_group_and_a_link_are_refused(open_base: Path) -> None:
    with pytest.raises(RestrictedFolderError, match="groupadd no-such-group-xyz"):
        restricted_folder(open_base / "p", "no-such-group-xyz", below=open_base / "p")
    (open_base / "link").symlink_to("/etc/passwd")
    with pytest.raises(RestrictedFolderError, match="symbolic link"):
        restrict(open_base / "link", GROUP)


OUTSIDER = """
import os, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
public, folder, document = sys.argv[1:4]
print("public", open(public).read())
for attempt in (lambda: os.listdir(folder), lambda: open(document).read(),
                lambda: os.stat(document)):
    try:
        attempt()
        print("READ")
    except PermissionError:
        print("refused")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another Unix user needs root")
def test_a_user_outside_the_petition_group_reads_nothing(open_base: Path) -> None:
    folder = restricted_folder(open_base / "petitions" / "inbox" / "tinhuy", GROUP,
                               below=open_base / "petitions")
    assert NOBODY != os.getgid()
    document = folder / "petition-0123.pdf"
    for path in (document, folder / "petition-0123.pdf.meta.json"):
        path.write_text("Trần Thị Bích Ngọc")
        restrict(path, GROUP)
    public = open_base / "public.txt"
    public.write_text("readable")
    os.chmod(public, 0o644)
    seen = subprocess.run([sys.executable, "-c", OUTSIDER, str(public), str(folder),
                           str(document)], capture_output=True, text=True, check=True,
                          timeout=30).stdout.split("\n")
    # The first line proves the child really was another user who can read what is public.
    assert seen[:4] == ["public readable", "refused", "refused", "refused"]
