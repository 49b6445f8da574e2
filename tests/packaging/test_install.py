"""Installing lienthong touches nothing else in site-packages, and runs from the wheel alone.

The folders node/, protocol/, keys/ and config/ sit at the repository's top, but PyPI has
packages named ``config`` and ``node`` too: installed bare, one would overwrite the other. The
wheel holds only ``lienthong/...``. This test builds the real wheel, installs it into a fresh
virtual environment that already has PyPI's ``config`` and ``node``, and checks that all three
work, the demo network included. It needs the package registry (as the set-up command does).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: PyPI packages whose top-level names are the names of our folders.
NEIGHBOURS = ("config==0.5.1", "node==2.0.0")

pytestmark = pytest.mark.integration


def _run(*args: str | Path, cwd: Path = Path("/"), timeout: float = 600) -> str:
    """Run a command away from the repository, whose top folders would shadow what is installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.py"))}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT)
    (built,) = out.glob("lienthong-*.whl")
    return built


def test_wheel_holds_only_the_lienthong_package(wheel: Path) -> None:
    """Every file in the wheel is under lienthong/ (or its metadata), the example configs too."""
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"lienthong", next(t for t in tops if t.endswith(".dist-info"))}
    assert "lienthong/node/cli/main.py" in names
    assert "lienthong/config/examples/tinhuy.toml" in names
    assert not any(name.startswith("lienthong/__init__") for name in names)  # a namespace
    assert any(name.endswith(".dist-info/LICENSE") or "/licenses/" in name for name in names)


def test_installing_beside_pypi_config_and_node_breaks_neither(wheel: Path,
                                                               tmp_path: Path) -> None:
    """PyPI's config and node keep their files and import; lienthong imports and its demo runs."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, site = env_dir / "bin" / "python", None
    _run(python, "-m", "pip", "install", "--quiet", *NEIGHBOURS)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .strip())
    before = {name: _digests(site / name) for name in ("config", "node")}
    assert before["config"] and before["node"]

    _run(python, "-m", "pip", "install", "--quiet", wheel)

    assert {name: _digests(site / name) for name in ("config", "node")} == before
    _run(python, "-c", "import config, node.base; import lienthong.config.loader, "
                       "lienthong.node.cli.main")
    out = _run(env_dir / "bin" / "lienthong", "demo", "--dir", tmp_path / "demo",
               cwd=tmp_path, timeout=300)
    assert out.count("✓") >= 4, out

    # And the other way round: removing PyPI's config leaves ours in place.
    _run(python, "-m", "pip", "uninstall", "--quiet", "--yes", "config")
    _run(python, "-c", "import lienthong.config.offices")
