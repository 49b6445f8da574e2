"""Hostile edXML through the node's own intake (issue 21): each file is dropped into a real
outbox folder and taken by the real ``Outbox`` with a real store and keys (tests/node/
runtimehelp.py: no threads, no sockets). For every case: the file and its reason file are in
failed/, the reason names the problem in words a clerk can act on, a ``refused`` audit event
carries its code, no dispatch is recorded, the spool is empty, and the node goes on to send
the next good file. The "1 GB attachment" claims are refused with memory measured."""
from __future__ import annotations

import base64
import dataclasses
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from lienthong.config.schema import DeliverySection, EdxmlSection
from lienthong.node.edxml.build import build_document
from lienthong.node.outbox.pipeline import Outbox
from tests.node.edxml import samples
from tests.node.runtimehelp import FakeReactor, Office, enrol, make_office

#: name -> (file bytes, audit code, words the reason must hold)
HOSTILE: dict[str, tuple[bytes, str, str]] = {
    "billion-laughs.edxml": (samples.BILLION_LAUGHS, "bad-edxml", "DOCTYPE"),
    "external-file.edxml": (samples.EXTERNAL_FILE, "bad-edxml", "DOCTYPE"),
    "external-network.edxml": (samples.EXTERNAL_NETWORK, "bad-edxml", "DOCTYPE"),
    "doctype.edxml": (samples.PLAIN_DOCTYPE, "bad-edxml", "declares a DOCTYPE"),
    "bad-base64.edxml": (samples.BAD_BASE64, "bad-edxml", "is not valid base64"),
    "foreign-subject.edxml": (samples.FOREIGN_SUBJECT, "bad-edxml",
                              "in the namespace 'urn:evil'"),
    "foreign-root.edxml": (samples.WRONG_ROOT_NAMESPACE, "bad-edxml",
                           "not the edXML namespace"),
    "two-subjects.edxml": (samples.TWO_SUBJECTS, "bad-edxml", "where one is allowed"),
    "wrong-recipient.edxml": (build_document(samples.full_document(to=(samples.UBND,))),
                              "edxml-wrong-recipient", "addressed to '000.00.03.H41'"),
    "not-xml.edxml": (b"%PDF-1.7 not xml", "bad-edxml", "not well-formed XML"),
}


def _alpha(tmp_path: Path, *, max_mib: int = 64, max_document_mib: int | None = None,
           language: str | None = "en") -> Office:
    """An office taking edXML; English reason files unless ``language`` says otherwise
    (None: the node's default, Vietnamese), as these tests check the English wording."""
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor, language=language)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    config = alpha.runtime.config
    delivery = config.delivery if max_document_mib is None else dataclasses.replace(
        config.delivery, max_document_mib=max_document_mib)
    assert isinstance(delivery, DeliverySection)
    alpha.runtime.config = dataclasses.replace(
        config, delivery=delivery, edxml=EdxmlSection(
            organ_id=samples.TINHUY.organ_id, offices={"beta": samples.HDND.organ_id},
            max_mib=max_mib))
    (config.outbox / "beta").mkdir(parents=True, exist_ok=True)
    return alpha


def _take(alpha: Office, path: Path) -> None:
    finished: list[Any] = []
    Outbox(alpha.runtime, on_dispatch=lambda ids: None).file_ready(path, "beta").addBoth(
        finished.append)
    assert finished == [None]  # the inline runtime finishes the take before returning


def _refusal(alpha: Office, name: str) -> tuple[str, dict[str, Any]]:
    """The reason file's text and the refusal's audit detail."""
    failed = alpha.runtime.config.failed
    assert (failed / name).is_file(), sorted(p.name for p in failed.iterdir())
    reason = (failed / f"{name}.reason.txt").read_text(encoding="utf-8")
    events = [e.detail for e in alpha.store.audit_entries(kind="refused")
              if e.detail.get("name") == name]
    assert len(events) == 1
    return reason, events[0]


def _nothing_sent(alpha: Office) -> None:
    assert alpha.store.recent_dispatches(10) == []
    assert [p for p in alpha.runtime.config.spool.iterdir() if p.is_dir()] == []


def test_every_hostile_file_is_refused_into_failed_and_the_node_goes_on(tmp_path: Path) -> None:
    alpha = _alpha(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    for name, (data, _, _) in HOSTILE.items():
        (folder / name).write_bytes(data)
        _take(alpha, folder / name)
    for name, (data, code, words) in HOSTILE.items():
        reason, event = _refusal(alpha, name)
        assert words in reason and words in event["reason"], (name, reason)
        assert event["code"] == code, (name, event)
        assert (alpha.runtime.config.failed / name).read_bytes() == data  # kept as it came
        assert not (folder / name).exists()
    _nothing_sent(alpha)
    # Unharmed: the next good edXML is taken and recorded as one dispatch.
    (folder / "good.edxml").write_bytes(build_document(samples.full_document()))
    _take(alpha, folder / "good.edxml")
    sent = alpha.store.recent_dispatches(10)
    assert [(d.name, d.meta["edxml"]["document_id"]) for d in sent] == [
        ("good.edxml", samples.full_document().header.document_id)]
    # Found again by its DocumentId (an indexed lookup), as a recall or replacement needs.
    assert alpha.store.sent_by_document_id(
        samples.full_document().header.document_id or "") == sent[0].message_id


def test_a_1_gib_edxml_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    """A sparse file of 1 GiB (a few bytes on disk): refused before a byte is parsed."""
    alpha = _alpha(tmp_path)
    path = alpha.runtime.config.outbox / "beta" / "huge.edxml"
    with open(path, "wb") as handle:
        handle.write(samples.minimal("<edXML:Subject>x</edXML:Subject>")[:200])
        handle.truncate(1024 ** 3)
    tracemalloc.start()
    try:
        _take(alpha, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reason, event = _refusal(alpha, "huge.edxml")
    assert event["code"] == "edxml-too-large"
    assert "1073741824 bytes, more than the 67108864 bytes" in reason and "max_mib" in reason
    assert peak < 8 << 20, peak
    _nothing_sent(alpha)


def test_a_1_gib_edxml_within_a_1_gib_limit_is_refused_at_its_first_bad_byte(
        tmp_path: Path) -> None:
    """With max_mib at its highest (1024), a 1 GiB sparse file whose attachment claims
    the rest: streamed, it is refused where the holes start, memory and time bounded."""
    alpha = _alpha(tmp_path, max_mib=1024)
    path = alpha.runtime.config.outbox / "beta" / "claim.edxml"
    head = samples.minimal("<edXML:Subject>x</edXML:Subject>")
    with open(path, "wb") as handle:
        handle.write(head[:head.index(b"aGVsbG8=")] + b"QUFB" * 1000)
        handle.truncate(1024 ** 3 - 1)
    tracemalloc.start()
    try:
        _take(alpha, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reason, event = _refusal(alpha, "claim.edxml")
    assert event["code"] == "bad-edxml" and "not well-formed XML" in reason
    assert peak < 8 << 20, peak
    _nothing_sent(alpha)


@pytest.mark.parametrize("wrapped", [True, False])
def test_an_attachment_over_the_document_limit_is_refused_while_decoding(
        tmp_path: Path, wrapped: bool) -> None:
    """Base64 of 8 MiB where the office accepts documents of 1 MiB (max_document_mib): refused
    at the first chunk beyond the limit, naming the attachment and the limit; the base64 is
    never held whole (peak under a quarter of the file)."""
    alpha = _alpha(tmp_path, max_document_mib=1)
    encode = base64.encodebytes if wrapped else base64.b64encode
    data = samples.minimal("<edXML:Subject>x</edXML:Subject>").replace(
        b"aGVsbG8=", encode(b"\0" * (8 << 20)))
    path = alpha.runtime.config.outbox / "beta" / "big-claim.edxml"
    path.write_bytes(data)
    del data
    tracemalloc.start()
    try:
        _take(alpha, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reason, event = _refusal(alpha, "big-claim.edxml")
    assert event["code"] == "bad-edxml"
    assert "the attachment 'a.txt' holds more than the 1048576 bytes" in reason
    assert peak < (alpha.runtime.config.failed / "big-claim.edxml").stat().st_size // 4, peak
    _nothing_sent(alpha)


def test_a_refused_edxml_reason_file_is_in_vietnamese_by_default_and_its_audit_in_english(
        tmp_path: Path) -> None:
    """The node's default language is Vietnamese: a clerk reads why in failed/*.reason.txt in
    Vietnamese, with the file's own values (the addressee's code) kept as they are; the audit
    event, a record compared across offices, keeps the English reason."""
    alpha = _alpha(tmp_path, language=None)
    folder = alpha.runtime.config.outbox / "beta"
    for name in ("doctype.edxml", "wrong-recipient.edxml", "not-xml.edxml"):
        (folder / name).write_bytes(HOSTILE[name][0])
        _take(alpha, folder / name)
    reason, event = _refusal(alpha, "doctype.edxml")
    assert "tệp khai báo DOCTYPE" in reason and "declares a DOCTYPE" not in reason
    assert "declares a DOCTYPE" in event["reason"] and "DOCTYPE" in event["reason"]
    reason, event = _refusal(alpha, "wrong-recipient.edxml")
    assert "tệp edXML được gửi đến '000.00.03.H41'" in reason
    assert "thư mục của beta" in reason
    assert "addressed to '000.00.03.H41'" in event["reason"]
    assert event["code"] == "edxml-wrong-recipient"
    reason, event = _refusal(alpha, "not-xml.edxml")
    assert "tệp không phải XML đúng cú pháp" in reason
    assert "not well-formed XML" in event["reason"]
    _nothing_sent(alpha)
