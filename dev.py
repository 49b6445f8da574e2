#!/usr/bin/env python3
"""Set up a virtual environment and run a project task, with nothing but python3.

Why a Python script rather than only a Makefile: the README promises two commands that work on
a fresh machine that has python3 and nothing else (no make, no activated venv). This script
creates ``.venv`` on first use, installs the project with its test extras, and then runs the
task inside that environment. ``make`` targets call it too, so there is one way to do things.

    python3 dev.py demo      the three-office demo network
    python3 dev.py test      lint (below), then the whole test suite
    python3 dev.py lint      ruff, the layer contracts (lint-imports), then mypy
    python3 dev.py mutate [MODULE...]   mutation testing of the security-critical modules
    python3 dev.py bench-protocol | bench | bench-urgency | test-faults | fuzz
    python3 dev.py simulate --offices N   a province of N real nodes (bench/network_sim.py)
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
PY = VENV / "bin" / "python"


def _requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create .venv and install the project when missing or when its dependencies changed."""
    if not PY.exists():
        print("dev.py: creating virtual environment in .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = _requirements_digest()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    print("dev.py: installing lienthong and its test dependencies (first run only)", flush=True)
    subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"])
    STAMP.write_text(want)


def _ensure_debian_package(package: str, present: bool, needed_for: str) -> None:
    """Install a Debian package the tests need when it is missing and we can (root with
    apt-get); otherwise say how, loudly. The tests that need it fail rather than skip."""
    import shutil
    if present:
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"dev.py: installing {package} ({needed_for})", flush=True)
        subprocess.call(["apt-get", "update", "-qq"])
        if subprocess.call(["apt-get", "install", "-y", "-qq", package],
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")) == 0:
            return
    print(f"dev.py: {package} is missing; {needed_for} will fail. "
          f"Install it with: sudo apt-get install {package}", flush=True)


def ensure_test_tools() -> None:
    """What the suite needs outside Python, from Debian's packages:

    - libfaketime, which fakes per-process clocks in the clock-skew fault tests;
    - PostgreSQL, a real server the store and delivery tests start themselves with initdb and
      pg_ctl (tests/pgserver.py);
    - Chromium, the real browser the web-page and report tests drive with Playwright (the
      tests launch /usr/bin/chromium; Playwright never downloads a browser).
    """
    import glob
    import shutil
    _ensure_debian_package(
        "faketime", bool(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
                         or glob.glob("/usr/lib/faketime/libfaketime.so.1")),
        "the clock-skew fault tests")
    _ensure_debian_package(
        "postgresql", bool(glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")),
        "the PostgreSQL store tests")
    _ensure_debian_package("chromium", shutil.which("chromium") is not None,
                           "the browser tests")


def ensure_mutation_tools() -> None:
    """mutmut is in the ``mutation`` extra, not in ``test``: only `dev.py mutate` needs it."""
    if subprocess.call([str(PY), "-c", "import mutmut"], stderr=subprocess.DEVNULL) == 0:
        return
    print("dev.py: installing the mutation extra (mutmut; first run only)", flush=True)
    subprocess.check_call([str(PY), "-m", "pip", "install", "--quiet", "-e",
                           f"{ROOT}[test,mutation]"])


TASKS = {
    "demo": [str(VENV / "bin" / "lienthong"), "demo", "--serve"],
    "test": [str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
    "test-fast": [str(PY), "-m", "pytest", "-q", "-m", "not integration and not faults"],
    "test-faults": [str(PY), "-m", "pytest", "-q", "tests/faults"],
    "bench-protocol": [str(PY), "-m", "bench.protocol_bench"],
    "bench": [str(PY), "-m", "bench.node_bench"],
    "bench-urgency": [str(PY), "-m", "bench.urgency_bench"],
    "simulate": [str(PY), "-m", "bench.network_sim"],
    "fuzz": [str(PY), "-m", "tests.fuzz.fuzz_frames"],
    "mutate": [str(PY), "-m", "tests.mutation.run"],
}


#: The top folders, installed as lienthong.<folder> (setup.cfg, package_dir).
PACKAGES = ("node", "protocol", "keys", "config")
#: Where mypy finds them under those names (pyproject.toml, [tool.mypy] mypy_path).
TYPECHECK = ROOT / "build" / "typecheck"


def link_typecheck_tree() -> None:
    """Make build/typecheck/lienthong/<folder> a link to each top folder.

    The editable install maps the folders to lienthong.* with an import hook, which mypy cannot
    see; through these links mypy checks each file under the one name the code imports it by.
    """
    package = TYPECHECK / "lienthong"
    package.mkdir(parents=True, exist_ok=True)
    for folder in PACKAGES:
        link = package / folder
        target = Path("..", "..", "..", folder)   # relative: the checkout may move
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)


def run_mypy() -> int:
    """mypy on the four packages; its report names the real files (node/..., not the links)."""
    link_typecheck_tree()
    command = [str(PY), "-m", "mypy"]
    for folder in PACKAGES:
        command += ["-p", f"lienthong.{folder}"]
    links = f"{TYPECHECK.relative_to(ROOT)}/lienthong/"
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as mypy:
        assert mypy.stdout is not None
        for line in mypy.stdout:
            print(line.removeprefix(links), end="", flush=True)
    return mypy.returncode


def lint() -> int:
    """ruff, then the layer contracts, then mypy (the configurations are in pyproject.toml);
    stops at the first that fails and says which. Needs ensure_venv() first."""
    bin_dir = VENV / "bin"
    steps = [
        ("ruff check .", lambda: subprocess.call([str(bin_dir / "ruff"), "check", "."], cwd=ROOT)),
        ("lint-imports", lambda: subprocess.call([str(bin_dir / "lint-imports")], cwd=ROOT)),
        ("mypy", run_mypy),
    ]
    for name, step in steps:
        print(f"dev.py lint: {name}", flush=True)
        status = step()
        if status != 0:
            print(f"dev.py lint: {name} failed (exit status {status})", flush=True)
            return status
    return 0


def main(argv: list[str]) -> int:
    if not argv or (argv[0] not in TASKS and argv[0] not in ("lint", "mutate")):
        print(__doc__)
        return 2
    ensure_venv()
    if argv[0] == "lint":
        return lint()
    if argv[0] == "mutate":
        ensure_mutation_tools()
    if argv[0] in ("test", "test-faults", "test-fast"):
        ensure_test_tools()
    # The whole suite starts with the checks that read the code (no arguments: a partial run
    # such as `dev.py test tests/keys` is a developer's, who runs `dev.py lint` when ready).
    lint_status = lint() if argv == ["test"] else 0
    command = TASKS[argv[0]] + argv[1:]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    status = subprocess.call(command, cwd=ROOT, env=env)
    if lint_status != 0:
        print("dev.py test: the suite ran, but lint failed (see above)", flush=True)
    return status or lint_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
