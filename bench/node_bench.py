"""Speed and memory of a real delivery, beside scp, rsync and the raw limits (issue 6).

    python -m bench.node_bench [--quick] [--json PATH]
        [--only large,small,single,scaling,fanout,baselines]
    make bench        (the same, through dev.py)

Each scenario starts fresh node processes on loopback (``bench.nodes``: SQLite, mutual TLS,
real folders, the harness's keystores) so one scenario's database or memory never flatters or
burdens the next, then drops real files into the sender's outbox and waits for the verified
receipts at the sender:

* large    one document (1 GiB; 64 MiB with --quick): MB/s from drop to receipt, the time in
           each phase (taken, sealed, receipted), and each node's peak RSS;
* small    2,000 documents of 10 KiB dropped at once: documents/s to the last receipt and the
           p50/p99 of drop-to-receipt latency;
* single   one 10 KiB document at a time into an idle pair, 50 times: p50/p99;
* scaling  the small run at 500, 2,000 and 8,000 documents (time per document should stay
           flat; the 2,000 run is also the small result), and fan-out of one document to 1, 3
           and 10 peers (a ``peer1+peer2+...`` outbox folder);
* baselines scp of the same large file and ``rsync -a --fsync -e ssh`` of the same small files
           to a throwaway sshd on a loopback port, libsodium secretstream, SHA-256 and a plain
           loopback TCP stream (``bench.baselines``).

The table is printed at the end (``bench.report``) with every result as a ratio to the
baselines and a pass/short verdict for each target of the issue; ``--json`` writes it all.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import baselines, report
from bench.nodes import (
    BENCH_SETTINGS,
    Files,
    Network,
    settings_text,
    write_large_file,
    write_small_files,
)

MIB = 1 << 20
SCENARIOS = ("baselines", "large", "small", "single", "scaling", "fanout")
DEFAULT_JSON = Path(tempfile.gettempdir()) / "lienthong-node-bench.json"


class Plan:
    """Sizes of every scenario, full or --quick."""

    def __init__(self, quick: bool, large_mib: int | None = None) -> None:
        self.large = large_mib * MIB if large_mib else 64 * MIB if quick else 1024 * MIB
        self.small = 200 if quick else 2000
        self.small_size = 10 * 1024
        self.single_runs = 10 if quick else 50
        self.scaling = (100, 200, 400) if quick else (500, 2000, 8000)
        self.fanout = (1, 3) if quick else (1, 3, 10)
        self.fanout_runs = 3 if quick else 5


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _with_network(base: Path, name: str, peers: int, body: Callable[[Network], Any]) -> Any:
    folder = base / name
    network = Network(folder, peers)
    try:
        network.start()
        result = body(network)
        network.stop()
        return result
    finally:
        network.kill()
        shutil.rmtree(folder, ignore_errors=True)


# -- scenarios ---------------------------------------------------------------------------------

def run_large(base: Path, plan: Plan, results: dict[str, Any], sshd: Any) -> None:
    staging = base / "large-staging"
    staging.mkdir(parents=True, exist_ok=True)
    source = write_large_file(staging / "ban-do-quy-hoach.bin", plan.large)
    if sshd is not None:
        _say(f"baseline: scp {plan.large // MIB} MiB")
        seconds = baselines.scp_seconds(sshd, source, base / "scp-copy.bin")
        (base / "scp-copy.bin").unlink(missing_ok=True)
        results["baselines"]["scp"] = {"mbps": plan.large / seconds / 1e6, "seconds": seconds}

    def body(net: Network) -> dict[str, Any]:
        target = net.peers[0].name
        moved = net.staging("large") / source.name
        source.rename(moved)
        _say(f"large: {plan.large // MIB} MiB to {target}")
        cpu_before = net.cpu_seconds()
        dropped = net.drop(target, [moved])
        net.wait_receipts(1, timeout=600, interval=0.05)
        cpu = {name: value - cpu_before[name] for name, value in net.cpu_seconds().items()}
        seconds = net.latencies(dropped)[0]
        rss = {name: value / MIB for name, value in net.peak_rss().items()}
        phases = _phases(net, dropped[moved.name])
        envelope = net.sender_db().execute(
            "SELECT detail FROM audit WHERE kind = 'sealed'").fetchone()
        return {"size": plan.large, "seconds": seconds, "mbps": plan.large / seconds / 1e6,
                "peak_rss_mib": rss, "phases": phases, "cpu_seconds": cpu,
                "envelope": json.loads(envelope[0]).get("envelope") if envelope else None}

    results["large"] = _with_network(base, "large", 1, body)
    shutil.rmtree(staging, ignore_errors=True)


def _phases(net: Network, dropped: float) -> dict[str, float]:
    """Seconds from the drop to each audit milestone at the sender."""
    from lienthong.node.core.clock import parse_rfc3339
    db = net.sender_db()
    out = {}
    for kind in ("taken", "sealed", "trailer-signed", "receipt-verified"):
        row = db.execute("SELECT min(time) FROM audit WHERE kind = ?", (kind,)).fetchone()
        if row[0]:
            out[kind] = parse_rfc3339(row[0]) - dropped
    return out


def _many(base: Path, plan: Plan, count: int, name: str,
          source: Path | None = None) -> dict[str, Any]:
    """Drop ``count`` small files at once (those in ``source`` when given: the very files the
    rsync baseline copied) and wait for every receipt."""
    def body(net: Network) -> dict[str, Any]:
        if source is not None:
            paths = sorted(source.iterdir())
            for path in paths:
                path.rename(net.staging(name) / path.name)
            files = Files([net.staging(name) / path.name for path in paths], plan.small_size)
        else:
            files = write_small_files(net.staging(name), count, plan.small_size)
        time.sleep(0.5)  # let the pair settle (connections, first scan) before the drop
        _say(f"{name}: {count} x {plan.small_size // 1024} KiB")
        cpu_before = net.cpu_seconds()
        dropped = net.drop(net.peers[0].name, files.paths)
        net.wait_receipts(count, timeout=60 + count * 0.5, interval=0.05)
        cpu = {name: (value - cpu_before[name]) / count * 1000
               for name, value in net.cpu_seconds().items()}
        latencies = net.latencies(dropped)
        first = min(dropped.values())
        last = max(at + lat for at, lat in zip(dropped.values(), latencies, strict=True))
        seconds = last - first
        return {"count": count, "size": plan.small_size, "seconds": seconds,
                "docs_per_s": count / seconds, "ms_per_doc": seconds / count * 1000,
                "cpu_ms_per_doc": cpu, **report.latency_summary(latencies)}
    return _with_network(base, name, 1, body)


def run_small(base: Path, plan: Plan, results: dict[str, Any], sshd: Any) -> None:
    folder = base / "small-files"
    folder.mkdir(parents=True, exist_ok=True)
    write_small_files(folder, plan.small, plan.small_size)
    if sshd is not None:
        _say(f"baseline: rsync -a --fsync -e ssh {plan.small} files")
        seconds = baselines.rsync_seconds(sshd, folder, base / "rsync-copy")
        results["baselines"]["rsync"] = {"files_per_s": plan.small / seconds,
                                         "seconds": seconds, "files": plan.small}
        shutil.rmtree(base / "rsync-copy", ignore_errors=True)
    results["small"] = _many(base, plan, plan.small, "small", source=folder)


def run_single(base: Path, plan: Plan, results: dict[str, Any]) -> None:
    def body(net: Network) -> dict[str, Any]:
        files = write_small_files(net.staging("single"), plan.single_runs, plan.small_size,
                                  prefix="cong-van")
        target = net.peers[0].name
        dropped: dict[str, float] = {}
        _say(f"single: {plan.single_runs} runs")
        for index, path in enumerate(files.paths, start=1):
            time.sleep(0.2)  # idle between runs
            dropped.update(net.drop(target, [path]))
            net.wait_receipts(index, timeout=30, interval=0.002)
        taken = net.taken_after(dropped)
        return {"runs": plan.single_runs, "size": plan.small_size,
                "drop_to_taken_p50_ms": report.percentile(taken, 0.5) * 1000,
                "steps_p50_ms": net.steps(dropped),
                **report.latency_summary(net.latencies(dropped))}
    results["single"] = _with_network(base, "single", 1, body)


def run_scaling(base: Path, plan: Plan, results: dict[str, Any]) -> None:
    runs = []
    for count in plan.scaling:
        if count == plan.small and "small" in results:
            runs.append(results["small"])
            continue
        runs.append(_many(base, plan, count, f"scaling-{count}"))
    per_doc = [run["ms_per_doc"] for run in runs]
    results["scaling"] = {"runs": runs, "spread": max(per_doc) / min(per_doc)}


def run_fanout(base: Path, plan: Plan, results: dict[str, Any]) -> None:
    def body(net: Network) -> dict[str, Any]:
        out = []
        received = 0
        files = write_small_files(net.staging("fanout"), len(plan.fanout) * plan.fanout_runs,
                                  plan.small_size, prefix="thong-bao")
        pending = list(files.paths)
        time.sleep(0.5)
        for peers in plan.fanout:
            target = "+".join(peer.name for peer in net.peers[:peers])
            _say(f"fan-out: {peers} peer(s)")
            dropped: dict[str, float] = {}
            for _ in range(plan.fanout_runs):
                time.sleep(0.2)
                dropped.update(net.drop(target, [pending.pop()]))
                received += peers
                net.wait_receipts(received, timeout=60, interval=0.005)
            seconds = net.latencies(dropped, recipients=peers)
            out.append({"peers": peers, "runs": plan.fanout_runs,
                        "p50_ms": statistics.median(seconds) * 1000,
                        "max_ms": max(seconds) * 1000})
        return {"size": plan.small_size, "runs": out}
    results["fanout"] = _with_network(base, "fanout", max(plan.fanout), body)


def run_raw_limits(results: dict[str, Any]) -> None:
    _say("baseline: secretstream, SHA-256, loopback TCP")
    base = results["baselines"]
    base["secretstream"] = {"mbps": baselines.secretstream_mbps()}
    base["sha256"] = {"mbps": baselines.sha256_mbps()}
    base["tcp"] = {"mbps": baselines.tcp_mbps()}


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.node_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"write every figure to this JSON file (default {DEFAULT_JSON})")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary folder)")
    parser.add_argument("--large-mib", type=int, metavar="N",
                        help="size of the large document (and of its scp) in MiB, for quicker "
                             "before/after comparisons (default 1024; 64 with --quick)")
    parser.add_argument("--streamed-seal-above-mib", type=int, metavar="N",
                        help="set delivery.streamed_seal_above_mib = N in every node (offer v3 "
                             "documents over N MiB before reading them; default: off)")
    args = parser.parse_args(argv)
    if args.streamed_seal_above_mib:
        BENCH_SETTINGS["# streamed_seal_above_mib = 0"] = (
            f"streamed_seal_above_mib = {args.streamed_seal_above_mib}")
    chosen = SCENARIOS if not args.only else tuple(args.only.split(","))
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    plan = Plan(args.quick, args.large_mib)
    base = Path(tempfile.mkdtemp(prefix="lienthong-bench-", dir=args.dir))
    results: dict[str, Any] = {"machine": report.machine(), "settings": settings_text(),
                               "command": " ".join(["python -m bench.node_bench",
                                                    *(argv if argv is not None else sys.argv[1:])]),
                               "quick": args.quick, "baselines": {},
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    sshd = None
    try:
        if "baselines" in chosen:
            run_raw_limits(results)
            try:
                sshd = baselines.Sshd().__enter__()
            except baselines.Skipped as exc:
                _say(f"baselines scp/rsync skipped: {exc}")
                results["baselines"]["scp"] = results["baselines"]["rsync"] = {
                    "skipped": str(exc)}
        if "large" in chosen:
            run_large(base, plan, results, sshd)
        if "small" in chosen or "scaling" in chosen:
            run_small(base, plan, results, sshd)
        if sshd is not None:
            sshd.__exit__(None, None, None)
            sshd = None
        if "single" in chosen:
            run_single(base, plan, results)
        if "scaling" in chosen:
            run_scaling(base, plan, results)
        if "fanout" in chosen:
            run_fanout(base, plan, results)
    finally:
        if sshd is not None:
            sshd.__exit__(None, None, None)
        shutil.rmtree(base, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print(report.render(results))
    report.write_json(results, args.json)
    print(f"all figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
