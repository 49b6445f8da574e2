"""Offers (node/inbox/offers.py) driven directly, offer to receipt, on an inline runtime."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lienthong.node.inbox.offers import Offers
from lienthong.node.spool.sealing import open_envelope, seal_spooled
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.events import Accept, Offer, Receipt, Reject
from lienthong.protocol.fields import new_message_id
from tests.node.runtimehelp import NOW, FakeReactor, enrol, make_office


def test_a_control_document_whose_handler_fails_is_receipted_and_the_failure_audited(
        tmp_path: Path) -> None:
    """The document is stored when its handler runs: a handler that raises must not cost the
    sender its receipt, and the failure is audited with the kind of control document."""
    alpha, beta, folder, mid, sealed = _sealed_for_beta(
        tmp_path, b"not a status token\n", name="status.jws", meta={"kind": "status"})
    offers = Offers(beta.runtime)

    def broken(peer: str, header: EnvelopeHeader, stored: Path) -> None:
        raise ValueError("the status does not parse")

    offers.control["status"] = broken
    answers: list[Any] = []
    offers.offer(alpha.node_id, Offer(
        message_id=mid, envelope=sealed.header_token,
        ciphertext_size=sealed.header.ciphertext_size, priority=3)).addBoth(answers.append)
    (accepted,) = answers
    accept, header, stream, _ = accepted
    assert isinstance(accept, Accept) and accept.offset == 0
    source = open_envelope(folder, sealed.header_token, alpha.runtime.keys)
    try:
        stream.write(source.read(header.ciphertext_size))
    finally:
        source.close()

    finished: list[Any] = []
    offers.finish(alpha.node_id, header, stream).addBoth(finished.append)

    (answer,) = finished
    assert isinstance(answer, Receipt) and answer.message_id == mid
    (entry,) = beta.store.audit_entries(kind="control-failed")
    assert (entry.peer, entry.message_id) == (alpha.node_id, mid)
    assert entry.detail["control_kind"] == "status"
    assert entry.detail["reason"] == "the status does not parse"


def _petition_offer(alpha: Any, beta: Any, meta: dict[str, Any]) -> tuple[str, Offer]:
    mid = new_message_id()
    _, sealed = _seal_for(alpha, beta, mid, b"%PDF petition\n", name=f"petition-{mid[:12]}.pdf",
                          meta=meta, version=2)
    assert sealed.header.version == 3  # a petition is sealed v3 whatever was asked
    return mid, Offer(message_id=mid, envelope=sealed.header_token,
                      ciphertext_size=sealed.header.ciphertext_size, priority=3)


PETITION_META = {"kind": "petition", "priority": 3, "petition": {
    "kind": "complaint", "received": "2026-12-01", "petitioner": {"name": "Nguyễn Thị C"}}}


def test_the_receivers_own_petition_policy_refuses_and_asks_for_a_signed_refusal(
        tmp_path: Path) -> None:
    """beta accepts petitions only from gamma: alpha's is refused (petition-not-allowed),
    the refusal is handed on to be signed; from an allowed alpha, a petition without its
    petitioner is refused as bad-petition, and a good one is accepted into the restricted
    folder. No reason names the petitioner."""
    from dataclasses import replace

    from lienthong.config.schema import PetitionsSection

    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    enrol(beta, alpha)
    config = beta.runtime.config
    beta.runtime.config = replace(config, petitions=PetitionsSection(peers=("gamma",)))
    offers = Offers(beta.runtime)
    handed: list[tuple[str, str, str]] = []

    def refused(peer: str, header: EnvelopeHeader, code: str, reason: str) -> Any:
        handed.append((peer, header.message_id, code))
        from twisted.internet.defer import succeed
        return succeed(None)

    offers.on_petition_refused = refused
    answers: list[Any] = []
    mid, offer = _petition_offer(alpha, beta, PETITION_META)
    offers.offer(alpha.node_id, offer).addBoth(answers.append)
    (answer,) = answers
    assert isinstance(answer, Reject) and answer.code == "petition-not-allowed"
    assert "from alpha" in answer.reason and handed == [(alpha.node_id, mid,
                                                         "petition-not-allowed")]

    beta.runtime.config = replace(config, petitions=PetitionsSection(peers=("alpha",)))
    bad = dict(PETITION_META, petition={"kind": "complaint", "received": "2026-12-01",
                                        "petitioner": {"name": "<b>C</b>"}})
    answers.clear()
    _, offer = _petition_offer(alpha, beta, bad)
    offers.offer(alpha.node_id, offer).addBoth(answers.append)
    (answer,) = answers
    assert isinstance(answer, Reject) and answer.code == "bad-petition"
    assert "petitioner" in answer.reason and "<b>" not in answer.reason
    answers.clear()
    _, offer = _petition_offer(alpha, beta, PETITION_META)
    offers.offer(alpha.node_id, offer).addBoth(answers.append)
    (answer,) = answers
    assert isinstance(answer[0], Accept)
    folder = beta.runtime.config.home / "petitions" / "inbox" / "alpha"
    assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == oct(0o700)
    rejected = [e.detail["reason"] for e in beta.store.audit_entries(kind="rejected")]
    assert len(rejected) == 2 and not any("Nguyễn" in r for r in rejected)


def test_a_v3_offer_opens_its_file_key_once_from_offer_to_receipt(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The offer's check opens the sealed contents (one X25519 operation) and hands the file
    key to the staging stream, which does not open it again: one opening per document."""
    import lienthong.protocol.envelope as envelope_module

    alpha, beta, folder, mid, sealed = _sealed_for_beta(
        tmp_path, b"noi dung van ban\n" * 600, name="cong-van.txt", meta={}, version=3)
    source = open_envelope(folder, sealed.header_token, alpha.runtime.keys)
    try:
        ciphertext = source.read(sealed.header.ciphertext_size)
    finally:
        source.close()
    openings: list[bytes] = []
    real = envelope_module.open_file_key

    def counted(*args: Any) -> bytes:
        openings.append(args[0])
        return real(*args)
    monkeypatch.setattr(envelope_module, "open_file_key", counted)
    offers = Offers(beta.runtime)
    answers: list[Any] = []
    offers.offer(alpha.node_id, Offer(
        message_id=mid, envelope=sealed.header_token,
        ciphertext_size=sealed.header.ciphertext_size, priority=3)).addBoth(answers.append)
    ((accept, header, stream, open_staging),) = answers
    assert isinstance(accept, Accept) and header.name == "cong-van.txt"
    # A small v3 document is accepted before its staging file is opened: the connection opens
    # it once the ACCEPT is written (here the worker pool runs inline).
    assert not stream.staging.exists()
    opened: list[Any] = []
    open_staging().addBoth(opened.append)
    assert opened == [stream] and stream.staging.exists()
    stream.write(ciphertext)
    finished: list[Any] = []
    offers.finish(alpha.node_id, header, stream).addBoth(finished.append)
    (answer,) = finished
    assert isinstance(answer, Receipt) and answer.message_id == mid
    assert len(openings) == 1, "the file key is opened once per offer"


def _sealed_for_beta(tmp_path: Path, payload: bytes, *, name: str, meta: dict[str, Any],
                     version: int = 2) -> tuple[Any, Any, Path, str, Any]:
    """Two enrolled offices on one fake reactor, and ``payload`` sealed by alpha for beta in
    alpha's spool: ``(alpha, beta, spool folder, message ID, sealed envelope)``."""
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    enrol(beta, alpha)
    mid = new_message_id()
    folder, sealed = _seal_for(alpha, beta, mid, payload, name=name, meta=meta, version=version)
    return alpha, beta, folder, mid, sealed


def _seal_for(alpha: Any, beta: Any, mid: str, payload: bytes, *, name: str,
              meta: dict[str, Any], version: int) -> tuple[Path, Any]:
    """``payload`` sealed by alpha for beta in alpha's spool folder ``mid``."""
    rt = alpha.runtime
    folder = rt.config.spool / mid
    folder.mkdir()
    (folder / "payload").write_bytes(payload)
    sealed = seal_spooled(folder, node_keys=rt.keys,
                          recipients={beta.node_id: rt.directory.encryption_key_for(
                              beta.node_id)},
                          name=name, message_id=mid, created=NOW, meta=meta, version=version)
    return folder, sealed
