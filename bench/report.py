"""Turning benchmark results into the printed table, the ratios, the targets, and JSON.

The results are one plain dict (``results``) filled by ``bench.node_bench``; this module only
reads it. Every figure of the node is also printed as a ratio to the baselines measured in the
same run, because absolute numbers on a shared 2-core machine move with its load, while ratios
to tools run on the same files a minute earlier move much less.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

MIB = 1 << 20
MB = 1_000_000

#: (key, description, test on the results) — each prints "pass" or "short".
TARGETS = [
    ("large_vs_scp", "large document MB/s >= 1.0 x scp",
     lambda r: _ratio(r, "large", "scp") >= 1.0),
    ("small_vs_rsync", "many small docs/s >= 0.5 x rsync -a --fsync",
     lambda r: _ratio(r, "small", "rsync") >= 0.5),
    ("single_p50", "single document drop-to-receipt p50 < 15 ms",
     lambda r: r["single"]["p50_ms"] < 15),
    ("rss", "peak RSS of each node < 100 MiB during the large transfer",
     lambda r: max(r["large"]["peak_rss_mib"].values()) < 100),
    ("scaling", "time per document flat within 1.5x from smallest to largest run",
     lambda r: r["scaling"]["spread"] <= 1.5),
]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 50 runs is the worst-but-one, not an interpolation)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(seconds, 0.50) * 1000, "p99_ms": percentile(seconds, 0.99) * 1000,
            "max_ms": max(seconds) * 1000, "mean_ms": statistics.fmean(seconds) * 1000}


def machine() -> dict[str, Any]:
    """uname, CPU model, cores and RAM, for the record."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"uname": " ".join(platform.uname()), "cpu": cpu, "cores": os.cpu_count(),
            "ram_gib": round(ram / (1 << 30), 1), "python": platform.python_version(),
            "load_average_at_start": os.getloadavg()}


def _ratio(results: dict[str, Any], ours: str, theirs: str) -> float:
    mine = results.get(ours, {})
    base = results.get("baselines", {})
    if ours == "large":
        return mine["mbps"] / base[theirs]["mbps"]
    return mine["docs_per_s"] / base[theirs]["files_per_s"]


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Every node figure over every baseline it can be compared with."""
    out: dict[str, float] = {}
    base = results.get("baselines", {})
    if "large" in results:
        for name in ("scp", "tcp", "secretstream", "sha256"):
            if "mbps" in base.get(name, {}):
                out[f"large/{name}"] = results["large"]["mbps"] / base[name]["mbps"]
    if "small" in results and "files_per_s" in base.get("rsync", {}):
        out["small/rsync"] = results["small"]["docs_per_s"] / base["rsync"]["files_per_s"]
    return out


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, description, "pass" | "short" | "not run") for each target."""
    out = []
    for key, text, check in TARGETS:
        try:
            verdict = "pass" if check(results) else "short"
        except (KeyError, ZeroDivisionError, ValueError):
            verdict = "not run"
        out.append((key, text, verdict))
    return out


def render(results: dict[str, Any]) -> str:
    """The table printed at the end of a run (also pasted into docs/benchmarks.md)."""
    lines = ["", "lienthong delivery benchmark", "=" * 28,
             f"settings: {results['settings']}",
             f"machine: {results['machine']['cores']} cores, {results['machine']['cpu']}, "
             f"{results['machine']['ram_gib']} GiB; load average at start "
             f"{results['machine']['load_average_at_start'][0]:.2f}", ""]
    base = results.get("baselines", {})
    rows: list[tuple[str, str]] = []
    if "large" in results:
        r = results["large"]
        rows.append((f"large: {r['size'] / MIB:.0f} MiB drop-to-receipt"
                     + (f" (envelope v{r['envelope']})" if r.get("envelope") else ""),
                     f"{r['seconds']:.2f} s = {r['mbps']:.0f} MB/s"))
        rows.append(("  phases (s)", "  ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())))
        rows.append(("  peak RSS (MiB)", "  ".join(f"{k} {v:.0f}"
                                                 for k, v in r["peak_rss_mib"].items())))
        rows.append(("  CPU (s)", "  ".join(f"{k} {v:.1f}" for k, v in r["cpu_seconds"].items())))
    if "small" in results:
        r = results["small"]
        rows.append((f"small: {r['count']} x {r['size'] // 1024} KiB dropped at once",
                     f"{r['docs_per_s']:.0f} docs/s, latency p50 {r['p50_ms']:.0f} ms, "
                     f"p99 {r['p99_ms']:.0f} ms"))
        rows.append(("  CPU per document (ms)", "  ".join(
            f"{k} {v:.1f}" for k, v in r["cpu_ms_per_doc"].items())))
    if "single" in results:
        r = results["single"]
        rows.append((f"single: {r['size'] // 1024} KiB into an idle pair, {r['runs']} runs",
                     f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"))
        rows.append(("  of which drop-to-taken (watcher) p50",
                     f"{r['drop_to_taken_p50_ms']:.1f} ms"))
        for step, ms in r.get("steps_p50_ms", []):
            rows.append((f"  step p50: {step}", f"{ms:.1f} ms"))
    if "scaling" in results:
        r = results["scaling"]
        for run in r["runs"]:
            cpu = "  ".join(f"{k} {v:.1f}" for k, v in run["cpu_ms_per_doc"].items())
            rows.append((f"scaling: {run['count']} docs",
                         f"{run['ms_per_doc']:.2f} ms/doc ({run['docs_per_s']:.0f} docs/s); "
                         f"CPU ms/doc: {cpu}"))
        rows.append(("  spread (slowest/fastest per doc)", f"{r['spread']:.2f}x"))
    if "fanout" in results:
        for run in results["fanout"]["runs"]:
            rows.append((f"fan-out: 1 doc to {run['peers']} peer(s)",
                         f"{run['p50_ms']:.0f} ms to the last receipt (median of {run['runs']})"))
    for name, value in base.items():
        if "skipped" in value:
            rows.append((f"baseline {name}", f"skipped: {value['skipped']}"))
        elif "mbps" in value:
            rows.append((f"baseline {name}", f"{value['mbps']:.0f} MB/s"))
        elif "files_per_s" in value:
            rows.append((f"baseline {name}", f"{value['files_per_s']:.0f} files/s "
                                             f"({value['files']} files)"))
    for key, value in ratios(results).items():
        rows.append((f"ratio {key}", f"{value:.2f}x"))
    for _key, text, verdict in targets(results):
        rows.append((f"target: {text}", verdict))
    width = max(len(label) for label, _ in rows) if rows else 0
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines) + "\n"


def write_json(results: dict[str, Any], path: Path) -> None:
    payload = dict(results, ratios=ratios(results),
                   targets={key: verdict for key, _text, verdict in targets(results)})
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
