"""An office run by an active/standby pair (``lienthong run --standby``) for the fault tests: two
real node processes on one home (the same folders, one PostgreSQL database, the same keys),
each listening on an address of its own, both addresses in the office's card, and a peer."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lienthong.node.identity.provision import create_node_home
from tests.integration.harness import (
    FAST_SETTINGS,
    NOW,
    ROOT,
    TestNode,
    enrol_peer,
    free_port,
    wait_for,
)

#: Exit status of an active node that lost its lease (node/app/standby.py).
EXIT_LEASE_LOST = 3


@dataclass
class PairMember:
    """One process of the pair, on its own listening address."""

    label: str
    home: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / f"stderr-{self.label}.txt"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), **(extra_env or {}))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lienthong.node", "run", "--standby", "--listen",
             f"127.0.0.1:{self.port}", str(self.home)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def listening(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"member {self.label} exited with "
                                 f"{self.process.returncode if self.process else None}:\n"
                                 f"{self.log_text()[-4000:]}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def wait_active(self, timeout: float = 60) -> float:
        """Wait until this member listens (it holds the lease and has started); seconds."""
        started = time.monotonic()
        wait_for(self.listening, timeout=timeout, what=f"member {self.label} to take over",
                 interval=0.02)
        return time.monotonic() - started

    def wait_standing_by(self, timeout: float = 60) -> None:
        """Wait until this member says it waits for the lease."""
        wait_for(lambda: "standby: waiting to take over" in self.log_text(),
                 timeout=timeout, what=f"member {self.label} to stand by")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def wait_exit(self, timeout: float = 60) -> int:
        if self.process is None:
            raise AssertionError(f"member {self.label} is not running")
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"member {self.label} did not exit within {timeout} s:\n"
                                 f"{self.log_text()[-4000:]}") from None
        self.process = None
        return code

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def make_pair_network(base: Path, office_url: str, peer_name: str = "hdnd", *,
                      office_name: str = "ubnd", settings: dict[str, str] | None = None
                      ) -> tuple[TestNode, PairMember, PairMember, TestNode]:
    """The office (a home on PostgreSQL, its card carrying both members' addresses), its two
    members, and a peer on SQLite; the two enrolled with each other."""
    ports = (free_port(), free_port())
    addresses = [f"127.0.0.1:{port}" for port in ports]
    homes = {}
    for name, url, listen, advertise in ((office_name, office_url, addresses[0], addresses),
                                         (peer_name, "", None, None)):
        port = free_port() if listen is None else ports[0]
        listen = listen or f"127.0.0.1:{port}"
        new = create_node_home(base / name, name=name, display_name=name, listen=listen,
                               advertise=advertise or [listen], passphrase=None, now=NOW,
                               kdf="minimal", store_url=url)
        text = new.config.source.read_text()
        for old, replacement in {**FAST_SETTINGS, **(settings or {})}.items():
            text = text.replace(old, replacement)
        # English, as the integration harness's nodes (tests check the English wording).
        new.config.source.write_text(text.replace('language = "vi"', 'language = "en"'))
        homes[name] = TestNode(name, new.config.home, new.node_id, port, new.card_path)
    office, peer = homes[office_name], homes[peer_name]
    enrol_peer(office, peer)
    enrol_peer(peer, office)
    return (office, PairMember("a", office.home, ports[0]), PairMember("b", office.home, ports[1]),
            peer)


def audit_verify(node: TestNode) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lienthong.node", "audit", "verify",
                           str(node.home)], capture_output=True, text=True, cwd=str(ROOT),
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
