"""``lienthong petitions`` only for the petition staff: a real other Unix user outside the
group is refused with a sentence before the register is opened."""
from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Imported before becoming nobody: this machine's Python lives where only root reads.
AS_NOBODY = """
import os, sys
from lienthong.node.cli.main import main
import lienthong.node.cli.petitions
import _strptime  # dates are parsed lazily; after setuid the standard library is out of reach
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.argv = ["lienthong", "petitions", "--home", sys.argv[1]]
main()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another Unix user needs root")
def test_a_user_outside_the_petition_group_is_refused() -> None:
    home = Path(tempfile.mkdtemp(prefix="lienthong-access-", dir="/tmp"))
    try:
        os.chmod(home, 0o755)
        group = grp.getgrgid(os.getgid()).gr_name
        (home / "lienthong.toml").write_text(
            'config_version = 1\n[node]\nname = "ubnd"\nlisten = "127.0.0.1:9"\n'
            f'[petitions]\npeers = ["tinhuy"]\ngroup = "{group}"\n', encoding="utf-8")
        os.chmod(home / "lienthong.toml", 0o644)
        done = subprocess.run([sys.executable, "-c", AS_NOBODY, str(home)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env=dict(os.environ, PYTHONPATH=str(ROOT), LIENTHONG_LANG="en"),
                              cwd="/")
        assert done.returncode == 2, done.stderr
        assert "only the petition staff may read the petition register" in done.stderr
        assert f"members of the Unix group {group}" in done.stderr
        assert "Traceback" not in done.stderr
        vietnamese = {k: v for k, v in os.environ.items() if k != "LIENTHONG_LANG"}
        done = subprocess.run([sys.executable, "-c", AS_NOBODY, str(home)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env=dict(vietnamese, PYTHONPATH=str(ROOT)), cwd="/")
        assert done.returncode == 2 and "chỉ cán bộ xử lý đơn thư" in done.stderr, done.stderr
        assert f"thành viên nhóm Unix {group}" in done.stderr
    finally:
        shutil.rmtree(home)
