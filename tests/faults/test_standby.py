"""An office run by an active/standby pair (docs/scale.md, "Active/standby"): the standby takes
over after the active node is killed, within the bound, and delivery carries on."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.pair import PairMember, audit_verify, make_pair_network
from tests.integration.harness import TestNode, check_delivered, sent_all, wait_for
from tests.pgserver import PostgresServer

#: The default lease is 5 s: a killed active node's lock goes at once, the standby waits one
#: lease, then starts (docs/scale.md gives the measured figure).
TAKEOVER_BOUND = 15.0


@pytest.fixture
def pair(tmp_path: Path, postgres_server: PostgresServer
         ) -> Iterator[tuple[TestNode, PairMember, PairMember, TestNode]]:
    url = postgres_server.create_database()
    office, a, b, peer = make_pair_network(tmp_path, url)
    yield office, a, b, peer
    for process in (a, b, peer):
        process.kill()
    postgres_server.drop_database(url)


def test_the_standby_takes_over_after_kill_9(pair) -> None:  # type: ignore[no-untyped-def]
    office, a, b, peer = pair
    a.start()
    a.wait_active()
    b.start()
    b.wait_standing_by()
    # lienthong status shows the waiting member, for people and for machines.
    import json
    import subprocess
    import sys

    from tests.integration.harness import ROOT
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "LIENTHONG_LANG": "en"}
    shown = subprocess.run([sys.executable, "-m", "lienthong.node", "status", "--json",
                            str(office.home)], capture_output=True, text=True, timeout=60,
                           env=env, cwd=str(ROOT))
    (standby,) = json.loads(shown.stdout)["standby"]
    assert (standby["pid"], standby["state"]) == (b.process.pid, "waiting")
    shown = subprocess.run([sys.executable, "-m", "lienthong.node", "status", str(office.home)],
                           capture_output=True, text=True, timeout=60, env=env, cwd=str(ROOT))
    assert f"process {b.process.pid} on" in shown.stdout, shown.stdout
    assert "waiting to take over" in shown.stdout
    peer.start()
    to_peer = {f"di-{n:02d}.txt": f"Cong van di {n}\n".encode() * 40 for n in range(5)}
    to_office = {f"den-{n:02d}.txt": f"Cong van den {n}\n".encode() * 40 for n in range(5)}
    for name, data in to_peer.items():
        office.drop("hdnd", name, data)
    for name, data in to_office.items():
        peer.drop("ubnd", name, data)
    wait_for(lambda: sent_all(office, 5) and sent_all(peer, 5), timeout=60,
             what="the first documents both ways")
    killed = time.monotonic()
    a.kill()
    b.wait_active(timeout=TAKEOVER_BOUND + 30)
    took = time.monotonic() - killed
    print(f"the standby took over {took:.1f} s after kill -9")
    assert took < TAKEOVER_BOUND
    # Delivery carries on through the other address of the card, both ways.
    more_to_peer = {f"di-sau-{n:02d}.txt": f"Sau {n}\n".encode() * 40 for n in range(5)}
    more_to_office = {f"den-sau-{n:02d}.txt": f"Sau {n}\n".encode() * 40 for n in range(5)}
    for name, data in more_to_peer.items():
        office.drop("hdnd", name, data)
    for name, data in more_to_office.items():
        peer.drop("ubnd", name, data)
    wait_for(lambda: sent_all(office, 10) and sent_all(peer, 10), timeout=90,
             what="delivery after the takeover")
    check_delivered(office, [peer], {**to_peer, **more_to_peer})
    check_delivered(peer, [office], {**to_office, **more_to_office})
    assert b.stop() == 0
    assert peer.stop() == 0
    verified = audit_verify(office)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def snapshot(office: TestNode) -> dict[str, object]:
    """What a writer of the office leaves behind: audit chain, rows, and files."""
    store = office.store()
    try:
        entries = store.audit_entries()
        state = {
            "audit": [(entry.seq, entry.kind) for entry in entries],
            "dispatches": store.dispatches_by_state(),
            "received": store.received_count(),
        }
    finally:
        store.close()
    for folder in ("inbox", "spool", "sent", "failed", "tmp"):
        root = office.home / folder
        state[folder] = sorted(str(p.relative_to(root)) for p in root.rglob("*")) \
            if root.exists() else []
    return state


def test_a_frozen_active_node_writes_nothing_once_its_lease_is_gone(pair) -> None:  # type: ignore[no-untyped-def]
    """Split brain: the active node is frozen (SIGSTOP) past its lease with work in hand, the
    standby takes over; thawed, the old one must end itself without a row, an audit entry or
    a file."""
    import signal
    office, a, b, peer = pair
    a.start()
    a.wait_active()
    b.start()
    b.wait_standing_by()
    peer.start()
    to_peer = {f"di-{n:02d}.txt": f"Cong van di {n}\n".encode() * 400 for n in range(20)}
    to_office = {f"den-{n:02d}.txt": f"Cong van den {n}\n".encode() * 400 for n in range(20)}
    for name, data in to_peer.items():
        office.drop("hdnd", name, data)
    for name, data in to_office.items():
        peer.drop("ubnd", name, data)
    wait_for(lambda: office.query("received_count") >= 3, timeout=60,
             what="the first documents to arrive")
    assert a.process is not None
    a.process.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    b.wait_active(timeout=60)
    print(f"the standby took over {time.monotonic() - frozen:.1f} s after the active one froze")
    wait_for(lambda: sent_all(office, 20) and sent_all(peer, 20), timeout=120,
             what="the standby to deliver everything")
    # Freeze the new active node too, for a moment: whatever changes now is the old one's.
    assert b.process is not None
    b.process.send_signal(signal.SIGSTOP)
    try:
        late = {f"muon-{n}.txt": f"Muon {n}\n".encode() for n in range(3)}
        for name, data in late.items():
            office.drop("hdnd", name, data)  # work the thawed old node would take at once
        before = snapshot(office)
        a.process.send_signal(signal.SIGCONT)
        code = a.wait_exit(timeout=10)
        after = snapshot(office)
    finally:
        b.process.send_signal(signal.SIGCONT)
    assert code == 3, f"the old active node exited with {code}:\n{a.log_text()[-3000:]}"
    assert "stops at once" in a.log_text()
    assert after == before
    for name in late:
        assert (office.outbox / "hdnd" / name).exists(), f"{name} was taken by the old node"
    wait_for(lambda: sent_all(office, 23), timeout=90, what="the late documents")
    check_delivered(office, [peer], {**to_peer, **late})
    check_delivered(peer, [office], to_office)
    assert b.running()
    assert b.stop() == 0
    verified = audit_verify(office)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping it must not disturb the suite's shared one."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def test_a_standby_that_loses_the_database_keeps_waiting(tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         own_server: PostgresServer) -> None:
    """The database goes away: the active node cannot prove its lease and ends itself; the
    standby says it cannot reach the database and waits, and takes over only once the database
    is back and it holds the lease."""
    import json
    import socket
    office, a, b, peer = make_pair_network(tmp_path, own_server.create_database())
    try:
        a.start()
        a.wait_active()
        b.start()
        b.wait_standing_by()
        own_server.stop("immediate")
        assert a.wait_exit(timeout=30) == 3, a.log_text()[-3000:]
        wait_for(lambda: "cannot reach the database, still waiting" in b.log_text(),
                 timeout=30, what="the standby to say it cannot reach the database")
        status = json.loads((office.home / "state" /
                             f"standby-{socket.gethostname()}.json").read_text())
        assert status["state"] == "database-unreachable"
        time.sleep(3)
        assert b.running() and not b.listening(), "the standby took over without the lease"
        own_server.start()
        b.wait_active(timeout=TAKEOVER_BOUND + 30)
        assert not (office.home / "state" / f"standby-{socket.gethostname()}.json").exists()
        peer.start()
        documents = {f"sau-{n}.txt": f"Sau {n}\n".encode() * 50 for n in range(3)}
        for name, data in documents.items():
            office.drop("hdnd", name, data)
        wait_for(lambda: sent_all(office, 3), timeout=60, what="delivery after the outage")
        check_delivered(office, [peer], documents)
    finally:
        for process in (a, b, peer):
            process.kill()


def test_a_member_with_other_keys_is_refused_before_it_waits(tmp_path: Path, pair,  # type: ignore[no-untyped-def]
                                                             postgres_server: PostgresServer
                                                             ) -> None:
    """Two nodes configured with different keys on one store: the second is refused with a
    plain sentence and exit status 2, and writes nothing."""
    import subprocess
    import sys

    from lienthong.config.loader import load_config
    from lienthong.node.identity.provision import create_node_home
    from tests.integration.harness import NOW, ROOT
    office, a, b, peer = pair
    a.start()
    a.wait_active()
    url = load_config(office.home).store.url
    other = create_node_home(tmp_path / "other", name="ubnd", display_name="ubnd",
                             listen="127.0.0.1:1", advertise=["127.0.0.1:1"], passphrase=None,
                             now=NOW, kdf="minimal", store_url=url)
    before = len(office.query("audit_entries"))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "LIENTHONG_LANG": "en"}
    for args, said in ((["run", "--standby"], "belongs to another node"),
                       (["run"], "already running on the database")):
        done = subprocess.run([sys.executable, "-m", "lienthong.node", *args,
                               str(other.config.home)], capture_output=True, text=True,
                              timeout=60, env=env, cwd=str(ROOT))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert said in done.stderr, done.stderr
    # And a plain run of the pair's own home is refused while the pair runs.
    done = subprocess.run([sys.executable, "-m", "lienthong.node", "run", str(office.home)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=str(ROOT))
    assert done.returncode == 2 and "already running" in done.stderr, done.stderr
    assert len(office.query("audit_entries")) == before
    assert a.running()


def test_the_active_hosts_database_link_goes_dead_and_the_standby_takes_over(  # type: ignore[no-untyped-def]
        tmp_path: Path, postgres_server: PostgresServer, monkeypatch) -> None:
    """The active node's path to the database turns into a black hole (its host lost the
    network; the database and the standby are fine): the active node cannot renew and ends
    itself, the server ends its silent sessions, and the standby takes over.

    Each member reaches the database its own way, as two hosts do: the URL names no host or
    port, so libpq takes PGHOST/PGPORT from each process's environment; member a goes through
    a fault proxy."""
    from tests.faults.proxy import FaultProxy, Reset, Stall
    direct = postgres_server.create_database()
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(postgres_server.port))
    url = f"postgresql://lienthong@/{direct.rsplit('/', 1)[1]}"
    office, a, b, peer = make_pair_network(tmp_path, url)
    proxy = FaultProxy(("127.0.0.1", postgres_server.port), default=Stall(after=1 << 60))
    try:
        a.start({"PGPORT": str(proxy.port)})
        a.wait_active()
        b.start()
        b.wait_standing_by()
        peer.start()
        before = {f"truoc-{n}.txt": f"Truoc {n}\n".encode() * 60 for n in range(3)}
        for name, data in before.items():
            office.drop("hdnd", name, data)
        wait_for(lambda: sent_all(office, 3), timeout=60, what="delivery before the cut")
        assert proxy.connections, "member a does not go through the proxy"
        cut = time.monotonic()
        proxy.default = Reset(after=0)  # no new connection gets through either
        for connection in list(proxy.connections):
            connection.faulted.set()  # nothing more either way; the sockets stay open
        code = a.wait_exit(timeout=30)
        ended = time.monotonic() - cut
        assert code == 3, f"member a exited with {code}:\n{a.log_text()[-3000:]}"
        assert ended < 5.0, f"member a wrote on for {ended:.1f} s without a provable lease"
        b.wait_active(timeout=TAKEOVER_BOUND + 30)
        took = time.monotonic() - cut
        print(f"the active node ended itself {ended:.1f} s after its database link died; "
              f"the standby took over {took:.1f} s after it")
        assert took < TAKEOVER_BOUND
        after = {f"sau-{n}.txt": f"Sau {n}\n".encode() * 60 for n in range(3)}
        for name, data in after.items():
            office.drop("hdnd", name, data)
        wait_for(lambda: sent_all(office, 6), timeout=90, what="delivery after the takeover")
        check_delivered(office, [peer], {**before, **after})
        assert b.stop() == 0
        verified = audit_verify(office)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        proxy.stop()
        for process in (a, b, peer):
            process.kill()
        postgres_server.drop_database(direct)
