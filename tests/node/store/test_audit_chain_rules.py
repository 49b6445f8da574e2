"""Rules of the audit chain that a mutation run found unpinned (issue 22).

Each test here fails when one rule of ``verify_chain`` or ``canonical_detail`` is deleted or
bent: the ``prev_hash`` link, the "out of order" branch, the exact gap messages, and the
stored text of lists and of undecodable file names.
"""
from __future__ import annotations

import dataclasses

import pytest

from lienthong.node.store.audit_chain import (
    GENESIS_HASH,
    AuditEntry,
    ChainBroken,
    SignedHead,
    canonical_detail,
    entry_hash,
    verify_chain,
)
from tests.node.store.test_audit_chain import make_chain


def test_a_broken_prev_hash_link_is_caught_at_the_next_entry() -> None:
    """Entry 3 edited and only its own hash recomputed: its hash is right, but entry 4's
    ``prev_hash`` still names the old entry 3, and only the link check sees it."""
    entries = make_chain(5)
    forged = dataclasses.replace(entries[2], detail_json=canonical_detail({"n": 99}))
    entries[2] = dataclasses.replace(forged,
                                     hash=entry_hash(forged.prev_hash, forged.hashed_fields()))
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries)
    assert caught.value.seq == 4
    assert caught.value.why == ("prev_hash does not match the entry before it "
                                "(an entry was deleted, inserted or reordered)")


def test_first_entry_must_link_to_the_genesis_hash() -> None:
    """A first entry whose prev_hash is not 64 zeros (hash recomputed over it) is refused."""
    entry = make_chain(1)[0]
    entry = dataclasses.replace(entry, prev_hash="1" * 64)
    entry = dataclasses.replace(entry, hash=entry_hash(entry.prev_hash, entry.hashed_fields()))
    with pytest.raises(ChainBroken) as caught:
        verify_chain([entry])
    assert caught.value.seq == 1 and "prev_hash" in caught.value.why


@pytest.mark.parametrize("repeat", [2, 3])
def test_an_entry_repeated_or_earlier_is_out_of_order(repeat: int) -> None:
    """An entry whose seq is not above the one before it (a copy of it, or an earlier one)
    is reported as out of order at that entry, naming the entry it follows."""
    entries = make_chain(3)
    broken = entries + [entries[repeat - 1]]
    with pytest.raises(ChainBroken) as caught:
        verify_chain(broken)
    assert caught.value.seq == repeat
    assert caught.value.why == "out of order: follows entry 3"
    assert str(caught.value) == f"audit entry {repeat}: out of order: follows entry 3"
    assert caught.value.code == "audit-chain-broken"


def test_a_gap_of_several_entries_names_the_range() -> None:
    """Entries 2 to 4 deleted: reported at entry 5 as the range 2..4."""
    entries = make_chain(5)
    with pytest.raises(ChainBroken) as caught:
        verify_chain([entries[0], entries[4]])
    assert caught.value.seq == 5
    assert caught.value.why == "entries 2..4 are missing (deleted?)"


def test_a_gap_of_one_entry_names_it() -> None:
    entries = make_chain(3)
    with pytest.raises(ChainBroken) as caught:
        verify_chain([entries[0], entries[2]])
    assert caught.value.why == "entry 2 is missing (deleted?)"


def test_the_tip_is_the_last_entry_verified() -> None:
    """The returned (seq, hash) is the last entry's, also when starting after a page."""
    entries = make_chain(4)
    assert verify_chain(entries[:2]) == (2, entries[1].hash)
    assert verify_chain(entries[2:], after=(2, entries[1].hash)) == (4, entries[3].hash)
    assert verify_chain([], after=(7, "a" * 64)) == (7, "a" * 64)


def test_a_head_that_matches_passes_and_one_that_does_not_names_its_time() -> None:
    entries = make_chain(3)
    good = SignedHead(seq=2, hash=entries[1].hash, time="2026-01-01T10:00:00Z")
    assert verify_chain(entries, heads=[good]) == (3, entries[2].hash)
    bad = SignedHead(seq=2, hash="f" * 64, time="2026-01-01T10:00:00Z")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries, heads=[bad])
    assert caught.value.seq == 2
    assert caught.value.why == ("does not match the head signed at 2026-01-01T10:00:00Z "
                                "(the log was rewritten)")


def test_a_cut_log_names_the_last_head_beyond_it() -> None:
    """Heads at 4 and 5 beyond a log cut after 3: reported at 4, naming the furthest head;
    with final=False (a page in the middle) nothing is reported yet."""
    entries = make_chain(5)
    heads = [SignedHead(seq=seq, hash=entries[seq - 1].hash, time="t") for seq in (4, 5)]
    assert verify_chain(entries[:3], heads=heads, final=False) == (3, entries[2].hash)
    with pytest.raises(ChainBroken) as caught:
        verify_chain(entries[:3], heads=heads)
    assert caught.value.seq == 4
    assert caught.value.why == ("entries after 3 are missing: a head was signed at entry 5 "
                                "(the log was cut short)")


def test_a_head_at_or_before_the_start_is_not_a_cut() -> None:
    """A head at an entry already verified by an earlier page is not 'beyond' this one, even
    when this page is empty and the head is at the very entry it starts after."""
    entries = make_chain(4)
    head = SignedHead(seq=2, hash=entries[1].hash, time="t")
    assert verify_chain(entries[2:], after=(2, entries[1].hash), heads=[head]) == \
        (4, entries[3].hash)
    assert verify_chain([], after=(2, entries[1].hash), heads=[head]) == (2, entries[1].hash)


def test_each_kind_of_edit_says_what_was_found() -> None:
    """The reason shown by `audit verify` for an edited entry, word for word."""
    entries = make_chain(2)
    cases = {
        "detail is not in canonical form (edited)":
            dataclasses.replace(entries[0], detail_json=entries[0].detail_json + " "),
        "content does not match its hash (edited)":
            dataclasses.replace(entries[0], kind="forged"),
    }
    for why, edited in cases.items():
        with pytest.raises(ChainBroken) as caught:
            verify_chain([edited, entries[1]])
        assert (caught.value.seq, caught.value.why) == (1, why)
    garbage = dataclasses.replace(entries[0], detail_json="{not json")
    with pytest.raises(ChainBroken) as caught:
        verify_chain([garbage])
    assert caught.value.why.startswith("detail is not valid JSON (edited): not valid JSON")


def test_canonical_detail_of_nothing_is_an_empty_object() -> None:
    assert canonical_detail(None) == "{}"
    assert canonical_detail({}) == "{}"


def test_canonical_detail_keeps_list_items_and_nested_objects() -> None:
    """Lists and tuples are stored as JSON arrays with every item kept, nested values too."""
    detail = {"names": ["a.pdf", "b\udcff.pdf", ("x", 1, None, True)],
              "inner": {"z": [2.5, {"k": "v"}], "a": "\u00e9"}}
    assert canonical_detail(detail) == (
        '{"inner":{"a":"é","z":[2.5,{"k":"v"}]},'
        '"names":["a.pdf","b\\\\xff.pdf",["x",1,null,true]]}')


def test_canonical_detail_escapes_undecodable_bytes() -> None:
    """A name with undecodable bytes (lone surrogates from the OS) keeps them as \\xNN text;
    a surrogate that no byte produced is kept as \\uNNNN text; keys are escaped as values."""
    assert canonical_detail({"name": "b\udcff\udc80.pdf"}) == '{"name":"b\\\\xff\\\\x80.pdf"}'
    assert canonical_detail({"name": "x\ud800y"}) == '{"name":"x\\\\ud800y"}'
    assert canonical_detail({"t\udcfe": 1}) == '{"t\\\\xfe":1}'
    assert canonical_detail({"ok": "Công văn"}) == '{"ok":"Công văn"}'


def test_an_entry_with_an_escaped_name_verifies() -> None:
    """The escaped text is what the chain hashes and checks as canonical."""
    detail_json = canonical_detail({"name": "b\udcff.pdf"})
    fields = {"seq": 1, "time": "2026-01-01T09:00:00Z", "kind": "refused", "peer": None,
              "message_id": None, "digest": None, "detail": {"name": "b\\xff.pdf"}}
    entry = AuditEntry(seq=1, time=fields["time"], kind="refused", peer=None, message_id=None,
                       digest=None, detail_json=detail_json, prev_hash=GENESIS_HASH,
                       hash=entry_hash(GENESIS_HASH, fields))
    assert verify_chain([entry]) == (1, entry.hash)
