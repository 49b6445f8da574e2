"""Where the CPU of a burst of small documents goes, per node (issue 14, item 3).

    python -m bench.profile_small [--count 2000] [--rate 250] [--out DIR]

Starts a real pair (``bench.nodes.Network``), attaches ``py-spy record`` (``pip install
py-spy``; not a dependency of the node) to the sender and the receiver, drops ``count`` files
of 10 KiB at once, waits for every verified receipt, and prints for each node the functions
that hold the most samples: their own time ("self") and with what they call ("total"), as a
share of that node's samples, plus the samples of each thread. The raw collapsed stacks stay in
``--out`` for a flame graph. Samples are taken only while a thread runs (py-spy's default),
so the shares are shares of the node's CPU, not of the wall clock.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.nodes import Network, write_small_files


def _record(pid: int, out: Path, rate: int, gil: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--threads",
         "--nonblocking", "--format", "raw", "--output", str(out), *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """CPU seconds (user, system) of each thread of a process, by thread ID."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[task.name] = (int(fields[11]) / ticks, int(fields[12]) / ticks)
    return out


def thread_names(stacks: Path) -> dict[str, str]:
    """Thread ID -> Python thread name, from py-spy's ``thread (ID): name`` frames; the
    worker pool's threads are added up as one."""
    names = {}
    for line in stacks.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(r"thread \((\d+)\): ([^;]*)", line)
        if match:
            name = match.group(2)
            names[match.group(1)] = "io pool" if name.startswith("PoolThread") else name
    return names


def _summary(path: Path, top: int) -> str:
    """The heaviest functions and threads of one collapsed-stack file."""
    self_count: collections.Counter[str] = collections.Counter()
    total_count: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():  # a line cut short when py-spy stopped
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        threads[frames[0]] += count
        calls = [_short(frame) for frame in frames[1:]]
        if calls:
            self_count[calls[-1]] += count
        for frame in set(calls):
            total_count[frame] += count
    if not samples:
        return "  (no samples)"
    lines = [f"  {samples} samples"]
    lines.append("  threads:")
    lines += [f"    {100 * n / samples:5.1f} %  {name}" for name, n in threads.most_common(8)]
    lines.append("  self:")
    lines += [f"    {100 * n / samples:5.1f} %  {name}" for name, n in self_count.most_common(top)]
    lines.append("  total:")
    lines += [f"    {100 * n / samples:5.1f} %  {name}" for name, n in total_count.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``function (path/to/module.py:line)`` as ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    module = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({module})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (Python CPU time)")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="lienthong-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="lienthong-profile-net-"))
    net = Network(base, 1)
    try:
        net.start()
        files = write_small_files(net.staging("small"), args.count, 10 * 1024)
        time.sleep(0.5)
        pids = {node.name: node.process.pid for node in net.nodes if node.process is not None}
        spies = {name: _record(pid, out / f"{name}.txt", args.rate, args.gil)
                 for name, pid in pids.items()}
        time.sleep(1.0)  # py-spy attaches
        cpu_before = {name: thread_cpu(pid) for name, pid in pids.items()}
        started = time.time()
        net.drop(net.peers[0].name, files.paths)
        net.wait_receipts(args.count, timeout=60 + args.count * 0.5, interval=0.05)
        seconds = time.time() - started
        cpu_after = {name: thread_cpu(pid) for name, pid in pids.items()}
        for spy in spies.values():
            spy.send_signal(2)
        for spy in spies.values():
            spy.wait(timeout=60)
        print(f"{args.count} documents in {seconds:.1f} s ({args.count / seconds:.0f} docs/s);"
              f" stacks in {out}")
        for name in spies:
            print(f"\n{name}: CPU ms per document by thread (/proc, py-spy's own cost included)")
            names = thread_names(out / f"{name}.txt")
            user: collections.Counter[str] = collections.Counter()
            system: collections.Counter[str] = collections.Counter()
            for tid, (u, k) in cpu_after[name].items():
                u0, k0 = cpu_before[name].get(tid, (0.0, 0.0))
                user[names.get(tid, "other")] += (u - u0) * 1000 / args.count
                system[names.get(tid, "other")] += (k - k0) * 1000 / args.count
            print(f"  all threads {sum(user.values()) + sum(system.values()):.2f}"
                  f" (user {sum(user.values()):.2f}, system {sum(system.values()):.2f})")
            for thread in sorted(user, key=lambda t: -(user[t] + system[t])):
                if user[thread] + system[thread] >= 0.05:
                    print(f"    {thread}: user {user[thread]:.2f}, system {system[thread]:.2f}")
            print(_summary(out / f"{name}.txt", args.top))
        net.stop()
    finally:
        net.kill()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
