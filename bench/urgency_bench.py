"""Does a flash document overtake a large publication in transfer? (issue 7's measure)

    python -m bench.urgency_bench [--large-mib 1024] [--flash 5] [--json PATH] [--dir DIR]
    python3 dev.py bench-urgency      (the same)

Two real nodes on loopback (``bench.nodes``: SQLite, mutual TLS, real folders). A large
publication (1 GiB by default) is dropped into the sender's outbox; once the receiver is
writing it, small documents marked ``urgency = "flash"`` (by a sidecar, as a clerk's document
system would) are dropped one after another while the large one is still in transfer. Each
flash document's drop-to-verified-receipt time is printed beside the large document's own, with
the issue's target: every flash receipt within 2 s, and the large transfer still running when
the last flash receipt arrives (otherwise nothing was overtaken and the run says so).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.nodes import Network, settings_text, write_large_file

MIB = 1 << 20
TARGET_SECONDS = 2.0
SIDECAR = 'type = "announcement"\nurgency = "flash"\nsubject = "Thông báo khẩn"\n'


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _receiving(net: Network) -> bool:
    """True once the receiver holds part of the large document."""
    folder = net.peers[0].home / "tmp"
    return any(p.is_file() and p.stat().st_size > 4 * MIB for p in folder.rglob("*"))


def _drop_flash(net: Network, target: str, index: int) -> tuple[str, float]:
    """Sidecar first, then the document, each written aside and renamed in."""
    name = f"thong-bao-khan-{index:02d}.txt"
    staging = net.staging("flash")
    folder = net.sender.outbox / target
    (staging / f"{name}.meta.toml").write_text(SIDECAR, encoding="utf-8")
    os.rename(staging / f"{name}.meta.toml", folder / f"{name}.meta.toml")
    (staging / name).write_bytes(f"Thông báo khẩn số {index}\n".encode() * 50)
    os.rename(staging / name, folder / name)
    return name, time.time()


def run(base: Path, large_mib: int, flashes: int) -> dict[str, Any]:
    net = Network(base / "urgency", 1)
    try:
        net.start()
        target = net.peers[0].name
        large = write_large_file(net.staging("large") / "nien-giam.bin", large_mib * MIB)
        _say(f"urgency: {large_mib} MiB publication to {target}, then {flashes} flash documents")
        dropped = net.drop(target, [large])
        deadline = time.monotonic() + 120
        while not _receiving(net):
            if time.monotonic() > deadline:
                raise TimeoutError("the large document never started arriving")
            time.sleep(0.05)
        flash: dict[str, float] = {}
        for index in range(1, flashes + 1):
            name, at = _drop_flash(net, target, index)
            flash[name] = at
            net.wait_receipts(index, timeout=60, interval=0.01)
        last_flash_receipt = time.time()
        net.wait_receipts(flashes + 1, timeout=1800, interval=0.05)
        times = net.receipt_times()
        large_seconds = max(times[large.name]) - dropped[large.name]
        flash_seconds = [max(times[name]) - at for name, at in flash.items()]
        overtaken = max(times[large.name]) > last_flash_receipt
        net.stop()
        return {"large_mib": large_mib, "large_seconds": large_seconds,
                "flash_seconds": flash_seconds, "overtook": overtaken,
                "target_seconds": TARGET_SECONDS,
                "passed": overtaken and max(flash_seconds) <= TARGET_SECONDS}
    finally:
        net.kill()
        shutil.rmtree(base / "urgency", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-mib", type=int, default=1024, metavar="N")
    parser.add_argument("--flash", type=int, default=5, metavar="K",
                        help="flash documents to drop during the large transfer")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="work folder")
    args = parser.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="lienthong-urgency-"))
    base.mkdir(parents=True, exist_ok=True)
    result = run(base, args.large_mib, args.flash)
    seconds = result["flash_seconds"]
    print(f"settings: {settings_text()}")
    print(f"large publication {result['large_mib']} MiB: {result['large_seconds']:.2f} s "
          "drop-to-receipt")
    print("flash documents during it, drop-to-receipt (s): "
          + ", ".join(f"{s:.2f}" for s in seconds))
    print(f"slowest flash {max(seconds):.2f} s (target <= {TARGET_SECONDS:.0f} s); the large one "
          f"was {'still in transfer' if result['overtook'] else 'ALREADY DONE'} at the last "
          "flash receipt")
    print(f"target: flash receipted within {TARGET_SECONDS:.0f} s while a large one is in "
          f"transfer: {'pass' if result['passed'] else 'short'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
