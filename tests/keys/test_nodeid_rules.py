"""Node IDs: the refusals a person sees, word for word, and where each check is made.

The messages are what `lienthong peers add` and the enrolment page show a clerk who mistyped
an ID (docs/keys.md), so they are pinned here as written.
"""
from __future__ import annotations

import re

import pytest

from lienthong.keys.errors import BadNodeID
from lienthong.keys.nodeid import node_id_from_public_key, parse_node_id, short_id

RFC8032_NODE_ID = "EH7DDX5-BKSRGCK-YTL7BKA-I36SE4E-NXX3KLN-K7ELKS5-YQ57PI7-4XEG4QG"


def _refusal(text: object) -> str:
    with pytest.raises(BadNodeID) as caught:
        parse_node_id(text)  # type: ignore[arg-type]
    return str(caught.value)


def test_non_text_refusal_is_worded() -> None:
    assert _refusal(b"EH7DDX5") == "node ID must be text"
    assert _refusal(None) == "node ID must be text"


def test_wrong_key_length_refusal_is_worded_and_exact() -> None:
    for size in (0, 31, 33, 64):
        with pytest.raises(BadNodeID) as caught:
            node_id_from_public_key(b"\x01" * size)
        assert str(caught.value) == "an Ed25519 public key is 32 bytes"
    assert len(node_id_from_public_key(bytearray(32))) == 63  # any bytes-like of 32 bytes


def test_non_latin_refusal_names_the_text() -> None:
    text = RFC8032_NODE_ID.replace("I", "\u0131")
    assert _refusal(text) == f"{text!r} is not a node ID (it contains non-Latin characters)"


@pytest.mark.parametrize("text", ["", "ABC", RFC8032_NODE_ID + "A", RFC8032_NODE_ID[:-1],
                                  RFC8032_NODE_ID.replace("E", "1", 1),
                                  RFC8032_NODE_ID.replace("E", "8", 1)])
def test_shape_refusal_names_the_text(text: str) -> None:
    assert _refusal(text) == f"{text!r} is not a node ID (56 base32 characters in 8 groups)"


@pytest.mark.parametrize("group", [0, 1, 2, 3])
def test_each_check_character_is_checked_and_named(group: int) -> None:
    """A wrong check character in group k (of four) is reported as check character k + 1."""
    compact = RFC8032_NODE_ID.replace("-", "")
    position = group * 14 + 13
    wrong = "A" if compact[position] != "A" else "B"
    typo = compact[:position] + wrong + compact[position + 1:]
    assert _refusal(typo) == (f"check character {group + 1} of node ID {typo!r} does not "
                              "match; was it read or typed correctly?")


def test_a_data_character_typo_is_caught_by_its_own_group_check() -> None:
    compact = RFC8032_NODE_ID.replace("-", "")
    for group in range(4):
        position = group * 14 + 5
        wrong = "A" if compact[position] != "A" else "B"
        typo = compact[:position] + wrong + compact[position + 1:]
        assert f"check character {group + 1} of" in _refusal(typo)


def test_only_whitespace_and_dashes_are_removed() -> None:
    """Underscores, dots and other separators are not forgiven; tabs and newlines are."""
    assert parse_node_id(RFC8032_NODE_ID.replace("-", "\t")) == RFC8032_NODE_ID
    for separator in ("_", ".", "/", "+"):
        with pytest.raises(BadNodeID):
            parse_node_id(RFC8032_NODE_ID.replace("-", separator))


def test_canonical_form_is_eight_groups_of_seven() -> None:
    parsed = parse_node_id(RFC8032_NODE_ID.replace("-", "").lower())
    assert re.fullmatch(r"([A-Z2-7]{7}-){7}[A-Z2-7]{7}", parsed)
    assert parsed == RFC8032_NODE_ID


def test_short_id_takes_only_the_first_group() -> None:
    assert short_id("AAAAAAA-BBBBBBB-CCCCCCC") == "AAAAAAA"
    assert short_id("AAAAAAA") == "AAAAAAA"
