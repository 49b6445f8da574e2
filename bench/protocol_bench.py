"""Throughput and memory of sealing and opening envelopes, beside raw libsodium secretstream.

    python -m bench.protocol_bench [--size-mib 1024] [--chunk-kib 256] [--piece-kib 1024]
                                   [--json PATH]

Why this shape: the envelope layer adds a SHA-256 pass of the plaintext (two with v1 headers,
which also sign the ciphertext's), buffering and a signature to the cipher itself, so its cost
is best judged as a ratio against raw ``crypto_secretstream_xchacha20poly1305_push``/``pull``
over the same bytes, chunk size and process. The document is never held whole: it is a
repeating random block fed in pieces of that block's size (1 MiB by default), and the
ciphertext is regenerated for the open pass by re-sealing with the same recorded randomness
(untimed, a few pieces at a time), because the opener needs the signed header, which exists
only after the whole document was sealed. Only time spent inside the code under test is
counted. SHA-256 alone is timed too, since on one thread its pass bounds the ratios.

The envelope is measured as the node runs it: SHA-256 on a second thread
(node.hashing.BackgroundDigest, as node/spool/sealing.py and node/inbox/stream.py use it), and again
with everything on one thread, so both figures are in the same run. Opening takes the output
through ``feed_chunks`` (one piece per chunk), as node/inbox/stream.py does. Before the clock
stops after each batch of the open pass the background hash is flushed, so none of it hides
in the untimed re-sealing.

Targets: envelope/raw ratio >= 0.8 each way; peak RSS growth < 64 MiB.

Observed on a 2-vCPU AMD EPYC, Python 3.11, glibc malloc: joining a feed's four 256 KiB
chunks made glibc return the freed heap top to the kernel after every 1 MiB piece and re-fault
it on the next one (sealing 256 MiB: 140,000 minor faults, 1.1 s of CPU; now ~400 and 0.6 s,
protocol/gather.py). Which allocation pattern trims depends on glibc's dynamic thresholds, so
a change elsewhere in a loop can bring it back: watch minor faults (``ru_minflt``).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import nacl.bindings as sodium
import nacl.public
import nacl.signing

from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.node.core.hashing import BackgroundDigest
from lienthong.protocol.envelope import verify_header
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.layout import CHUNK_OVERHEAD, chunk_count
from lienthong.protocol.payload import TAG_FINAL, TAG_MESSAGE
from lienthong.protocol.sealing import Opener, Sealer

PIECE = 1024 * 1024
MIB = 1024 * 1024
#: Ciphertext re-sealed (untimed) ahead of each timed batch of the open pass.
OPEN_BATCH = 8 * MIB
RATIO_TARGET = 0.8
RSS_TARGET_MIB = 64


def _vm_hwm_kib() -> int:
    """Peak resident set size so far, from /proc (Linux); 0 elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _maxrss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _pieces(block: bytes, size: int) -> Iterator[bytes]:
    """The document: ``block`` repeated, cut to ``size`` bytes, in pieces of len(block)."""
    left = size
    while left > 0:
        yield block if left >= len(block) else block[:left]
        left -= len(block)


class _Replay:
    """Randomness that records what it handed out, so a second run can repeat it."""

    def __init__(self) -> None:
        self.draws: list[bytes] = []
        self._replaying: Iterator[bytes] | None = None

    def __call__(self, n: int) -> bytes:
        if self._replaying is not None:
            return next(self._replaying)
        out = os.urandom(n)
        self.draws.append(out)
        return out

    def replay(self) -> None:
        self._replaying = iter(self.draws)


def _tags(size: int, chunk: int) -> Iterator[int]:
    total = chunk_count(size, chunk)
    return (TAG_FINAL if i == total - 1 else TAG_MESSAGE for i in range(total))


def bench_raw(block: bytes, size: int, chunk: int) -> tuple[float, float]:
    """Seconds spent in raw push, then in raw pull, over the document.

    The minimal PyNaCl program for the same job: it too must cut each 1 MiB piece into
    chunk-sized ``bytes`` (push and pull accept nothing else), so that cut is timed; the
    ciphertext the pull side receives is built untimed, one piece at a time.
    """
    key, ad = os.urandom(32), os.urandom(16)
    push = sodium.crypto_secretstream_xchacha20poly1305_push
    pull = sodium.crypto_secretstream_xchacha20poly1305_pull
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    tags = _tags(size, chunk)
    push_time = 0.0
    for piece in _pieces(block, size):
        t0 = time.perf_counter()
        view = memoryview(piece)
        for start in range(0, len(piece), chunk):
            push(state, bytes(view[start:start + chunk]), ad, next(tags))
        push_time += time.perf_counter() - t0
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    reader = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(reader, header, key)
    tags = _tags(size, chunk)
    pull_time = 0.0
    for piece in _pieces(block, size):
        view = memoryview(piece)
        sealed = b"".join(push(state, bytes(view[start:start + chunk]), ad, next(tags))
                          for start in range(0, len(piece), chunk))
        t0 = time.perf_counter()
        view = memoryview(sealed)
        step = chunk + CHUNK_OVERHEAD
        for start in range(0, len(sealed), step):
            pull(reader, bytes(view[start:start + step]), ad)
        pull_time += time.perf_counter() - t0
    return push_time, pull_time


def bench_sha256(block: bytes, size: int) -> float:
    """Seconds for one SHA-256 pass over the document: the envelope needs two each way."""
    digest = hashlib.sha256()
    t0 = time.perf_counter()
    for piece in _pieces(block, size):
        digest.update(piece)
    return time.perf_counter() - t0


def bench_second_core(block: bytes, size: int) -> float:
    """Speed-up of two SHA-256 passes on two threads over the same two passes in turn.

    About 2.0 when a second core is free; about 1.0 when other work holds it, and then the
    background hash cannot overlap anything (a shared machine): read the ratios with it."""
    def one_pass() -> None:
        bench_sha256(block, size)

    t0 = time.perf_counter()
    one_pass()
    one_pass()
    in_turn = time.perf_counter() - t0
    helper = threading.Thread(target=one_pass)
    t0 = time.perf_counter()
    helper.start()
    one_pass()
    helper.join()
    return in_turn / (time.perf_counter() - t0)


def _sha256_one_thread() -> Any:
    return hashlib.sha256()


def bench_envelope(block: bytes, size: int, chunk: int,
                   make_digest: Callable[[], Any] = BackgroundDigest) -> tuple[float, float]:
    """Seconds spent sealing+signing, then verifying+opening, the document, hashing the
    plaintext with ``make_digest()`` (default: on a second thread, as the node does)."""
    sender, reader = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    sender_id = node_id_from_public_key(sender.verify_key.encode())
    reader_id = node_id_from_public_key(reader.verify_key.encode())
    sender_enc, reader_enc = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    randomness = _Replay()

    def make_sealer() -> Sealer:
        return Sealer(identity=sender, sender=sender_id, sender_key=("s1", sender_enc.public_key),
                      recipients={reader_id: ("r1", reader_enc.public_key)}, name="bench.bin",
                      size=size, message_id=new_message_id(randomness),
                      created="2026-11-25T22:00:00Z", chunk_size=chunk,
                      random_bytes=randomness, plaintext_digest=digest)

    digest = make_digest()
    t0 = time.perf_counter()
    sealer = make_sealer()
    for piece in _pieces(block, size):
        sealer.feed(piece)
    token = sealer.finish().header_token
    seal_time = time.perf_counter() - t0

    randomness.replay()
    digest = None                       # the re-sealer (untimed) hashes on this thread
    resealer = make_sealer()
    t0 = time.perf_counter()
    header = verify_header(token, sender.verify_key, expected_sender=sender_id)
    opening_digest = make_digest()
    opener = Opener(header, node_id=reader_id, encryption_keys={"r1": reader_enc},
                    plaintext_digest=opening_digest)
    open_time = time.perf_counter() - t0
    feed, flush = opener.feed_chunks, getattr(opening_digest, "flush", lambda: None)
    pieces = _pieces(block, size)
    per_batch = max(1, OPEN_BATCH // len(block))
    while batch := [resealer.feed(piece) for piece in itertools.islice(pieces, per_batch)]:
        t0 = time.perf_counter()
        for sealed in batch:
            feed(sealed)
        flush()                         # no hashing left over for the untimed part
        open_time += time.perf_counter() - t0
        del batch
    if resealer.finish().header_token != token:
        raise RuntimeError("re-sealing did not reproduce the envelope; the bench is broken")
    t0 = time.perf_counter()
    opener.finish()
    open_time += time.perf_counter() - t0
    return seal_time, open_time


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(size_mib: int, chunk_kib: int, piece_kib: int = PIECE // 1024,
        say: Callable[[str], None] = print) -> dict[str, object]:
    size, chunk, piece = size_mib * MIB, chunk_kib * 1024, piece_kib * 1024
    block = os.urandom(piece)
    rss0, hwm0 = _maxrss_kib(), _vm_hwm_kib()
    # Warm up both paths (allocator, page cache of the code, CPU clocks) so that whichever runs
    # first is not penalised; the first pass over fresh memory measured ~2x slower here.
    warm = min(size, 64 * MIB)
    bench_raw(block, warm, chunk)
    bench_envelope(block, warm, chunk)
    bench_envelope(block, warm, chunk, _sha256_one_thread)
    push_t, pull_t = bench_raw(block, size, chunk)
    seal_t, open_t = bench_envelope(block, size, chunk)
    seal1_t, open1_t = bench_envelope(block, size, chunk, _sha256_one_thread)
    sha_t = bench_sha256(block, size)
    second_core = bench_second_core(block, min(size, 128 * MIB))
    rss1, hwm1 = _maxrss_kib(), _vm_hwm_kib()

    def mbps(seconds: float) -> float:
        return size / 1e6 / seconds

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "SHORT"

    seal_ratio, open_ratio = push_t / seal_t, pull_t / open_t
    seal1_ratio, open1_ratio = push_t / seal1_t, pull_t / open1_t
    # What the ratios could be on one thread if the envelope added nothing but its SHA-256.
    seal_ceiling, open_ceiling = push_t / (push_t + sha_t), pull_t / (pull_t + sha_t)
    rss_growth, hwm_growth = (rss1 - rss0) / 1024, (hwm1 - hwm0) / 1024
    targets = {"seal_ratio": verdict(seal_ratio >= RATIO_TARGET),
               "open_ratio": verdict(open_ratio >= RATIO_TARGET),
               "rss_growth": verdict(max(rss_growth, hwm_growth) < RSS_TARGET_MIB)}
    uname, cpu = " ".join(platform.uname()), _cpu_model()
    say(f"{uname}\ncpu: {cpu} ({os.cpu_count()} cpus), python {platform.python_version()}")
    say(f"document {size_mib} MiB, chunk {chunk_kib} KiB, pieces of {piece_kib} KiB")
    say("envelope as the node runs it: SHA-256 on a second thread (node.hashing)")
    say(f"raw secretstream push  {mbps(push_t):8.1f} MB/s")
    say(f"seal + sign            {mbps(seal_t):8.1f} MB/s   ratio {seal_ratio:.2f}  "
        f"(target >= {RATIO_TARGET}) {targets['seal_ratio']}")
    say(f"  on one thread        {mbps(seal1_t):8.1f} MB/s   ratio {seal1_ratio:.2f}")
    say(f"raw secretstream pull  {mbps(pull_t):8.1f} MB/s")
    say(f"verify + open          {mbps(open_t):8.1f} MB/s   ratio {open_ratio:.2f}  "
        f"(target >= {RATIO_TARGET}) {targets['open_ratio']}")
    say(f"  on one thread        {mbps(open1_t):8.1f} MB/s   ratio {open1_ratio:.2f}")
    say(f"SHA-256 alone          {mbps(sha_t):8.1f} MB/s   (on one thread its pass caps the "
        f"ratios at seal {seal_ceiling:.2f}, open {open_ceiling:.2f})")
    say(f"second core: two SHA-256 threads ran {second_core:.2f}x as fast as one (2.0: a free "
        "core, so the background hash can overlap; ~1.0: none was free during this run)")
    say(f"peak RSS growth: ru_maxrss {rss_growth:.1f} MiB, VmHWM {hwm_growth:.1f} MiB  "
        f"(target < {RSS_TARGET_MIB} MiB) {targets['rss_growth']}")
    return {
        "size_bytes": size, "chunk_size": chunk, "piece_size": piece,
        "raw_push_MBps": mbps(push_t), "raw_pull_MBps": mbps(pull_t),
        "seal_MBps": mbps(seal_t), "open_MBps": mbps(open_t), "sha256_MBps": mbps(sha_t),
        "seal_ratio": seal_ratio, "open_ratio": open_ratio, "hashing": "second thread",
        "second_core_speedup": second_core, "seal_one_thread_MBps": mbps(seal1_t),
        "open_one_thread_MBps": mbps(open1_t),
        "seal_one_thread_ratio": seal1_ratio, "open_one_thread_ratio": open1_ratio,
        "seal_ratio_ceiling": seal_ceiling, "open_ratio_ceiling": open_ceiling,
        "maxrss_growth_MiB": rss_growth, "vmhwm_growth_MiB": hwm_growth, "targets": targets,
        "python": platform.python_version(), "uname": uname, "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="document size (MiB)")
    parser.add_argument("--chunk-kib", type=int, default=256, help="secretstream chunk (KiB)")
    parser.add_argument("--piece-kib", type=int, default=PIECE // 1024,
                        help="size of each piece fed in (KiB)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    results = run(args.size_mib, args.chunk_kib, args.piece_kib)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
