"""The receiver's document volume is full, or fills up mid-transfer; then space comes back.

Setup: beta's ``inbox/`` and ``tmp/`` (partial transfers, staging) live on a 48 MiB tmpfs, as
if the office kept its documents on a small data disk; its store and logs stay on the system
disk (a full store is a different failure; see docs/reliability.md). Alpha sends through a
byte-counting proxy.

Promises checked: a clear, specific error audited at both ends; while the disk stays full the
receiver stops taking that work (it refuses the OFFER instead of accepting ciphertext it cannot
keep) and the sender keeps the document queued rather than giving up; nothing half-written ever
appears in the inbox; once space returns the delivery completes, resuming from what was already
stored, and the shared checker passes.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time

from tests.faults.proxy import Throttle
from tests.integration.harness import (
    NOW,
    check_delivered,
    enrol_peer,
    sent_all,
    wait_for,
    write_large_file,
)

MIB = 1024 * 1024
IDLE = 4
SETTINGS = {"idle_timeout = 300": f"idle_timeout = {IDLE}"}
DISK_MIB = 48


def _network_with_small_disk(network, proxies, small_filesystem, **proxy_args):  # type: ignore[no-untyped-def]
    disk = small_filesystem("beta-disk", DISK_MIB)
    nodes = network("alpha", "beta", settings=SETTINGS, enrol=False)
    alpha, beta = nodes["alpha"], nodes["beta"]
    for name in ("inbox", "tmp"):  # same filesystem for both, so publishing can link
        shutil.rmtree(beta.home / name)  # empty but for the node's own empty subfolders
        (disk / name).mkdir(mode=0o700)
        (beta.home / name).symlink_to(disk / name)
    enrol_peer(alpha, beta)
    enrol_peer(beta, alpha)
    beta.start()
    proxy = proxies(beta, **proxy_args)
    alpha.query("update_peer_addresses", "beta", [proxy.address], NOW)
    return alpha, beta, proxy, disk


def _fill(disk, leave: int) -> None:  # type: ignore[no-untyped-def]
    """Leave at most ``leave`` bytes free. The receiver may be writing at the same moment, so
    the space can shrink under us: running out while filling means the disk is full, which
    is the point (ENOSPC here once failed the test instead of filling the disk)."""
    stats = os.statvfs(disk)
    remaining = max(0, stats.f_bavail * stats.f_frsize - leave)
    block = b"\0" * MIB
    with open(disk / "filler", "ab", buffering=0) as sink:
        try:
            while remaining:
                remaining -= sink.write(block[:min(remaining, MIB)])
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


def _refusals(node, kind: str, code: str) -> list[dict]:  # type: ignore[no-untyped-def]
    details = [json.loads(e.detail_json) for e in node.query("audit_entries", kind=kind)]
    return [d for d in details if d.get("code") == code]


def _failed(alpha) -> bool:  # type: ignore[no-untyped-def]
    return alpha.query("dispatches_by_state").get("failed", 0) > 0


def _inbox_is_empty(beta) -> None:  # type: ignore[no-untyped-def]
    folder = beta.inbox / "alpha"
    assert not folder.exists() or list(folder.iterdir()) == [], list(folder.iterdir())


def test_full_disk_refuses_the_offer_and_delivery_waits_for_space(  # type: ignore[no-untyped-def]
        network, proxies, small_filesystem, tmp_path) -> None:
    """Too little room for a 6 MiB document: every OFFER is refused with a reason, no ciphertext
    moves, the sender keeps it queued through many refusals; freed space lets it through."""
    alpha, beta, proxy, disk = _network_with_small_disk(network, proxies, small_filesystem)
    _fill(disk, leave=8 * MIB)
    alpha.start()
    original = tmp_path / "original.bin"
    write_large_file(original, 6 * MIB)
    alpha.drop("beta", "so-lieu.bin", original.read_bytes())

    wait_for(lambda: len(_refusals(beta, "rejected", "storage-unavailable")) >= 5 or _failed(alpha),
             timeout=60, what="five refusals for lack of space")
    refused = _refusals(alpha, "rejected-by-peer", "storage-unavailable")
    assert not _failed(alpha), (f"alpha gave the document up after {len(refused)}"
                                " 'storage-unavailable' refusals; a full disk at the peer is "
                                "temporary and must be retried until space returns")
    reason = _refusals(alpha, "rejected-by-peer", "storage-unavailable")[0]["reason"]
    assert "space" in reason, reason
    assert proxy.bytes_up < len(proxy.connections) * 32 * 1024, "ciphertext was sent to a full disk"
    _inbox_is_empty(beta)

    (disk / "filler").unlink()
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what="delivery once space returned")
    check_delivered(alpha, [beta], {"so-lieu.bin": original})


def test_disk_fills_mid_transfer_then_resumes(network, proxies, small_filesystem,  # type: ignore[no-untyped-def]
                                              tmp_path) -> None:
    """The disk fills while 8 MiB arrive (ENOSPC on write): storage error audited, later offers
    refused up front, inbox untouched; with space back the transfer resumes, not restarts."""
    alpha, beta, proxy, disk = _network_with_small_disk(
        network, proxies, small_filesystem, default=Throttle(rate=2 * MIB))
    alpha.start()
    original = tmp_path / "original.bin"
    write_large_file(original, 8 * MIB)
    alpha.drop("beta", "so-lieu.bin", original.read_bytes())

    staging = beta.home / "tmp" / "staging"
    wait_for(lambda: any(p.stat().st_size >= 2 * MIB for p in staging.glob("*")),
             timeout=30, what="2 MiB of the transfer to arrive", interval=0.02)
    _fill(disk, leave=0)

    wait_for(lambda: beta.query("audit_entries", kind="storage-error"), timeout=30,
             what="beta to record the failed write")
    wait_for(lambda: _refusals(alpha, "rejected-by-peer", "storage-unavailable"), timeout=30,
             what="alpha to record beta's refusal")
    wait_for(lambda: _refusals(beta, "rejected", "storage-unavailable"), timeout=30,
             what="beta to refuse the next offer up front")
    time.sleep(IDLE)
    assert len(beta.query("audit_entries", kind="storage-error")) == 1, \
        "beta accepted the document again while its disk was full"
    _inbox_is_empty(beta)

    sent_while_full = proxy.bytes_up
    (disk / "filler").unlink()
    wait_for(lambda: sent_all(alpha, 1), timeout=60, what="delivery once space returned")
    check_delivered(alpha, [beta], {"so-lieu.bin": original})
    (row,) = alpha.query("recent_dispatches", 1)
    offsets = re.findall(r"resuming 'so-lieu.bin' to beta at byte (\d+)", alpha.log_text())
    assert offsets and int(offsets[-1]) >= 2 * MIB, "the transfer restarted from zero"
    resent = proxy.bytes_up - sent_while_full
    assert resent < row.ciphertext_size - int(offsets[-1]) + 256 * 1024, (
        f"{resent} bytes were sent after space returned, more than the part beta lacked")
