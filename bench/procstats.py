"""What the kernel says about a node process: peak and shared-aware memory, CPU, connections.

Read from /proc, so the figures are the node's own, not guesses from outside:

* peak RSS is the kernel's high-water mark (``VmHWM``); summed over many nodes it counts the
  shared pages of the interpreter and libraries once per node, so the total memory is also
  given as the sum of ``Pss`` (proportional set size: each shared page split between the
  processes that map it), which is what the nodes cost the machine together;
* CPU is user + system time of all the process's threads;
* open connections are the process's sockets in TCP state ESTABLISHED (its file descriptors
  matched with /proc/net/tcp and tcp6), counted at each sample; the peak is kept.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

_ESTABLISHED = "01"


def peak_rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmHWM:") * 1024


def pss_bytes(pid: int) -> int:
    """Proportional set size now (0 when the kernel does not offer smaps_rollup)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def established_inodes() -> set[str]:
    """Socket inodes of every ESTABLISHED TCP connection on the machine (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == _ESTABLISHED:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def connections(pids: Iterable[int]) -> dict[int, int]:
    """ESTABLISHED TCP connections held by each process now."""
    established = established_inodes()
    counts = {}
    for pid in pids:
        count = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in established:
                    count += 1
        except OSError:
            pass
        counts[pid] = count
    return counts


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
