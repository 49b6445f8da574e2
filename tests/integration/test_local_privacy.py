"""Nothing an office received or sent is readable by another user of its machine, tried as
real Unix users after real deliveries: ``nobody`` reads nothing under a node's home; a clerk in
the configured clerks' group (``[node] clerks_group``) reads the documents, their sidecars,
failed/, recalled/ and the logs, but not the keys, the store, the spool or tmp/
(docs/operations.md §5).

The test creates a throwaway group and user, so it needs root: CI runs the suite as root on a
fresh machine (.ci/run). Run elsewhere it fails with how to run it, never skips.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import (
    ROOT,
    TestNode,
    make_network,
    sidecar,
    wait_for,
)

#: Runs as the user under test with only the system Python: tries to read every file and list
#: every folder it is given, and prints what it could.
READER = """
import json, os, sys
paths = json.load(sys.stdin)
readable = []
for path in paths:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        readable.append(path)
    except OSError:
        pass
json.dump(readable, sys.stdout)
"""
NODE_ONLY = ("keys", "state", "spool", "tmp")
CLERKS = ("inbox", "sent", "failed", "recalled", "logs")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test creates a Unix group and user and reads a node's files as them; "
                    "run it as root, as CI does (.ci/run on a fresh machine), e.g. "
                    "sudo PYTHONPATH=. .venv/bin/python -m pytest "
                    "tests/integration/test_local_privacy.py")


@pytest.fixture
def clerk() -> Iterator[tuple[str, str]]:
    """A throwaway clerks' group and a clerk in it, removed afterwards."""
    _need_root()
    suffix = secrets.token_hex(3)
    group, user = f"ltclerks{suffix}", f"ltclerk{suffix}"
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--groups", group, user], check=True)
        try:
            yield group, user
        finally:
            subprocess.run(["userdel", user], check=False)
    finally:
        subprocess.run(["groupdel", group], check=False)


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A folder every user may pass through (pytest's own tmp folders are root's alone, which
    would hide the homes from the users under test for the wrong reason)."""
    base = Path(tempfile.mkdtemp(prefix="lienthong-privacy-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _readable_as(args: list[str], paths: list[Path]) -> set[Path]:
    result = subprocess.run(["setpriv", *args, "/usr/bin/python3", "-c", READER],
                            input=json.dumps([str(p) for p in paths]), capture_output=True,
                            text=True, timeout=60, check=True)
    return {Path(p) for p in json.loads(result.stdout)}


def _everything(home: Path) -> list[Path]:
    found = [home]
    for folder, dirs, files in os.walk(home):
        found += [Path(folder) / name for name in dirs + files]
    return found


def _cli(node: TestNode, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lienthong.node", *args, "--home",
                           str(node.home)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT),
                          check=False)


def test_an_outsider_reads_nothing_and_a_clerk_reads_only_the_clerks_part(
        clerk: tuple[str, str], open_base: Path) -> None:
    group, user = clerk
    nodes = make_network(open_base, ("alpha", "beta"), settings={
        '# clerks_group = "vanthu"': f'clerks_group = "{group}"',
        "[groups]": "[edxml]\nwrite_beside = true\n\n[groups]"})
    alpha, beta = nodes["alpha"], nodes["beta"]
    try:
        alpha.start()
        beta.start()
        alpha.drop("beta", "quyet-dinh-12.pdf", b"Quyet dinh so 12/QD-UBND\n" * 40)
        alpha.drop("beta", "cong-van-45.txt", b"Cong van so 45/UBND-VP\n")
        alpha.drop("no-such-office", "lac-dia-chi.txt", b"goes to failed/\n")
        # Waited for in sent/: the node's own notices (signed audit heads) are dispatches too.
        wait_for(lambda: all((alpha.home / "sent" / "beta" / f"{name}.meta.json").exists()
                             for name in ("quyet-dinh-12.pdf", "cong-van-45.txt")),
                 timeout=60, what="both documents receipted and filed")
        wait_for(lambda: (alpha.home / "failed" / "lac-dia-chi.txt.reason.txt").exists(),
                 timeout=30, what="the refusal into failed/")
        mid = next(d.message_id for d in alpha.query("recent_dispatches", 10)
                   if d.name == "cong-van-45.txt")
        recall = _cli(alpha, "recall", mid, "--reason", "Ban hành nhầm", "--wait", "20")
        assert recall.returncode == 0, recall.stderr
        wait_for(lambda: (beta.home / "recalled" / "alpha" / "cong-van-45.txt").exists(),
                 timeout=30, what="the recall at beta")
        wait_for(lambda: (beta.inbox / "alpha" / "quyet-dinh-12.pdf.edxml").exists(),
                 timeout=30, what="the edXML copy beside the document")

        # One listing for the checks and the expectations: a node keeps filing its own
        # notices meanwhile, and a file that appeared after the check would look unreadable.
        listed = {node.home: _everything(node.home) for node in (alpha, beta)}
        everything = listed[alpha.home] + listed[beta.home]
        outsider = _readable_as(["--reuid=nobody", "--regid=nogroup", "--clear-groups"],
                                everything)
        assert outsider == set(), sorted(map(str, outsider))

        insider = _readable_as([f"--reuid={user}", f"--regid={group}", "--init-groups"],
                               everything)
        for node in (alpha, beta):
            clerk_files = [p for p in listed[node.home]
                           if p.is_file() and p.relative_to(node.home).parts[0] in CLERKS]
            node_files = [p for p in listed[node.home] if p != node.home and
                          p.relative_to(node.home).parts[0] in NODE_ONLY]
            assert clerk_files and node_files
            assert set(clerk_files) <= insider, sorted(map(str, set(clerk_files) - insider))
            assert not insider & set(node_files), sorted(map(str, insider & set(node_files)))
        sidecar(beta.inbox / "alpha" / "quyet-dinh-12.pdf")  # written just after the receipt
        must_read = [beta.inbox / "alpha" / "quyet-dinh-12.pdf",
                     beta.inbox / "alpha" / "quyet-dinh-12.pdf.meta.json",
                     beta.inbox / "alpha" / "quyet-dinh-12.pdf.receipt.jws",
                     beta.inbox / "alpha" / "quyet-dinh-12.pdf.edxml",
                     beta.home / "recalled" / "alpha" / "cong-van-45.txt.recall.jws",
                     alpha.home / "sent" / "beta" / "quyet-dinh-12.pdf",
                     alpha.home / "failed" / "lac-dia-chi.txt.reason.txt",
                     beta.home / "logs" / "lienthong.jsonl"]
        assert set(must_read) <= insider

        status = _cli(beta, "status", "--json")
        assert json.loads(status.stdout)["too_wide"] == [], status.stdout
        os.chmod(beta.inbox / "alpha" / "quyet-dinh-12.pdf.meta.json", 0o644)
        check = _cli(beta, "status", "--check", "--json")
        assert check.returncode == 1, check.stdout
        warnings = [w for w in json.loads(check.stdout)["warnings"] if w["code"] == "too-wide"]
        assert len(warnings) == 1 and "inbox/alpha" in warnings[0]["message"]
        assert "quyet-dinh" not in warnings[0]["message"]  # counted, not named
    finally:
        for node in nodes.values():
            node.kill()
