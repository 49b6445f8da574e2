"""Offers (node/inbox/offers.py) driven directly, offer to receipt, on an inline runtime."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lienthong.node.inbox.offers import Offers
from lienthong.node.spool.sealing import open_envelope, seal_spooled
from lienthong.protocol.envelope import EnvelopeHeader
from lienthong.protocol.events import Accept, Offer, Receipt
from lienthong.protocol.fields import new_message_id
from tests.node.runtimehelp import NOW, FakeReactor, enrol, make_office


def test_a_control_document_whose_handler_fails_is_receipted_and_the_failure_audited(
        tmp_path: Path) -> None:
    """The document is stored when its handler runs: a handler that raises must not cost the
    sender its receipt, and the failure is audited with the kind of control document."""
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    enrol(beta, alpha)
    rt = alpha.runtime
    mid = new_message_id()
    folder = rt.config.spool / mid
    folder.mkdir()
    (folder / "payload").write_bytes(b"not a status token\n")
    sealed = seal_spooled(folder, node_keys=rt.keys,
                          recipients={beta.node_id: rt.directory.encryption_key_for(
                              beta.node_id)},
                          name="status.jws", message_id=mid, created=NOW,
                          meta={"kind": "status"})
    offers = Offers(beta.runtime)

    def broken(peer: str, header: EnvelopeHeader, stored: Path) -> None:
        raise ValueError("the status does not parse")

    offers.control["status"] = broken
    answers: list[Any] = []
    offers.offer(alpha.node_id, Offer(
        message_id=mid, envelope=sealed.header_token,
        ciphertext_size=sealed.header.ciphertext_size, priority=3)).addBoth(answers.append)
    (accepted,) = answers
    accept, header, stream = accepted
    assert isinstance(accept, Accept) and accept.offset == 0
    source = open_envelope(folder, sealed.header_token, rt.keys)
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
