"""The audit hash chain: the documented formula, and detection of edits, deletions, reordering."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.node.store.audit_chain import (
    GENESIS_HASH,
    AuditEntry,
    ChainBroken,
    SignedHead,
    canonical_detail,
    entry_hash,
    entry_hash_of_stored,
    hashed_fields,
    verify_chain,
)


def make_chain(count: int, start: tuple[int, str] = (0, GENESIS_HASH)) -> list[AuditEntry]:
    entries = []
    seq, prev = start
    for index in range(count):
        seq += 1
        detail = {"name": f"Công văn {index}.pdf", "n": index}
        fields = hashed_fields(seq, f"2026-01-01T09:00:{index % 60:02d}Z", "taken", "so-tu-phap",
                               f"{seq:032x}", "ab" * 32, detail)
        entry = AuditEntry(seq=seq, time=fields["time"], kind="taken", peer="so-tu-phap",
                           message_id=fields["message_id"], digest="ab" * 32,
                           detail_json=canonical_detail(detail), prev_hash=prev,
                           hash=entry_hash(prev, fields))
        entries.append(entry)
        prev = entry.hash
    return entries


def rehash(entries: list[AuditEntry], start: tuple[int, str] = (0, GENESIS_HASH)
           ) -> list[AuditEntry]:
    """What an attacker with write access does after editing: recompute every link."""
    out = []
    prev = start[1]
    for entry in entries:
        fixed = dataclasses.replace(entry, prev_hash=prev)
        fixed = dataclasses.replace(fixed, hash=entry_hash(prev, fixed.hashed_fields()))
        out.append(fixed)
        prev = fixed.hash
    return out


def test_hash_is_the_documented_formula() -> None:
    """hash = sha256(prev_hex + "\\n" + canonical JSON of the fields), checkable without us."""
    fields = hashed_fields(1, "2026-01-01T09:00:00Z", "received", None, None, None,
                           {"tên": "Quyết định.pdf"})
    expected_json = ('{"detail":{"tên":"Quyết định.pdf"},"digest":null,"kind":"received",'
                     '"message_id":null,"peer":null,"seq":1,"time":"2026-01-01T09:00:00Z"}')
    expected = hashlib.sha256(("0" * 64 + "\n" + expected_json).encode("utf-8")).hexdigest()
    assert entry_hash(GENESIS_HASH, fields) == expected


@pytest.mark.parametrize("detail", [{}, {"tên": "Quyết định.pdf", "b": [1, 2.5, None]},
                                    {"z": {"y": "\u00e9\x00", "a": True}, "a": -7},
                                    {"name": "bad\udcff.pdf"}])
def test_hash_of_a_stored_detail_is_the_same_formula(detail: dict) -> None:
    """entry_hash_of_stored (the append's shortcut) gives the documented hash byte for byte."""
    detail_json = canonical_detail(detail)
    for peer, mid, digest in ((None, None, None), ("so-tu-phap", "a" * 32, "b" * 64)):
        fields = hashed_fields(9, "2026-01-01T09:00:00Z", "received", peer, mid, digest,
                               json.loads(detail_json))
        assert entry_hash_of_stored("c" * 64, 9, "2026-01-01T09:00:00Z", "received", peer,
                                    mid, digest, detail_json) == entry_hash("c" * 64, fields)


def test_intact_chain_verifies_and_returns_its_tip() -> None:
    """An untouched chain passes and verify_chain returns the last (seq, hash)."""
    entries = make_chain(5)
    assert verify_chain(entries) == (5, entries[-1].hash)
    assert verify_chain([]) == (0, GENESIS_HASH)


def test_edited_entry_is_named() -> None:
    """Changing any stored field of entry 3 is reported at seq 3 as an edit."""
    entries = make_chain(5)
    entries[2] = dataclasses.replace(entries[2], kind="rejected")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 3
    assert "edited" in caught.value.why


def test_deleted_entry_shows_as_a_gap_at_the_next_seq() -> None:
    """Deleting entry 3 is reported at entry 4, naming the missing seq."""
    entries = make_chain(5)
    del entries[2]
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 4
    assert "entry 3 is missing" in caught.value.why


def test_deleted_first_entry_is_detected() -> None:
    """A log that starts at entry 2 is missing entry 1."""
    entries = make_chain(3)[1:]
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 2
    assert "entry 1 is missing" in caught.value.why


def test_two_entries_swapped_in_order_are_detected() -> None:
    """Entries 3 and 4 presented in swapped order: caught at the first one out of place."""
    entries = make_chain(5)
    entries[2], entries[3] = entries[3], entries[2]
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 4


def test_swapped_contents_with_renumbered_seq_are_detected() -> None:
    """Swapping the contents of entries 3 and 4 but keeping seq numbers breaks entry 3's hash."""
    entries = make_chain(5)
    third, fourth = entries[2], entries[3]
    entries[2] = dataclasses.replace(fourth, seq=3)
    entries[3] = dataclasses.replace(third, seq=4)
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 3


def test_non_canonical_detail_is_an_edit() -> None:
    """Detail text that parses to the same value but is not canonical was still edited."""
    entries = make_chain(2)
    entries[1] = dataclasses.replace(entries[1], detail_json=entries[1].detail_json + " ")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 2 and "canonical" in caught.value.why


def test_detail_that_is_not_json_is_reported_not_crashed_on() -> None:
    """Garbage in the detail column is a ChainBroken, never a JSON exception."""
    entries = make_chain(2)
    entries[0] = dataclasses.replace(entries[0], detail_json="{not json")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 1


def test_rewritten_chain_is_caught_only_by_a_signed_head() -> None:
    """Edit + recompute all hashes fools the bare chain; the signed head still catches it."""
    entries = make_chain(5)
    head = SignedHead(seq=4, hash=entries[3].hash, time="2026-01-01T10:00:00Z")
    forged = list(entries)
    forged[1] = dataclasses.replace(forged[1], kind="nothing-happened")
    forged = rehash(forged)
    verify_chain(forged)  # the chain alone cannot tell
    with pytest.raises(ChainBroken) as caught:
        verify_chain(forged, heads=[head])
    assert caught.value.seq == 4
    assert "signed" in caught.value.why


def test_entries_cut_off_the_end_are_caught_by_a_later_head() -> None:
    """Dropping entries 4 and 5 is detected when a head was signed at 5."""
    entries = make_chain(5)
    head = SignedHead(seq=5, hash=entries[4].hash, time="2026-01-01T10:00:00Z")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries[:3], heads=[head])
    assert caught.value.seq == 4
    assert "cut short" in caught.value.why
    assert verify_chain(entries, heads=[head]) == (5, entries[4].hash)


def test_verification_page_by_page_links_pages() -> None:
    """Verifying in pages (after=previous tip, final=False) accepts an intact log, catches a gap."""
    entries = make_chain(6)
    head = SignedHead(seq=6, hash=entries[5].hash, time="2026-01-01T10:00:00Z")
    tip = verify_chain(entries[:3], heads=[head], final=False)
    assert verify_chain(entries[3:], after=tip, heads=[head]) == (6, entries[5].hash)
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries[4:], after=tip)
    assert caught.value.seq == 5


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=8), data=st.data())
def test_any_single_field_change_is_detected_at_that_entry(size: int, data: st.DataObject) -> None:
    """Changing any one field of any one entry is reported at exactly that entry."""
    entries = make_chain(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    field = data.draw(st.sampled_from(["time", "kind", "peer", "message_id", "digest",
                                       "detail_json", "prev_hash", "hash"]))
    replacement = {"time": "2027-01-01T00:00:00Z", "kind": "forged", "peer": "other",
                   "message_id": "f" * 32, "digest": "cd" * 32,
                   "detail_json": '{"n":-1}', "prev_hash": "1" * 64, "hash": "2" * 64}[field]
    entries[index] = dataclasses.replace(entries[index], **{field: replacement})
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == index + 1
