"""The gateway's fast path: orjson reads and writes what the standard library does;
streams are written once per network read."""

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
    big = 2**70 + 1
    assert jsonio.loads(b'{"n": %d}' % big) == {"n": big}  # beyond 64 bits (orjson would give a float)
    assert jsonio.loads(b"[%d]" % -(2**63 + 1)) == [-(2**63 + 1)] and jsonio.loads(str(-(10**20))) == -(10**20)
    assert type(jsonio.loads(b"[%d]" % (2**63 - 1))[0]) is int
    assert json.loads(jsonio.dumps({"n": big})) == {"n": big}
    lone = jsonio.loads(b'{"m": "x\\ud800"}')["m"]  # a lone surrogate: read, then written escaped
    assert lone == "x\ud800" and jsonio.dumps({"m": lone}) == b'{"m":"x\\ud800"}'
    with pytest.raises(RecursionError):
        jsonio.loads(b"[" * 100_000 + b"]" * 100_000)  # the standard library's error, which the gateway answers with 400
    with pytest.raises(ValueError):
        jsonio.loads(b"{not json")


def test_a_stream_is_split_into_lines_with_the_end_of_each_network_read_marked() -> None:
    import asyncio

    from wattlens.gateway.transport import MAX_LINE_BYTES, _AiohttpStream

    class Content:
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        async def iter_any(self):  # type: ignore[no-untyped-def]
            for c in self.chunks:
                yield c

    class Reply:
        status = 200

        def __init__(self, chunks: list[bytes]) -> None:
            self.content = Content(chunks)

    async def lines(chunks: list[bytes]) -> list[str | None]:
        return [x async for x in _AiohttpStream(Reply(chunks)).lines()]

    # two whole events in one read, then one split across two reads, then an unterminated tail
    got = asyncio.run(lines([b"data: a\n\ndata: b\n\n", b"data: c", b"c\n\n", b"data: d"]))
    assert got == ["data: a", "", "data: b", "", None, "data: cc", "", None, "data: d"]
    with pytest.raises(ValueError):
        asyncio.run(lines([b"data: " + b"x" * (MAX_LINE_BYTES + 1)]))
    with pytest.raises(ValueError):
        asyncio.run(lines([b"data: " + b"x" * (MAX_LINE_BYTES + 1) + b"\n\n"]))
