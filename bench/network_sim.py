"""A province on one machine: N real offices, enrolled from their cards, one day's traffic.

    python3 dev.py simulate --offices N [--json PATH|-] [--seed S] [--large-mib M] [--keep]
    python -m bench.network_sim --offices N ...        (the same, inside the venv)

What it does, each step shown as it goes (stderr), the figures at the end (stdout, or JSON):

1. creates N node homes on loopback ports below the ephemeral range (as the integration
   harness does: SQLite stores, fresh keystores with the fast test key derivation, the
   benchmark's shortened timings with a slower fallback scan, ``SIM_SETTINGS``);
   office 1 is ``tinhuy``, the coordinating office;
2. enrols them with each other the way a province would, through the real command line:
   the coordinator enrols every card in one ``lienthong peers add A.card B.card ... --yes`` and
   signs a directory file (``peers make-directory``); every other office enrols the
   coordinator's card, then the whole directory (``peers add --directory ... --coordinator
   tinhuy``): two commands an office instead of N-1;
3. starts the N node processes and drops a day's traffic into the outboxes at once: every
   office writes to a few others (some urgent, a few flash), once to its neighbours' group,
   and the coordinator (and one other office) publish a few large documents to everyone;
4. waits until every sender holds a verified receipt for every recipient, sampling each node's
   memory, CPU and open connections; then checks each delivered copy (byte-identical, its
   receipt verifying under the recipient's card) and stops the nodes.

Figures: documents and deliveries (each must be delivered with a verified receipt), the time
to drain, enrolment time, per-node peak RSS and the total (sum of PSS), open connections
(peak per node and in all), CPU per node and in all. ``--json`` gives them to machines.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing

from bench import procstats
from bench.nodes import BENCH_SETTINGS
from bench.report import machine
from lienthong.keys import jws
from lienthong.keys.card import read_card
from lienthong.node.identity.provision import create_node_home
from lienthong.protocol.receipt import RECEIPT_TYP, verify_receipt
from tests.integration.harness import NOW, ROOT, TestNode, sha256, wait_for

MIB = 1 << 20
COORDINATOR = "tinhuy"
NEIGHBOURS = "lan-can"   # each office's group of nearby offices
EVERYONE = "toan-tinh"   # the coordinator's group of every office
#: Urgency folders under outbox/<target>/ (docs/documents.md §2) and how often each is used.
#: The benchmark's shortened timings, but a slower fallback scan of the outbox: a hundred idle
#: nodes scanning every second load the machine's two cores (drops are seen by the watcher).
SIM_SETTINGS = {**BENCH_SETTINGS, "scan_interval = 30": "scan_interval = 10"}
URGENCIES = (("khan", 0.15), ("hoa-toc", 0.05))
SMALL_SIZES = (8 * 1024, 30 * 1024, 120 * 1024, 400 * 1024)


def say(text: str) -> None:
    print(f"[simulate] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Document:
    """One document a sender drops: to whom, under which folder, and its content's digest."""

    sender: str
    folder: str          # outbox/<folder>/ (a peer, or a group, with an urgency below it)
    name: str
    size: int
    recipients: tuple[str, ...]
    urgency: str = ""


@dataclass
class Plan:
    """The day's traffic, drawn from a seeded generator so a run can be repeated."""

    documents: list[Document] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return sum(len(doc.recipients) for doc in self.documents)

    @property
    def total_bytes(self) -> int:
        return sum(doc.size * len(doc.recipients) for doc in self.documents)


def office_names(count: int) -> list[str]:
    return [COORDINATOR] + [f"don-vi-{index:03d}" for index in range(1, count)]


def neighbours(names: Sequence[str], index: int, count: int = 4) -> list[str]:
    """The next ``count`` offices round the ring: a group every office has."""
    others = len(names) - 1
    return [names[(index + step) % len(names)] for step in range(1, min(count, others) + 1)]


def make_plan(names: Sequence[str], *, seed: int, peers_each: int, per_peer: int,
              publications: int, large_mib: int) -> Plan:
    rng = random.Random(seed)
    plan = Plan()
    groups = {name: neighbours(names, i) for i, name in enumerate(names)}
    for index, sender in enumerate(names):
        others = [name for name in names if name != sender]
        serial = 0
        for target in rng.sample(others, min(peers_each, len(others))):
            for _ in range(per_peer):
                serial += 1
                urgency = next((slug for slug, share in URGENCIES if rng.random() < share), "")
                plan.documents.append(Document(
                    sender, target, f"Công văn {serial:03d} gửi {target}.pdf",
                    rng.choice(SMALL_SIZES), (target,), urgency))
        plan.documents.append(Document(sender, NEIGHBOURS, f"Thông báo {index:03d}.pdf",
                                       60 * 1024, tuple(groups[sender])))
    everyone = tuple(names[1:])
    for number in range(1, publications + 1):
        plan.documents.append(Document(COORDINATOR, EVERYONE,
                                       f"Ấn phẩm {number:02d} toàn tỉnh.pdf",
                                       large_mib * MIB, everyone))
    if len(names) > 2:
        plan.documents.append(Document(names[1], NEIGHBOURS, "Niên giám thống kê.pdf",
                                       large_mib * MIB, tuple(groups[names[1]])))
    return plan


# -- the network -------------------------------------------------------------------------------

def listen_ports(count: int) -> list[int]:
    """``count`` free loopback ports below the kernel's ephemeral range.

    The nodes are created minutes before they start; a port taken from the ephemeral range
    (the harness's way) may by then be the local end of some outgoing connection, one of the
    nodes' own included, and a node that cannot listen stops (seen at 100 offices)."""
    low = _ephemeral_low()
    rng = random.Random()
    found: list[int] = []
    while len(found) < count:
        port = rng.randrange(10000, low)
        if port in found:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
    return found


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class Province:
    """N node homes, their enrolment through the command line, and their processes."""

    def __init__(self, base: Path, count: int) -> None:
        self.base = base
        self.names = office_names(count)
        self.nodes: dict[str, TestNode] = {}

    def create(self) -> None:
        ports = listen_ports(len(self.names))
        for index, name in enumerate(self.names):
            groups = {NEIGHBOURS: neighbours(self.names, index)}
            if name == COORDINATOR:
                groups[EVERYONE] = self.names[1:]
            new = create_node_home(self.base / "homes" / name, name=name, display_name=name,
                                   listen=f"127.0.0.1:{ports[index]}",
                                   advertise=[f"127.0.0.1:{ports[index]}"], passphrase=None,
                                   now=NOW, kdf="minimal", groups=groups)
            text = new.config.source.read_text()
            for old, replacement in SIM_SETTINGS.items():
                text = text.replace(old, replacement)
            new.config.source.write_text(text)
            self.nodes[name] = TestNode(name, new.config.home, new.node_id, ports[index],
                                        new.card_path)
            if (index + 1) % 10 == 0 or index + 1 == len(self.names):
                say(f"created {index + 1}/{len(self.names)} office homes")

    def _lienthong(self, home: Path, *args: str | Path) -> dict[str, Any] | None:
        """Run one ``lienthong`` command as an operator would; its JSON output, if any."""
        command = [sys.executable, "-m", "lienthong.node", *map(str, args), "--home", str(home)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return json.loads(done.stdout) if "--json" in args else None

    def enrol(self) -> dict[str, Any]:
        """The coordinator enrols everyone and signs the directory; every office enrols the
        coordinator, then the directory. Returns how long it took and how many commands."""
        started = time.monotonic()
        coordinator = self.nodes[COORDINATOR]
        cards = [node.card_path for name, node in self.nodes.items() if name != COORDINATOR]
        outcome = self._lienthong(coordinator.home, "peers", "add", *cards, "--yes", "--json")
        assert outcome is not None
        if outcome["refused"] or len(outcome["added"]) != len(cards):
            raise RuntimeError(f"the coordinator did not enrol every office: {outcome}")
        directory = self.base / "province.directory"
        self._lienthong(coordinator.home, "peers", "make-directory", directory)
        say(f"coordinator enrolled {len(cards)} offices and signed {directory.name} "
            f"({directory.stat().st_size // 1024} KiB) in {time.monotonic() - started:.1f} s")
        added = len(cards)
        counted = 0

        def enrol_office(node: TestNode) -> int:
            self._lienthong(node.home, "peers", "add", coordinator.card_path, "--yes")
            result = self._lienthong(node.home, "peers", "add", "--directory", directory,
                                     "--coordinator", COORDINATOR, "--yes", "--json")
            assert result is not None
            if result["refused"] or len(result["added"]) != len(self.names) - 2:
                raise RuntimeError(f"{node.name} did not enrol the directory: {result}")
            return 1 + len(result["added"])

        offices = [node for name, node in self.nodes.items() if name != COORDINATOR]
        with ThreadPoolExecutor(max_workers=2) as pool:  # the machine's two cores
            for enrolled in pool.map(enrol_office, offices):
                added += enrolled
                counted += 1
                if counted % 10 == 0 or counted == len(offices):
                    say(f"enrolled {counted}/{len(offices)} offices from the directory")
        seconds = time.monotonic() - started
        commands = 2 + 2 * len(offices)
        return {"seconds": seconds, "commands": commands, "peers_added": added,
                "full_mesh_single_card_commands": len(self.names) * (len(self.names) - 1)}

    def start(self, *, parallel: int = 2, timeout: float = 180) -> float:
        """Start every node, ``parallel`` at a time, each given ``timeout`` to listen (the
        harness's 20 s is too short for the hundredth node on a loaded machine)."""
        started = time.monotonic()
        counted = 0

        def launch(node: TestNode) -> None:
            node.log_file = node.home / "logs" / "stderr.txt"
            log = open(node.log_file, "ab")  # noqa: SIM115 - the child owns it
            node.process = subprocess.Popen(
                [sys.executable, "-m", "lienthong.node", "run", str(node.home)], stdout=log,
                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
            log.close()
            wait_for(node._listening, timeout=timeout, what=f"{node.name} to listen",
                     interval=0.2)

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            for _ in pool.map(launch, self.nodes.values()):
                counted += 1
                if counted % 10 == 0 or counted == len(self.nodes):
                    say(f"started {counted}/{len(self.nodes)} nodes")
        return time.monotonic() - started

    def pids(self) -> dict[str, int]:
        return {name: node.pid for name, node in self.nodes.items() if node.process is not None}

    def check_running(self) -> None:
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited:\n{node.log_text()[-3000:]}")

    def stop(self) -> list[str]:
        """Stop every node; the names of those that did not stop cleanly."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = dict(zip(self.nodes, pool.map(lambda node: node.stop(),
                                                  self.nodes.values()), strict=True))
        return [name for name, code in codes.items() if code != 0]

    def kill(self) -> None:
        for node in self.nodes.values():
            node.kill()


# -- traffic -----------------------------------------------------------------------------------

def write_documents(province: Province, plan: Plan, seed: int) -> dict[tuple[str, str], str]:
    """Write every document into a staging folder; (sender, name) -> SHA-256."""
    rng = random.Random(seed + 1)
    digests = {}
    for doc in plan.documents:
        staging = province.base / "staging" / doc.sender
        staging.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(doc.size)
        (staging / doc.name).write_bytes(data)
        digests[(doc.sender, doc.name)] = sha256(data)
    return digests


def drop_all(province: Province, plan: Plan) -> float:
    """Move every staged document into its outbox folder (a careful program's rename)."""
    for doc in plan.documents:
        folder = province.nodes[doc.sender].outbox / doc.folder
        if doc.urgency:
            folder = folder / doc.urgency
        folder.mkdir(parents=True, exist_ok=True)
        os.rename(province.base / "staging" / doc.sender / doc.name, folder / doc.name)
    return time.time()


class Receipts:
    """Verified receipts as each sender's store records them (read-only SQLite readers)."""

    def __init__(self, province: Province) -> None:
        self._dbs = {name: sqlite3.connect(f"file:{node.home / 'state' / 'lienthong.db'}?mode=ro",
                                           uri=True, timeout=30)
                     for name, node in province.nodes.items()}

    def count(self) -> int:
        return sum(db.execute("SELECT count(DISTINCT message_id || ' ' || peer) FROM audit "
                              "WHERE kind = 'receipt-verified'").fetchone()[0]
                   for db in self._dbs.values())

    def by_document(self, sender: str) -> dict[str, int]:
        """Document name -> how many recipients returned a verified receipt."""
        db = self._dbs[sender]
        names = {mid: json.loads(detail)["name"] for mid, detail in db.execute(
            "SELECT message_id, detail FROM audit WHERE kind = 'taken'")}
        counts: dict[str, int] = {}
        for mid, _peer in db.execute("SELECT DISTINCT message_id, peer FROM audit "
                                     "WHERE kind = 'receipt-verified'").fetchall():
            if mid in names:
                counts[names[mid]] = counts.get(names[mid], 0) + 1
        return counts

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


class Sampler:
    """Per-node memory and connections, sampled while the traffic drains."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak_connections = dict.fromkeys(pids, 0)
        self.peak_total_connections = 0
        self.peak_pss_total = 0

    def sample(self) -> int:
        """Sample now; the ESTABLISHED sockets the nodes hold in all."""
        counts = procstats.connections(self.pids.values())
        total = 0
        for name, pid in self.pids.items():
            self.peak_connections[name] = max(self.peak_connections[name], counts.get(pid, 0))
            total += counts.get(pid, 0)
        self.peak_total_connections = max(self.peak_total_connections, total)
        self.peak_pss_total = max(self.peak_pss_total,
                                  sum(procstats.pss_bytes(pid) for pid in self.pids.values()))
        return total


def drain(province: Province, plan: Plan, *, dropped: float, timeout: float,
          interval: float = 0.25, sample_every: float = 2.0) -> tuple[float, Sampler]:
    """Wait until every delivery has a verified receipt at its sender; seconds from the drop.

    Receipts are counted every ``interval``; memory and connections are sampled (and progress
    shown) every ``sample_every`` seconds, which costs more with many nodes."""
    receipts = Receipts(province)
    sampler = Sampler(province.pids())
    expected = plan.deliveries
    last_count, last_change, next_sample = -1, time.monotonic(), 0.0
    try:
        while True:
            count = receipts.count()
            if count >= expected or time.monotonic() >= next_sample:
                sockets = sampler.sample()
                next_sample = time.monotonic() + sample_every
                say(f"drained {count}/{expected} deliveries, {sockets // 2} connections open, "
                    f"{time.time() - dropped:.0f} s")
            if count >= expected:
                return time.time() - dropped, sampler
            province.check_running()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if time.monotonic() - last_change > timeout:
                raise TimeoutError(f"no receipt for {timeout:.0f} s with {count} of {expected} "
                                   "deliveries receipted")
            time.sleep(interval)
    finally:
        receipts.close()


def check_delivered(province: Province, plan: Plan,
                    digests: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Every delivered copy: byte-identical, with a receipt that verifies under the
    recipient's card; and a verified receipt at the sender for each recipient."""
    keys = {name: read_card(node.card_path.read_text()) for name, node in province.nodes.items()}
    receipts = Receipts(province)
    try:
        at_sender = {name: receipts.by_document(name) for name in province.nodes}
    finally:
        receipts.close()
    problems: list[str] = []
    verified = 0
    inbox_digests: dict[tuple[str, str], dict[str, Path]] = {}
    for doc in plan.documents:
        if at_sender[doc.sender].get(doc.name, 0) != len(doc.recipients):
            problems.append(f"{doc.sender}: {doc.name} has "
                            f"{at_sender[doc.sender].get(doc.name, 0)} of "
                            f"{len(doc.recipients)} verified receipts")
        for recipient in doc.recipients:
            folder = province.nodes[recipient].inbox / doc.sender
            if (recipient, doc.sender) not in inbox_digests:
                inbox_digests[(recipient, doc.sender)] = {
                    sha256(path): path for path in (folder.iterdir() if folder.exists() else ())
                    if not path.name.endswith((".meta.json", ".receipt.jws"))
                    and not path.name.startswith(".lienthong-")}  # a sidecar being written
            copy = inbox_digests[(recipient, doc.sender)].get(digests[(doc.sender, doc.name)])
            if copy is None:
                problems.append(f"{recipient} has no intact copy of {doc.sender}'s {doc.name}")
                continue
            receipt = copy.with_name(copy.name + ".receipt.jws")
            # The sidecars follow the receipt by up to a second (node/inbox/publication.py).
            waited_until = time.monotonic() + 30
            while not receipt.exists() and time.monotonic() < waited_until:
                time.sleep(0.1)
            if not receipt.exists():
                problems.append(f"{recipient} has no receipt beside {doc.sender}'s {doc.name}")
                continue
            token = receipt.read_text().strip()
            card = keys[recipient]
            if jws.decode(token, RECEIPT_TYP).kid != card.node_id:
                problems.append(f"{recipient}'s receipt for {doc.name} names another signer")
                continue
            info = verify_receipt(token, nacl.signing.VerifyKey(card.identity_public),
                                  recipient=card.node_id)
            if info.sha256 != digests[(doc.sender, doc.name)]:
                problems.append(f"{recipient}'s receipt for {doc.name} is for other content")
                continue
            verified += 1
    return {"deliveries_verified": verified, "problems": problems[:50],
            "problem_count": len(problems)}


# -- the run -----------------------------------------------------------------------------------

def simulate(base: Path, *, offices: int, seed: int = 19, peers_each: int = 3, per_peer: int = 2,
             publications: int = 2, large_mib: int = 4, timeout: float = 300) -> dict[str, Any]:
    """Run the whole simulation in ``base``; every figure, as one dict."""
    if offices < 3:
        raise ValueError("a province needs at least 3 offices (a coordinator and two more)")
    results: dict[str, Any] = {"offices": offices, "seed": seed, "machine": machine(),
                               "settings": ", ".join(SIM_SETTINGS.values())}
    province = Province(base, offices)
    try:
        started = time.monotonic()
        province.create()
        results["create_seconds"] = time.monotonic() - started
        results["enrolment"] = province.enrol()
        plan = make_plan(province.names, seed=seed, peers_each=peers_each, per_peer=per_peer,
                         publications=publications, large_mib=large_mib)
        say(f"writing {len(plan.documents)} documents "
            f"({plan.total_bytes / MIB:.0f} MiB to deliver)")
        digests = write_documents(province, plan, seed)
        results["start_seconds"] = province.start()
        time.sleep(1.0)  # the first outbox scan: nodes are up and idle
        province.check_running()  # a node that found its port taken has stopped by now
        pids = province.pids()
        cpu_before = {name: procstats.cpu_seconds(pid) for name, pid in pids.items()}
        results["traffic"] = {
            "documents": len(plan.documents), "deliveries": plan.deliveries,
            "mib_delivered": plan.total_bytes / MIB,
            "urgent": sum(doc.urgency == "khan" for doc in plan.documents),
            "flash": sum(doc.urgency == "hoa-toc" for doc in plan.documents),
            "group_documents": sum(len(doc.recipients) > 1 for doc in plan.documents),
            "large_documents": sum(doc.size >= large_mib * MIB for doc in plan.documents),
            "large_mib": large_mib}
        say(f"dropping {len(plan.documents)} documents for {plan.deliveries} deliveries")
        dropped = drop_all(province, plan)
        # Counting receipts reads every sender's store: less often when there are many.
        results["drain_seconds"], sampler = drain(province, plan, dropped=dropped,
                                                   timeout=timeout,
                                                   interval=max(0.25, offices / 100))
        cpu = {name: procstats.cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        rss = {name: procstats.peak_rss_bytes(pid) / MIB for name, pid in pids.items()}
        results["memory"] = _spread(rss, "peak_rss_mib") | {
            "peak_rss_sum_mib": sum(rss.values()),
            "pss_total_peak_mib": sampler.peak_pss_total / MIB}
        # Both ends of a connection are node sockets: connections in all = sockets / 2.
        results["connections"] = _spread(sampler.peak_connections, "peak") | {
            "peak_total": sampler.peak_total_connections // 2}
        results["cpu"] = _spread(cpu, "traffic_seconds") | {
            "traffic_seconds_total": sum(cpu.values()),
            "total_seconds_all_nodes": sum(procstats.cpu_seconds(pid) for pid in pids.values())}
        say("checking every delivered copy and its receipt")
        results["delivered"] = check_delivered(province, plan, digests)
        results["load_average_at_end"] = os.getloadavg()
        unclean = province.stop()
        results["unclean_stops"] = unclean
        results["ok"] = (results["delivered"]["problem_count"] == 0 and not unclean
                         and results["delivered"]["deliveries_verified"] == plan.deliveries)
        return results
    finally:
        province.kill()


def _spread(values: dict[str, float], what: str) -> dict[str, Any]:
    """Max (and whose), median and the coordinator's value of a per-node figure."""
    busiest = max(values, key=lambda name: values[name])
    return {f"{what}_max": values[busiest], f"{what}_max_node": busiest,
            f"{what}_median": statistics.median(values.values()),
            f"{what}_coordinator": values[COORDINATOR]}


def render(results: dict[str, Any]) -> str:
    enrolment, traffic = results["enrolment"], results["traffic"]
    memory, connections, cpu = results["memory"], results["connections"], results["cpu"]
    delivered = results["delivered"]
    lines = [
        f"A province of {results['offices']} offices on one machine "
        f"({results['machine']['cores']} cores, load at start "
        f"{results['machine']['load_average_at_start'][0]:.1f}, at end "
        f"{results['load_average_at_end'][0]:.1f})",
        f"  enrolment        {enrolment['seconds']:.1f} s, {enrolment['commands']} commands "
        f"({enrolment['peers_added']} peers; one card a command would take "
        f"{enrolment['full_mesh_single_card_commands']})",
        f"  traffic          {traffic['documents']} documents, {traffic['deliveries']} "
        f"deliveries, {traffic['mib_delivered']:.0f} MiB ({traffic['urgent']} urgent, "
        f"{traffic['flash']} flash, {traffic['group_documents']} to groups, "
        f"{traffic['large_documents']} of {traffic['large_mib']} MiB)",
        f"  delivered        {delivered['deliveries_verified']}/{traffic['deliveries']} with a "
        f"verified receipt" + (f"; {delivered['problem_count']} PROBLEMS" if
                               delivered["problem_count"] else ""),
        f"  time to drain    {results['drain_seconds']:.1f} s (nodes started in "
        f"{results['start_seconds']:.1f} s)",
        f"  peak RSS         max {memory['peak_rss_mib_max']:.0f} MiB "
        f"({memory['peak_rss_mib_max_node']}), median {memory['peak_rss_mib_median']:.0f} MiB; "
        f"sum {memory['peak_rss_sum_mib']:.0f} MiB, total PSS {memory['pss_total_peak_mib']:.0f}"
        " MiB",
        f"  connections      peak {connections['peak_total']} in all; sockets per node max "
        f"{connections['peak_max']} ({connections['peak_max_node']}), median "
        f"{connections['peak_median']:.0f}",
        f"  CPU (traffic)    {cpu['traffic_seconds_total']:.1f} s in all; max "
        f"{cpu['traffic_seconds_max']:.1f} s ({cpu['traffic_seconds_max_node']}), median "
        f"{cpu['traffic_seconds_median']:.2f} s",
        "  result           " + ("every document delivered with a verified receipt"
                                 if results["ok"] else "NOT ALL DELIVERED (see problems)"),
    ]
    lines += [f"    {problem}" for problem in delivered["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offices", type=int, default=10, help="how many offices (default 10)")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON ('-': stdout)")
    parser.add_argument("--seed", type=int, default=19, help="the traffic's random seed")
    parser.add_argument("--large-mib", type=int, default=4, help="size of each publication")
    parser.add_argument("--publications", type=int, default=2,
                        help="large documents the coordinator sends to every office")
    parser.add_argument("--timeout", type=float, default=300,
                        help="give up after this many seconds without a new receipt")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the homes for inspection")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="lienthong-sim-", dir=args.dir))
    say(f"{args.offices} offices in {base}")
    try:
        results = simulate(base, offices=args.offices, seed=args.seed,
                           large_mib=args.large_mib, publications=args.publications,
                           timeout=args.timeout)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if args.json == "-":
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
        print(render(results))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
