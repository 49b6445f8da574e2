"""Vietnamese names arrive in NFC, and two names that become equal never overwrite each other."""
from __future__ import annotations

import unicodedata

from tests.integration.harness import check_delivered, sent_all, wait_for

NAME = "Quyết định.pdf"
NFC = unicodedata.normalize("NFC", NAME)
NFD = unicodedata.normalize("NFD", NAME)


def test_nfc_and_nfd_spellings_arrive_as_two_nfc_documents(network) -> None:  # type: ignore[no-untyped-def]
    """The NFC and NFD spellings of one name arrive as NFC; the clash gets a suffix, none is
    lost."""
    assert NFC != NFD
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    first = "Quyết định số 1 (dựng sẵn, NFC)\n".encode() * 50
    second = "Quyết định số 2 (macOS, NFD)\n".encode() * 50
    alpha.drop("beta", NFC, first)
    wait_for(lambda: sent_all(alpha, 1), timeout=30, what="the NFC document")
    alpha.drop("beta", NFD, second)
    wait_for(lambda: sent_all(alpha, 2), timeout=30, what="the NFD document")
    check_delivered(alpha, [beta], {"nfc": first, "nfd": second})
    inbox = beta.inbox / "alpha"
    documents = sorted(p.name for p in inbox.iterdir() if p.suffix == ".pdf")
    assert documents == sorted([NFC, unicodedata.normalize("NFC", "Quyết định (2).pdf")])
    assert all(unicodedata.is_normalized("NFC", name) for name in documents)
    assert all(unicodedata.is_normalized("NFC", p.name) for p in inbox.iterdir())
    assert (inbox / NFC).read_bytes() == first
    assert (inbox / "Quyết định (2).pdf").read_bytes() == second
    sent = sorted(p.name for p in (alpha.home / "sent" / "beta").iterdir() if p.suffix == ".pdf")
    assert sent == documents
