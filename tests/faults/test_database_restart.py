"""The PostgreSQL server behind both nodes restarts in the middle of a burst (an immediate
shutdown: every session cut, as in a crash or a failover): no document is lost or doubled, and
both nodes carry on by themselves once the server is back."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.harness import check_delivered, sent_all, wait_for
from tests.pgserver import PostgresServer

BURST = 150


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own: restarting it must not disturb the suite's shared one."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def inbox_count(node) -> int:  # type: ignore[no-untyped-def]
    folder = node.inbox / "alpha"
    if not folder.exists():
        return 0
    return sum(1 for p in folder.iterdir() if p.name.startswith("cv-") and
               p.name.endswith(".txt"))


def test_a_database_restart_mid_burst_costs_no_document(network, own_server: PostgresServer  # type: ignore[no-untyped-def]
                                                        ) -> None:
    nodes = network("alpha", "beta", store_url=own_server.create_database)
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    documents = {f"cv-{n:04d}.txt": f"Cong van so {n}/UBND\n".encode() * (50 + n)
                 for n in range(BURST)}
    for name, data in documents.items():
        alpha.drop("beta", name, data)
    wait_for(lambda: inbox_count(beta) >= 10, timeout=60, what="the burst to be under way")
    assert inbox_count(beta) < BURST, "the burst finished before the restart: make it larger"
    started = time.monotonic()
    own_server.restart(pause=2.0)
    wait_for(lambda: sent_all(alpha, BURST), timeout=180, what="every receipt after the restart")
    drained = time.monotonic() - started
    check_delivered(alpha, [beta], documents)
    for node in (alpha, beta):
        assert node.process is not None and node.process.poll() is None, node.log_text()
    log = alpha.log_text() + beta.log_text()
    assert "database connection was lost" in log  # the restart really cut work in flight
    print(f"{BURST} documents; drained {drained:.1f} s after the restart began")
    assert alpha.stop() == 0
    assert beta.stop() == 0
