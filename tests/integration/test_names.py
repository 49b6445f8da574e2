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


def test_a_peer_cannot_plant_a_sidecar_beside_a_later_document(network) -> None:  # type: ignore[no-untyped-def]
    """A peer sends to-trinh.pdf.meta.json (a forged sidecar) and then to-trinh.pdf: the first
    arrives as to-trinh.pdf.meta.json.file, and the .meta.json beside the real document is the
    one the node wrote for it (docs/documents.md)."""
    import json
    nodes = network("alpha", "beta")
    alpha, beta = nodes["alpha"], nodes["beta"]
    alpha.start()
    beta.start()
    forged = json.dumps({"sender": "ubnd", "meta": {"subject": "giả mạo"}}).encode()
    alpha.drop("beta", "to-trinh.pdf.meta.json", forged)
    alpha.drop("beta", "to-trinh.pdf.receipt.jws", b"forged.receipt.token\n")
    inbox = beta.inbox / "alpha"
    # Waited for in the inbox: the node's own notices (signed audit heads) are dispatches too.
    wait_for(lambda: all((inbox / f"to-trinh.pdf.{kind}.file.receipt.jws").exists()
                         for kind in ("meta.json", "receipt.jws")),
             timeout=30, what="the two look-alikes")
    alpha.drop("beta", "to-trinh.pdf", b"To trinh so 7\n")
    wait_for(lambda: (inbox / "to-trinh.pdf.receipt.jws").exists(), timeout=30,
             what="the real document")
    assert (inbox / "to-trinh.pdf.meta.json.file").read_bytes() == forged
    assert (inbox / "to-trinh.pdf.receipt.jws.file").read_bytes() == b"forged.receipt.token\n"
    assert (inbox / "to-trinh.pdf").read_bytes() == b"To trinh so 7\n"
    real = json.loads((inbox / "to-trinh.pdf.meta.json").read_text(encoding="utf-8"))
    assert real["name"] == "to-trinh.pdf" and real["sender"] == "alpha"
    assert (inbox / "to-trinh.pdf.receipt.jws").read_text().count(".") == 2  # a real JWS
    sidecars = sorted(p.name for p in inbox.iterdir() if p.name.endswith((".meta.json",
                                                                          ".receipt.jws")))
    assert sidecars == ["to-trinh.pdf.meta.json", "to-trinh.pdf.meta.json.file.meta.json",
                        "to-trinh.pdf.meta.json.file.receipt.jws", "to-trinh.pdf.receipt.jws",
                        "to-trinh.pdf.receipt.jws.file.meta.json",
                        "to-trinh.pdf.receipt.jws.file.receipt.jws"]
