"""Receipts for v3 envelopes: the sender checks them against the header token it stored, whose
digest and size it must supply from its own record of what it sealed; without them the check
refuses to run, naming what is missing (issue 22, the receipt module measured again after v3).
"""
from __future__ import annotations

import hashlib

import pytest

from lienthong.protocol.envelope import decode_header
from lienthong.protocol.receipt import issue_receipt, verify_receipt
from tests.protocol.test_envelope_v3 import BOB, _seal

DATA = b"Quyet dinh\n" * 3
TIME = "2026-12-01T08:00:05Z"


def test_a_v3_receipt_is_checked_against_the_digest_and_size_the_sender_recorded() -> None:
    token, _, envelope = _seal(DATA)
    receipt = issue_receipt(BOB.identity, recipient=BOB.node_id, header=envelope.header,
                            time=TIME)
    stored = decode_header(token)
    assert stored.digest is None and not stored.opened
    info = verify_receipt(receipt, BOB.identity.verify_key, expected=stored,
                          sha256=hashlib.sha256(DATA).hexdigest(), size=len(DATA))
    assert (info.sha256, info.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    with pytest.raises(ValueError) as no_digest:
        verify_receipt(receipt, BOB.identity.verify_key, expected=stored, size=len(DATA))
    assert str(no_digest.value) == "the sha256 the receipt must name is not known: give it"
    with pytest.raises(ValueError) as no_size:
        verify_receipt(receipt, BOB.identity.verify_key, expected=stored,
                       sha256=hashlib.sha256(DATA).hexdigest())
    assert str(no_size.value) == "the size the receipt must name is not known: give it"


def test_an_opened_header_with_its_digest_needs_nothing_more() -> None:
    _, _, envelope = _seal(DATA)
    receipt = issue_receipt(BOB.identity, recipient=BOB.node_id, header=envelope.header,
                            time=TIME)
    info = verify_receipt(receipt, BOB.identity.verify_key, expected=envelope.header,
                          sha256="0" * 64, size=1)     # ignored: the header knows both
    assert info.size == len(DATA)
