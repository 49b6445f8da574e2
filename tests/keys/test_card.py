"""Peer cards: export, strict reading, and the verification code clerks read aloud."""
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.keys import jws
from lienthong.keys.card import (
    CARD_TYP,
    MAX_ADDRESSES,
    make_card,
    parse_address,
    read_card,
    verification_code,
)
from lienthong.keys.errors import BadCard, InvalidValue
from lienthong.keys.identity import generate_node_keys, rotate_tls_key
from lienthong.keys.nodeid import parse_node_id

NOW = "2025-03-01T08:00:00Z"
ADDRESSES = ["so-tu-phap.example.vn:7443", "10.20.30.40:7443", "[2001:db8::1]:7443"]


def _rng(seed: bytes):
    """Deterministic random_bytes for reproducible keys."""
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


@pytest.fixture(scope="module")
def keys():
    return generate_node_keys("so-tu-phap", now=NOW, random_bytes=_rng(b"card"))


@pytest.fixture(scope="module")
def other():
    return generate_node_keys("ubnd-tinh", now=NOW, random_bytes=_rng(b"other"))


def _payload(keys):
    return dict(jws.decode(make_card(keys, addresses=ADDRESSES, now=NOW), CARD_TYP).payload)


def _resigned(keys, **changes):
    """A card with changed fields, correctly signed by ``keys`` (so only the content is wrong)."""
    payload = _payload(keys)
    payload.update(changes)
    return jws.sign(keys.identity, CARD_TYP, payload, kid=keys.node_id) + "\n"


def test_round_trip(keys):
    """A card reads back to the node's public identity, keys, pin, certificate and addresses."""
    text = make_card(keys, addresses=ADDRESSES, now=NOW)
    assert text.endswith("\n") and text.count("\n") == 1
    card = read_card(text)
    assert card.name == "so-tu-phap" and card.node_id == keys.node_id
    assert card.identity_public == keys.identity_public
    assert card.encryption_kid == keys.current_encryption.kid
    assert card.encryption_public == keys.current_encryption.public_bytes
    assert card.tls_spki_sha256 == keys.tls_spki_sha256
    assert card.tls_cert_der == keys.tls_cert_der
    assert card.addresses == tuple(ADDRESSES) and card.created == NOW
    assert card.token == text.strip()


def test_read_card_forgives_file_noise(keys):
    """A byte-order mark, CRLF and surrounding blank lines (editors, mail) are harmless."""
    text = make_card(keys, addresses=ADDRESSES, now=NOW)
    assert read_card("\ufeff\r\n" + text.replace("\n", "\r\n") + "\n\n").node_id == keys.node_id
    assert read_card(text.encode()).node_id == keys.node_id


def test_tampered_field_refused(keys, other):
    """Changing any field without re-signing breaks the self-signature."""
    token = make_card(keys, addresses=ADDRESSES, now=NOW).strip()
    header, _, signature = token.split(".")
    for change in ({"addresses": ["evil.example:7443"]}, {"name": "ubnd-tinh"},
                   {"encryption": _payload(other)["encryption"]}):
        payload = _payload(keys)
        payload.update(change)
        forged = f"{header}.{jws.b64url_encode(jws.canonical_json(payload))}.{signature}"
        with pytest.raises(BadCard, match="changed after it was signed"):
            read_card(forged)


def test_identity_swapped_card_refused(keys, other):
    """Someone else's identity key with this node's ID is refused with both IDs named."""
    forged = _resigned(other, node_id=keys.node_id)
    with pytest.raises(BadCard) as info:
        read_card(forged)
    assert (f"card claims node ID {keys.node_id} but its key gives {other.node_id}"
            in str(info.value))


def test_signature_kid_must_be_node_id(keys):
    """A card whose JWS kid is not its node ID is refused."""
    forged = jws.sign(keys.identity, CARD_TYP, _payload(keys), kid="someone") + "\n"
    with pytest.raises(BadCard, match="names key"):
        read_card(forged)


def test_malformed_node_id_refused(keys):
    """A node ID that does not parse is refused."""
    with pytest.raises(BadCard, match="not well formed"):
        read_card(_resigned(keys, node_id="ABC"))


def test_lowercase_node_id_is_accepted_and_canonicalised(keys):
    """The claimed node ID is compared in canonical form."""
    assert read_card(_resigned(keys, node_id=keys.node_id.lower())).node_id == keys.node_id


def test_wrong_tls_pin_refused(keys):
    """A pin that does not match the card's certificate is refused."""
    with pytest.raises(BadCard, match="TLS pin"):
        read_card(_resigned(keys, tls_spki_sha256="0" * 64))


def test_certificate_for_another_key_refused(keys):
    """A certificate for another TLS key does not match the pinned key."""
    rotated = rotate_tls_key(keys, random_bytes=_rng(b"x"))
    with pytest.raises(BadCard, match="TLS pin"):
        read_card(_resigned(keys, tls_cert=jws.b64url_encode(rotated.tls_cert_der)))


def test_unreadable_certificate_refused(keys):
    """Certificate bytes that are not DER are refused."""
    with pytest.raises(BadCard, match="certificate cannot be read"):
        read_card(_resigned(keys, tls_cert=jws.b64url_encode(b"junk")))


def test_encryption_key_checked(keys):
    """A wrong encryption key ID or a key of the wrong size is refused."""
    public = _payload(keys)["encryption"]["public"]
    with pytest.raises(BadCard, match="key ID"):
        read_card(_resigned(keys, encryption={"kid": "0" * 16, "public": public}))
    with pytest.raises(BadCard, match="32 bytes"):
        read_card(_resigned(keys, encryption={"kid": "0" * 16, "public": jws.b64url_encode(b"x")}))


@pytest.mark.parametrize("addresses", [
    ["nohost"], ["host:0"], ["host:65536"], ["host:07443"], ["host:port"], [":7443"],
    ["2001:db8::1:7443"], ["[2001:db8::1]7443"], ["[fe80::1%eth0]:7443"], ["-bad-.vn:7443"],
    ["a..b:7443"], ["10.0.0.256:7443"], ["host.123:7443"], ["dup.vn:1", "dup.vn:1"],
    ["x" * 300 + ":1"], "host:1", [7443], [f"h{i}.vn:1" for i in range(MAX_ADDRESSES + 1)],
])
def test_bad_addresses_refused(keys, addresses):
    """Malformed, out-of-range, duplicated or too many addresses make the card unusable."""
    with pytest.raises(BadCard, match="address"):
        read_card(_resigned(keys, addresses=addresses))


@pytest.mark.parametrize("name", ["Sở Tư Pháp", "../etc", "", "A" * 65, ".hidden", "con", 5])
def test_bad_names_refused(keys, name):
    """A name that could not safely be a folder name is refused, saying the office must rename."""
    with pytest.raises(BadCard, match="name"):
        read_card(_resigned(keys, name=name))


@pytest.mark.parametrize("changes", [{"v": 2}, {"extra": True}, {"created": "yesterday"},
                                     {"identity": "AAAA"}])
def test_unknown_layout_or_bad_field_refused(keys, changes):
    """Another version, an unknown field, a bad time or a short identity key is refused."""
    with pytest.raises(BadCard):
        read_card(_resigned(keys, **changes))


def test_missing_field_refused(keys):
    """A card without its addresses field is refused."""
    payload = _payload(keys)
    del payload["addresses"]
    with pytest.raises(BadCard, match="layout"):
        read_card(jws.sign(keys.identity, CARD_TYP, payload, kid=keys.node_id))


@pytest.mark.parametrize("text", ["", "hello", "a.b.c", "\xff", b"\xff\xfe", "x" * 40000])
def test_not_a_card(text):
    """Random files are refused with BadCard, never another exception."""
    with pytest.raises(BadCard):
        read_card(text)


def test_other_signed_object_is_not_a_card(keys):
    """A binding or receipt token is not accepted as a card (typ differs)."""
    token = jws.sign(keys.identity, "lienthong-binding/1", _payload(keys), kid=keys.node_id)
    with pytest.raises(BadCard, match="not a lienthong peer card"):
        read_card(token)


def test_make_card_validates_input(keys):
    """A card with a bad address or time cannot be made."""
    with pytest.raises(InvalidValue):
        make_card(keys, addresses=["nope"], now=NOW)
    with pytest.raises(InvalidValue):
        make_card(keys, addresses=ADDRESSES, now="today")


def test_card_without_addresses(keys):
    """A node that only dials out may publish no address."""
    assert read_card(make_card(keys, addresses=[], now=NOW)).addresses == ()


@pytest.mark.parametrize("text, expected", [
    ("example.vn:7443", ("example.vn", 7443)), ("10.0.0.1:1", ("10.0.0.1", 1)),
    ("[::1]:65535", ("::1", 65535)), ("Host-1.Example.VN.:22", ("Host-1.Example.VN.", 22)),
])
def test_parse_address(text, expected):
    """Host names, IPv4 and bracketed IPv6 with ports 1-65535 parse."""
    assert parse_address(text) == expected


def test_verification_code_is_symmetric(keys, other):
    """Both clerks compute the same code whatever the order, and it has six groups of digits."""
    code = verification_code(keys.node_id, other.node_id)
    assert code == verification_code(other.node_id, keys.node_id)
    groups = code.split(" ")
    assert len(groups) == 6 and all(len(g) == 3 and g.isdigit() for g in groups)


def test_verification_code_depends_on_both_ids(keys, other):
    """A third node's ID gives another code; spelling of the IDs does not matter."""
    third = generate_node_keys("third", now=NOW, random_bytes=_rng(b"3"))
    code = verification_code(keys.node_id, other.node_id)
    assert verification_code(keys.node_id, third.node_id) != code
    assert verification_code(keys.node_id.lower(), other.node_id.replace("-", "")) == code


FROZEN_CODE = "181 924 866 177 423 760"


def test_verification_code_known_answer():
    """A frozen vector: the code for two fixed IDs never changes."""
    a = "EH7DDX5-BKSRGCK-YTL7BKA-I36SE4E-NXX3KLN-K7ELKS5-YQ57PI7-4XEG4QG"
    b = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
    ids = sorted([parse_node_id(a), parse_node_id(b)])
    digest = hashlib.sha256(b"lienthong-verification-code/1\x00"
                            + "\x00".join(ids).encode()).digest()
    digits = f"{int.from_bytes(digest[:16], 'big') % 10 ** 18:018d}"
    assert verification_code(a, b) == " ".join(digits[i:i + 3] for i in range(0, 18, 3))
    assert verification_code(a, b) == FROZEN_CODE



CARD_FIELDS = ["v", "name", "node_id", "identity", "encryption", "tls_spki_sha256", "tls_cert",
               "addresses", "created"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children,
                                                                     max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(CARD_FIELDS), value=_JSON)
def test_any_signed_field_value_only_raises_bad_card(keys, field, value):
    """A correctly signed card with any JSON value in any field is read or refused with BadCard."""
    try:
        card = read_card(_resigned(keys, **{field: value}))
    except BadCard:
        return
    assert card.node_id == keys.node_id


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400) | st.binary(max_size=400))
def test_arbitrary_text_only_raises_bad_card(text):
    """Whatever a clerk feeds in, read_card raises only BadCard."""
    with pytest.raises(BadCard):
        read_card(text)
