"""JWS rules a mutation run found unpinned (issue 22): tokens given as bytes, NaN and Infinity
on signing, floats, the base64url round trip, the size limit at its boundary, and the exact
refusals of the strict JSON parser."""
from __future__ import annotations

import math
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lienthong.keys import jws
from lienthong.keys.errors import BadSignature, MalformedToken, WrongType
from tests.keys.test_jws import KEY, OTHER, PAYLOAD, TYP, _token

URL_ALPHABET = set(string.ascii_letters + string.digits + "-_")


def test_a_valid_token_given_as_bytes_verifies() -> None:
    token = jws.sign(KEY, TYP, PAYLOAD, kid="k1")
    assert jws.verify(token.encode("ascii"), KEY.verify_key, TYP) == PAYLOAD
    decoded = jws.decode(token.encode("ascii"), TYP)
    assert decoded.token == token and decoded.kid == "k1"
    assert decoded.header == {"alg": "EdDSA", "kid": "k1", "typ": TYP}
    assert decoded.signing_input == token.rsplit(".", 1)[0].encode("ascii")
    assert len(decoded.signature) == 64


def test_bytes_that_are_not_ascii_and_values_that_are_not_text_are_refused() -> None:
    token = jws.sign(KEY, TYP, PAYLOAD, kid="k1")
    with pytest.raises(MalformedToken, match=r"^token must be ASCII$"):
        jws.decode(token.encode("ascii") + "é".encode(), TYP)
    with pytest.raises(MalformedToken, match=r"^token must be text$"):
        jws.decode(7, TYP)  # type: ignore[arg-type]


def test_surrounding_whitespace_is_ignored() -> None:
    """A token read from a file keeps working with its trailing newline."""
    token = jws.sign(KEY, TYP, PAYLOAD, kid="k1")
    decoded = jws.decode(f"  {token}\n", TYP)
    assert decoded.token == token
    assert jws.verify(f"{token}\r\n".encode(), KEY.verify_key, TYP) == PAYLOAD


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_on_signing(value: float) -> None:
    """We never sign what we would refuse to read."""
    with pytest.raises(ValueError):
        jws.canonical_json({"x": value})
    with pytest.raises(ValueError):
        jws.sign(KEY, TYP, {"nested": [1, value]}, kid="k")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_constants_are_refused_on_reading(literal: str) -> None:
    with pytest.raises(MalformedToken, match=rf"^JSON constant {literal} is not allowed$"):
        jws.strict_json_object(f'{{"x":{literal}}}'.encode())


@pytest.mark.parametrize("literal", ["1e999", "-1e999", "1.5e400"])
def test_overflowing_numbers_are_refused_on_reading(literal: str) -> None:
    with pytest.raises(MalformedToken, match=rf"^JSON number {literal} is out of range$"):
        jws.strict_json_object(f'{{"x":{literal}}}'.encode())


def test_floats_survive_a_round_trip() -> None:
    payload = {"a": 2.5, "b": 1e-7, "c": -1.7976931348623157e308, "d": 0.1, "e": 3.0}
    token = jws.sign(KEY, TYP, payload, kid="k")
    out = jws.verify(token, KEY.verify_key, TYP)
    assert out == payload
    assert all(type(out[key]) is float for key in payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
@example(b"\x00\x00\x17")        # encodes as "AAAX": a last character that is a letter
@example(b"\xff\xef")             # "_-8": both URL-safe characters
def test_base64url_round_trips_any_bytes(data: bytes) -> None:
    text = jws.b64url_encode(data)
    assert set(text) <= URL_ALPHABET
    assert len(text) == math.ceil(len(data) * 4 / 3)
    assert jws.b64url_decode(text) == data


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_round_trips(value: float) -> None:
    assert jws.strict_json_object(jws.canonical_json({"x": value})) == {"x": value}


def test_base64url_refuses_what_is_not_text_or_not_ascii() -> None:
    with pytest.raises(MalformedToken, match=r"^base64url text must be unpadded$"):
        jws.b64url_decode(b"AAAA")  # type: ignore[arg-type]
    with pytest.raises(MalformedToken, match=r"^base64url text must be unpadded$"):
        jws.b64url_decode("AA==")
    with pytest.raises(MalformedToken, match=r"^base64url text must be ASCII$"):
        jws.b64url_decode("AAé")
    # A character outside the alphabet is refused as such, not skipped (validate=True).
    with pytest.raises(MalformedToken, match=r"^not base64url: Only base64 data is allowed$"):
        jws.b64url_decode("AAA!")
    with pytest.raises(MalformedToken, match=r"^non-canonical base64url$"):
        jws.b64url_decode("AA+/")   # the standard alphabet's spelling of "AA-_"
    with pytest.raises(MalformedToken, match=r"^non-canonical base64url$"):
        jws.b64url_decode("AB")
    assert jws.b64url_decode("") == b""
    assert jws.b64url_decode("_-8") == b"\xff\xef"


def _token_of_length(length: int) -> str:
    """A validly signed token of exactly ``length`` characters (one signature, no search by
    signing: the lengths of the base64url parts follow from the JSON lengths)."""
    for kid_size in range(1, 8):
        kid = "k" * kid_size
        head = len(jws.b64url_encode(jws.canonical_json({"alg": "EdDSA", "kid": kid,
                                                         "typ": TYP})))
        body = length - head - 2 - 86          # two dots, a 64-byte signature
        json_bytes = body * 3 // 4             # '{"pad":"' + pad + '"}' is pad + 10 bytes
        if math.ceil(json_bytes * 4 / 3) == body:
            token = jws.sign(KEY, TYP, {"pad": "x" * (json_bytes - 10)}, kid=kid)
            assert len(token) == length
            return token
    raise AssertionError(f"no token of {length} characters")


def test_size_limit_is_inclusive() -> None:
    """A token of exactly MAX_TOKEN_BYTES is read; one character more is refused."""
    assert jws.MAX_TOKEN_BYTES == 1024 * 1024
    token = _token_of_length(jws.MAX_TOKEN_BYTES)
    assert jws.verify(token, KEY.verify_key, TYP)["pad"].startswith("x")
    longer = _token_of_length(jws.MAX_TOKEN_BYTES + 1)
    with pytest.raises(MalformedToken, match=r"^token longer than 1048576 bytes$"):
        jws.decode(longer, TYP)


def test_header_refusals_name_the_reason() -> None:
    with pytest.raises(MalformedToken, match=r"^unsupported alg None; only EdDSA is accepted$"):
        jws.decode(_token({"typ": TYP}, PAYLOAD), TYP)
    with pytest.raises(MalformedToken, match=r"^unsupported alg 'HS256'; only EdDSA is accepted$"):
        jws.decode(_token({"alg": "HS256", "typ": TYP}, PAYLOAD), TYP)
    with pytest.raises(MalformedToken, match=r"^critical header parameters are not supported$"):
        jws.decode(_token({"alg": "EdDSA", "typ": TYP, "crit": []}, PAYLOAD), TYP)
    with pytest.raises(WrongType, match=r"^expected a 'lienthong-test/1' object, got 'other/1'$"):
        jws.decode(_token({"alg": "EdDSA", "typ": "other/1"}, PAYLOAD), TYP)
    with pytest.raises(WrongType, match=r"^expected a 'lienthong-test/1' object, got None$"):
        jws.decode(_token({"alg": "EdDSA"}, PAYLOAD), TYP)
    with pytest.raises(MalformedToken,
                       match=r"^JWS compact serialization has exactly three parts$"):
        jws.decode("a.b", TYP)
    with pytest.raises(MalformedToken,
                       match=r"^JWS compact serialization has exactly three parts$"):
        jws.decode("a.b.c.d", TYP)
    head, payload, _ = jws.sign(KEY, TYP, PAYLOAD, kid="k").split(".")
    with pytest.raises(MalformedToken, match=r"^an Ed25519 signature is 64 bytes$"):
        jws.decode(f"{head}.{payload}.{jws.b64url_encode(bytes(65))}", TYP)


def test_kid_that_is_not_text_reads_as_none() -> None:
    decoded = jws.decode(_token({"alg": "EdDSA", "typ": TYP, "kid": 5}, PAYLOAD), TYP)
    assert decoded.kid is None
    assert jws.decode(_token({"alg": "EdDSA", "typ": TYP}, PAYLOAD), TYP).kid is None


def test_bad_signature_names_the_type() -> None:
    token = jws.sign(KEY, TYP, PAYLOAD, kid="k")
    with pytest.raises(BadSignature, match=f"^{TYP} signature does not verify$"):
        jws.verify(token, OTHER.verify_key, TYP)
    assert jws.verify_decoded(jws.decode(token, TYP), KEY.verify_key) == PAYLOAD


def test_signature_covers_exactly_the_signing_input() -> None:
    token = jws.sign(KEY, TYP, PAYLOAD, kid="k")
    head, payload, signature = token.split(".")
    assert head == jws.b64url_encode(b'{"alg":"EdDSA","kid":"k","typ":"lienthong-test/1"}')
    assert payload == jws.b64url_encode(jws.canonical_json(PAYLOAD))
    KEY.verify_key.verify(f"{head}.{payload}".encode(), jws.b64url_decode(signature))


def test_strict_json_refusals_name_the_reason() -> None:
    with pytest.raises(MalformedToken, match=r"^duplicate JSON member 'a'$"):
        jws.strict_json_object(b'{"a":1,"a":2}')
    with pytest.raises(MalformedToken, match=r"^JSON value must be an object$"):
        jws.strict_json_object(b"[1]")
    with pytest.raises(MalformedToken, match=r"^not valid JSON: "):
        jws.strict_json_object(b'{"a":"\xff"}')
    with pytest.raises(MalformedToken, match=r"^not valid JSON: "):
        jws.strict_json_object(b'{"a":1')
    with pytest.raises(MalformedToken, match=r"^not valid JSON: "):
        jws.strict_json_object(b"[" * 100_000 + b"]" * 100_000)
    assert jws.strict_json_object(b'{"a":[1,{"b":null}],"c":1.5}') == {
        "a": [1, {"b": None}], "c": 1.5}


def test_canonical_json_spelling() -> None:
    assert jws.canonical_json({"b": [1, 2.5], "a": {"d": None, "c": True}, "é": "ệ"}) == \
        '{"a":{"c":true,"d":null},"b":[1,2.5],"é":"ệ"}'.encode()
