"""Real nodes for the delivery benchmark: separate processes, SQLite, TLS on loopback, folders.

The nodes are built with the integration harness (``tests/integration/harness.py``), so they are
exactly what the integration tests run: ``python -m lienthong.node run <home>``, a fresh
keystore, every peer enrolled from its card. Only timings in each ``lienthong.toml`` are shortened
(``BENCH_SETTINGS``); they are printed with the results because ``stable_seconds`` adds directly
to every drop-to-receipt latency.

What is measured comes from the nodes themselves, not from guesses at the outside:

* the moment a document *lands* in the outbox is the benchmark's own ``rename`` into
  ``outbox/<peer>/`` (a careful program's drop: written elsewhere, then moved in);
* the moment its *verified receipt* is at the sender is the time of the sender's
  ``receipt-verified`` audit entry (millisecond precision, written after the receipt's
  signature and digest were checked and the receipt was committed); the sender's ``taken``
  entry maps the file name to its message ID;
* peak memory is the kernel's high-water mark of each node process (``VmHWM``).
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.runtime.peer_protocols import save_peer_protocols
from tests.integration.harness import TestNode, make_network

#: Replacements in each node's configuration (the harness's FAST_SETTINGS style).
BENCH_SETTINGS = {
    "scan_interval = 30": "scan_interval = 1",
    "stable_seconds = 1.0": "stable_seconds = 0.01",
    "retry_initial = 1.0": "retry_initial = 0.2",
    "retry_max = 300.0": "retry_max = 2.0",
    "connect_timeout = 20": "connect_timeout = 10",
    "idle_timeout = 300": "idle_timeout = 60",
}


def settings_text() -> str:
    """The shortened settings, as one line for the report."""
    return ", ".join(new for new in BENCH_SETTINGS.values())


def peak_rss(node: TestNode) -> int:
    """The node process's peak resident set so far, in bytes (VmHWM)."""
    if node.process is None:
        return 0
    with open(f"/proc/{node.process.pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(node: TestNode) -> float:
    """User + system CPU the node process has used so far (all its threads)."""
    if node.process is None:
        return 0.0
    with open(f"/proc/{node.process.pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Network:
    """One sender and ``peers`` recipients, started as real node processes."""

    def __init__(self, base: Path, peers: int) -> None:
        names = ["sender"] + [f"peer{i}" for i in range(1, peers + 1)]
        nodes = make_network(base, names, settings=BENCH_SETTINGS)
        self.sender = nodes["sender"]
        self.peers = [nodes[name] for name in names[1:]]
        # Offices that have exchanged before know each other's protocol, so the first
        # document measured is sealed as such a pair seals it (envelope v3, protocol 2), not
        # as at first contact (v2, until a HELLO has said more).
        save_peer_protocols(self.sender.home / "state", {p.node_id: 2 for p in self.peers})
        for peer in self.peers:
            save_peer_protocols(peer.home / "state", {self.sender.node_id: 2})
        self.base = base
        self._db: sqlite3.Connection | None = None

    @property
    def nodes(self) -> list[TestNode]:
        return [self.sender, *self.peers]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        for node in self.nodes:
            if node.process is not None and node.stop() != 0:
                raise RuntimeError(f"{node.name} did not stop cleanly:\n{node.log_text()[-3000:]}")

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def peak_rss(self) -> dict[str, int]:
        return {node.name: peak_rss(node) for node in self.nodes}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by each node: unlike wall time, barely moved by other load."""
        return {node.name: cpu_seconds(node) for node in self.nodes}

    # -- dropping ------------------------------------------------------------------------

    def staging(self, name: str) -> Path:
        """A folder on the same file system as the outbox, for files about to be dropped."""
        folder = self.base / "staging" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def drop(self, target: str, files: Iterable[Path]) -> dict[str, float]:
        """Move already-written files into ``outbox/<target>/``; the wall time of each move."""
        folder = self.sender.outbox / target
        folder.mkdir(parents=True, exist_ok=True)
        dropped: dict[str, float] = {}
        for path in files:
            os.rename(path, folder / path.name)
            dropped[path.name] = time.time()
        return dropped

    # -- what the sender's store says ----------------------------------------------------

    def sender_db(self) -> sqlite3.Connection:
        if self._db is None:
            path = self.sender.home / "state" / "lienthong.db"
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        return self._db

    def receipts_count(self) -> int:
        row = self.sender_db().execute(
            "SELECT count(*) FROM audit WHERE kind = 'receipt-verified'").fetchone()
        return int(row[0])

    def wait_receipts(self, count: int, *, timeout: float, interval: float = 0.02) -> float:
        """Wait until the sender holds ``count`` verified receipts in all; return the time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.receipts_count() >= count:
                return time.time()
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"{node.name} exited:\n{node.log_text()[-3000:]}")
            time.sleep(interval)
        raise TimeoutError(f"only {self.receipts_count()} of {count} receipts after {timeout} s;"
                           f" sender log:\n{self.sender.log_text()[-3000:]}")

    def receipt_times(self) -> dict[str, list[float]]:
        """File name -> the times of its verified receipts (one per recipient)."""
        db = self.sender_db()
        names = {mid: json.loads(detail)["name"] for mid, detail in db.execute(
            "SELECT message_id, detail FROM audit WHERE kind = 'taken'")}
        times: dict[str, list[float]] = {}
        for mid, when in db.execute(
                "SELECT message_id, time FROM audit WHERE kind = 'receipt-verified'"):
            times.setdefault(names[mid], []).append(parse_rfc3339(when))
        return times

    def taken_after(self, dropped: dict[str, float]) -> list[float]:
        """Drop-to-taken seconds for each dropped file: the watcher's share of the latency."""
        taken = {json.loads(detail)["name"]: parse_rfc3339(when) for detail, when in
                 self.sender_db().execute(
                     "SELECT detail, time FROM audit WHERE kind = 'taken'")}
        return [taken[name] - at for name, at in dropped.items()]

    def steps(self, dropped: dict[str, float]) -> list[tuple[str, float]]:
        """Median milliseconds between one document's milestones in both nodes' audit logs
        (one clock: both nodes run on this machine), drop to verified receipt.

        Each audit entry's time is taken when its unit of work is submitted, before its
        commit: ``taken`` once the take-and-seal hop is back (take, seal, their fsyncs);
        ``offered`` once the ACCEPT came and the envelope is open (so it includes the
        dispatch commit, the OFFER and the receiver's checks); ``sent`` after END;
        ``received`` when the receiver's ``stored`` unit is submitted (after the staging
        fsync, the ``publishing`` commit and the inbox link and folder fsyncs; the sidecars
        follow the RECEIPT);
        ``receipt-verified`` after the ``stored`` commit, the RECEIPT and its check."""
        from statistics import median
        kinds = ("taken", "offered", "sent", "received", "receipt-verified")
        sender = self.sender_db()
        names = {mid: json.loads(detail)["name"] for mid, detail in sender.execute(
            "SELECT message_id, detail FROM audit WHERE kind = 'taken'")}
        seen: dict[str, dict[str, float]] = {}
        peer_path = self.peers[0].home / "state" / "lienthong.db"
        with sqlite3.connect(f"file:{peer_path}?mode=ro", uri=True, timeout=30) as peer:
            for db in (sender, peer):
                for mid, kind, when in db.execute(
                        "SELECT message_id, kind, time FROM audit WHERE kind IN "
                        "(?, ?, ?, ?, ?) ORDER BY seq", kinds):
                    seen.setdefault(mid, {}).setdefault(kind, parse_rfc3339(when))
        gaps: dict[str, list[float]] = {}
        for mid, name in names.items():
            times = seen.get(mid, {})
            if name not in dropped or any(kind not in times for kind in kinds):
                continue
            previous, before = "drop", dropped[name]
            for kind in kinds:
                gaps.setdefault(f"{previous} -> {kind}", []).append(times[kind] - before)
                previous, before = kind, times[kind]
        return [(step, median(values) * 1000) for step, values in gaps.items()]

    def latencies(self, dropped: dict[str, float], recipients: int = 1) -> list[float]:
        """Drop-to-last-receipt seconds for each dropped file (all recipients receipted)."""
        times = self.receipt_times()
        out = []
        for name, at in dropped.items():
            got = times.get(name, [])
            if len(got) < recipients:
                raise RuntimeError(f"{name} has {len(got)} of {recipients} receipts")
            out.append(max(got) - at)
        return out


@dataclass(frozen=True, slots=True)
class Files:
    """Files written into a staging folder, ready to drop."""

    paths: list[Path]
    size: int


def write_small_files(folder: Path, count: int, size: int, prefix: str = "doc") -> Files:
    """``count`` distinct files of ``size`` random bytes (distinct content, distinct digests)."""
    paths = []
    for index in range(count):
        path = folder / f"{prefix}-{index:05d}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return Files(paths, size)


def write_large_file(path: Path, size: int, block: int = 8 << 20) -> Path:
    """A ``size``-byte file of random data (incompressible, like a scanned PDF)."""
    seed = os.urandom(block)
    with open(path, "wb") as sink:
        written = 0
        while written < size:
            # Vary each block cheaply so no two blocks are equal.
            piece = written.to_bytes(8, "big") + seed[8:min(block, size - written)]
            sink.write(piece[:size - written])
            written += len(piece[:size - written])
    return path
