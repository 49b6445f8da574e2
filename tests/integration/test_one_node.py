"""One node per home and per database, and a store that cannot be used: a second `lienthong
run`, a PostgreSQL URL that does not connect, a missing driver, a schema from newer code, two
homes on one store. Each stops with one plain sentence and exit status 2, writes nothing into
the audit, and leaves a running node running."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import ROOT, TestNode, free_port, wait_for
from tests.node.storehelp import raw_sql

both_stores = pytest.mark.usefixtures("store_backend")


def run_again(home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`lienthong run HOME` as a person would type it, expected to stop by itself."""
    return subprocess.run([sys.executable, "-m", "lienthong.node", "run", str(home)],
                          capture_output=True, text=True, timeout=60, cwd=str(ROOT),
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def plain_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def start_fully(node: TestNode) -> None:
    """Start and wait until the node has finished starting (its last log line of start):
    a SIGTERM in the middle of Node.start is a separate, older race (see the report)."""
    seen = node.log_text().count("listening on") if node.log_file else 0
    node.start()
    wait_for(lambda: node.log_text().count("listening on") > seen, timeout=60,
             what=f"{node.name} to finish starting")


def store_url(node: TestNode) -> str:
    from lienthong.config.loader import load_config
    return load_config(node.home).store.url


@both_stores
def test_a_second_run_of_a_running_home_is_refused_and_writes_nothing(network) -> None:  # type: ignore[no-untyped-def]
    """The second `run` names the running node's PID and host, exits 2, and the running node's
    audit gains no false node-stopped; it keeps running."""
    alpha = network("alpha", enrol=False)["alpha"]
    start_fully(alpha)
    before = alpha.audit_kinds()
    message = plain_refusal(run_again(alpha.home))
    assert "already running" in message and f"process {alpha.pid} on" in message
    assert alpha.audit_kinds() == before
    assert alpha.process is not None and alpha.process.poll() is None
    assert alpha.stop() == 0
    assert alpha.audit_kinds()[-1] == "node-stopped"
    start_fully(alpha)  # the lock went with the process: a restart is not refused
    assert alpha.stop() == 0


@both_stores
def test_two_homes_on_one_store_are_refused(network, store_backend: str) -> None:  # type: ignore[no-untyped-def]
    """A second home configured with alpha's store: refused while alpha runs (PostgreSQL: the
    advisory lock, naming alpha's PID), and after it stopped (the store is alpha's)."""
    nodes = network("alpha", "beta", enrol=False)
    alpha, beta = nodes["alpha"], nodes["beta"]
    config = beta.home / "lienthong.toml"
    text = config.read_text()
    config.write_text(text.replace(f'url = "{store_url(beta)}"', f'url = "{store_url(alpha)}"')
                      if store_backend == "postgresql"
                      else text.replace('url = ""', f'url = "{store_url(alpha)}"'))
    assert store_url(beta) == store_url(alpha)
    start_fully(alpha)
    before = alpha.audit_kinds()
    message = plain_refusal(run_again(beta.home))
    if store_backend == "postgresql":
        assert "already running on the database" in message
        assert f"process {alpha.pid} on" in message
    else:
        assert "belongs to another node" in message
    assert alpha.audit_kinds() == before
    assert alpha.stop() == 0
    before = alpha.audit_kinds()
    message = plain_refusal(run_again(beta.home))
    assert "belongs to another node" in message and alpha.node_id in message
    assert alpha.audit_kinds() == before


@both_stores
def test_a_store_from_newer_code_is_refused(network) -> None:  # type: ignore[no-untyped-def]
    """Schema version 99: `run` says to upgrade lienthong, and the version stays 99."""
    alpha = network("alpha", enrol=False)["alpha"]
    start_fully(alpha)
    assert alpha.stop() == 0
    url = store_url(alpha)
    before = raw_sql(url, "SELECT count(*) FROM audit")
    raw_sql(url, "UPDATE schema_meta SET version = 99")
    message = plain_refusal(run_again(alpha.home))
    assert "upgrade lienthong" in message and "99" in message
    assert raw_sql(url, "SELECT version FROM schema_meta") == [(99,)]
    assert raw_sql(url, "SELECT count(*) FROM audit") == before


def test_a_postgresql_url_that_does_not_connect_is_said_plainly(tmp_path: Path) -> None:
    """Nothing listens at the URL's port: `init --store` and `run` both say so, naming the
    address (never a password), and init creates no home."""
    url = f"postgresql://lienthong@127.0.0.1:{free_port()}/nothing"
    home = tmp_path / "alpha"
    result = subprocess.run([sys.executable, "-m", "lienthong.node", "init", str(home),
                             "--name", "alpha", "--kdf", "minimal", "--listen", "127.0.0.1:7443",
                             "--store", url],
                            capture_output=True, text=True, timeout=60, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    message = plain_refusal(result)
    assert "Cannot reach the PostgreSQL store at" in message and "127.0.0.1" in message
    assert not home.exists()


def test_run_with_an_unreachable_store_and_a_missing_driver(network, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A node whose database server is down stops with a sentence; so does one without
    psycopg, and that sentence names the extra to install."""
    alpha = network("alpha", enrol=False)["alpha"]
    config = alpha.home / "lienthong.toml"
    dead = f"postgresql://lienthong@127.0.0.1:{free_port()}/nothing"
    config.write_text(config.read_text().replace('url = ""', f'url = "{dead}"'))
    assert store_url(alpha) == dead
    message = plain_refusal(run_again(alpha.home))
    assert "Cannot reach the PostgreSQL store" in message
    assert not (alpha.home / "logs" / "lienthong.log").exists() or \
        "node-started" not in (alpha.home / "logs" / "lienthong.log").read_text()
    no_driver = tmp_path / "no-driver"
    no_driver.mkdir()
    (no_driver / "psycopg.py").write_text("raise ImportError('psycopg is not installed')\n")
    message = plain_refusal(run_again(alpha.home, env={
        "PYTHONPATH": f"{no_driver}{os.pathsep}{ROOT}"}))
    assert "pip install 'lienthong[postgresql]'" in message
