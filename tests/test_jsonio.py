"""The gateway's fast JSON reads and writes what the standard library does (orjson, with fallbacks)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattlens.gateway import jsonio

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_what_it_writes_reads_back_as_the_standard_librarys_form(value: object) -> None:
    assert json.loads(jsonio.dumps(value)) == json.loads(json.dumps(value))
    assert jsonio.loads(json.dumps(value)) == value


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    big = 2**70
    assert jsonio.loads(b'{"n": %d}' % big) == {"n": big}  # beyond 64 bits
    assert json.loads(jsonio.dumps({"n": big})) == {"n": big}
    lone = jsonio.loads(b'{"m": "x\\ud800"}')["m"]  # a lone surrogate: read, then written escaped
    assert lone == "x\ud800" and jsonio.dumps({"m": lone}) == b'{"m":"x\\ud800"}'
    with pytest.raises(RecursionError):
        jsonio.loads(b"[" * 100_000 + b"]" * 100_000)  # the standard library's error, which the gateway answers with 400
    with pytest.raises(ValueError):
        jsonio.loads(b"{not json")
