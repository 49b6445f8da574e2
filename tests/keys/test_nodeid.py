"""Node IDs: encoding, check characters, and what a person may get wrong."""
import base64
import hashlib

import pytest

from lienthong.keys.errors import BadNodeID
from lienthong.keys.nodeid import ALPHABET, node_id_from_public_key, parse_node_id, short_id

# RFC 8032 §7.1 test 1 public key, and its node ID (frozen: changing it breaks every peer).
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_NODE_ID = "EH7DDX5-BKSRGCK-YTL7BKA-I36SE4E-NXX3KLN-K7ELKS5-YQ57PI7-4XEG4QG"
# Syncthing's published device ID and the 32 bytes it encodes (lib/protocol tests).
SYNCTHING_ID = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
SYNCTHING_BYTES = bytes.fromhex("7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205")


def _data_chars(node_id: str) -> str:
    compact = node_id.replace("-", "")
    return "".join(compact[i * 14:i * 14 + 13] for i in range(4))


def test_known_answer_rfc8032_key():
    """The node ID of a fixed public key never changes."""
    assert node_id_from_public_key(RFC8032_PUBLIC) == RFC8032_NODE_ID


def test_data_characters_are_base32_of_sha256():
    """Stripping the check characters leaves the base32 SHA-256 of the public key."""
    data = _data_chars(RFC8032_NODE_ID) + "===="
    assert base64.b32decode(data) == hashlib.sha256(RFC8032_PUBLIC).digest()


def test_check_characters_agree_with_syncthing():
    """Syncthing's published device ID parses, so our Luhn mod-32 matches theirs."""
    assert parse_node_id(SYNCTHING_ID) == SYNCTHING_ID
    assert base64.b32decode(_data_chars(SYNCTHING_ID) + "====") == SYNCTHING_BYTES


def test_round_trip_many_keys():
    """Every generated ID is canonical: parsing it returns it unchanged."""
    for i in range(50):
        node_id = node_id_from_public_key(hashlib.sha256(bytes([i])).digest())
        assert parse_node_id(node_id) == node_id
        assert len(node_id) == 63 and node_id.count("-") == 7


def test_every_single_character_substitution_is_detected():
    """Replacing any one character of a sample ID by any other letter is refused."""
    compact = RFC8032_NODE_ID.replace("-", "")
    for position in range(len(compact)):
        for replacement in ALPHABET:
            if replacement == compact[position]:
                continue
            typo = compact[:position] + replacement + compact[position + 1:]
            with pytest.raises(BadNodeID):
                parse_node_id(typo)


def test_case_spaces_and_dashes_are_forgiven():
    """Lowercase, spaces, missing or extra dashes still give the canonical ID."""
    compact = RFC8032_NODE_ID.replace("-", "")
    for text in (RFC8032_NODE_ID.lower(), compact, " ".join(RFC8032_NODE_ID.split("-")),
                 "  " + RFC8032_NODE_ID + "\n",
                 "--".join(compact[i:i + 4] for i in range(0, 56, 4)),
                 RFC8032_NODE_ID.replace("-", "\u00a0")):
        assert parse_node_id(text) == RFC8032_NODE_ID


@pytest.mark.parametrize("text", [
    "", "ABC", RFC8032_NODE_ID + "A", RFC8032_NODE_ID[:-1], RFC8032_NODE_ID.replace("E", "1", 1),
    RFC8032_NODE_ID.replace("I", "\u0131"),  # dotless i upper-cases to I: look-alike refused
])
def test_malformed_ids_are_refused(text):
    """Wrong length, characters outside base32 and Unicode look-alikes are refused."""
    with pytest.raises(BadNodeID):
        parse_node_id(text)


def test_ligature_that_uppercases_to_two_letters_is_refused():
    """An ID containing "FF" written with the U+FB00 ligature is refused, not expanded."""
    for i in range(10_000):
        node_id = node_id_from_public_key(hashlib.sha256(i.to_bytes(4, "big")).digest())
        if "FF" in node_id:
            break
    lookalike = node_id.replace("FF", "\ufb00", 1).lower()
    assert lookalike.upper() == node_id  # so upper-casing first would have accepted it
    with pytest.raises(BadNodeID):
        parse_node_id(lookalike)


def test_non_text_and_wrong_key_length_refused():
    """Only text parses, and only 32-byte keys have an ID."""
    with pytest.raises(BadNodeID):
        parse_node_id(b"EH7DDX5")  # type: ignore[arg-type]
    with pytest.raises(BadNodeID):
        node_id_from_public_key(b"\x00" * 31)


def test_short_id_is_first_group():
    """The short form is the first group of seven characters."""
    assert short_id(RFC8032_NODE_ID) == "EH7DDX5"
