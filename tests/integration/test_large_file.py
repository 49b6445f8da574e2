"""A large document streams through with bounded memory at both ends."""
from __future__ import annotations

from tests.integration.harness import (
    check_delivered,
    sent_all,
    sha256,
    wait_for,
    write_large_file,
)

SIZE = 200 * 1024 * 1024
#: Issue 14's target is 100 MiB per node; both measured 95-99 (docs/benchmarks.md History 43).
#: 110 leaves room for allocator noise and still fails on the 113 MiB an idle node used while it
#: loaded openpyxl at start, or on the receiver's former 16 MiB DATA queue (132-136 MiB).
RSS_LIMIT_KIB = 110 * 1024


def test_200_mib_document_arrives_intact_with_bounded_memory(network) -> None:  # type: ignore[no-untyped-def]
    """200 MiB arrives byte-identical while each node's peak RSS stays under 110 MiB."""
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    (alpha.outbox / "beta").mkdir(exist_ok=True)
    written = write_large_file(alpha.outbox / "beta" / "ban-do-quy-hoach.bin", SIZE)
    wait_for(lambda: sent_all(alpha, 1), timeout=120, what="the 200 MiB document")
    peaks = {node.name: node.peak_rss_kib() for node in (alpha, beta)}
    print(f"peak RSS (VmHWM): alpha {peaks['alpha'] / 1024:.1f} MiB, "
          f"beta {peaks['beta'] / 1024:.1f} MiB")
    sent = alpha.home / "sent" / "beta" / "ban-do-quy-hoach.bin"
    assert sha256(sent) == written
    check_delivered(alpha, [beta], {"ban-do-quy-hoach.bin": sent})
    assert all(peak < RSS_LIMIT_KIB for peak in peaks.values()), peaks
