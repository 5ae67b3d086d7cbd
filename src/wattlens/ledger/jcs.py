"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte-exact form of a record that its Merkle leaf commits to.

A fast path through orjson where its bytes are RFC 8785's, a Python encoder for the rest, and the
`rfc8785` package for the rare value neither covers (tested against it on random values).
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

_SAFE_INT = 2**53
_quote: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring


class _Slow(Exception):
    """A value the fast encoder leaves to the rfc8785 package."""


def entry_bytes(body: object) -> bytes:
    """The canonical form of a record that its leaf commits to: RFC 8785 JSON (UTF-8)."""
    return canonical_text(body).encode("utf-8")


def canonical_text(body: object) -> str:
    """RFC 8785 JSON of a value, as text. ValueError for what has none (NaN, an integer past 2**53).

    A fast encoder covers what records hold (dicts with string keys, lists, strings, safe integers,
    floats, booleans, null) and agrees byte for byte with the `rfc8785` package (tested on random
    values); anything else (a key past U+FFFF, whose UTF-16 order differs, an integer past 2**53,
    a non-string key, another type) goes to the package, after a JSON round trip that makes keys
    strings and tuples lists as `json` does.
    """
    fast = _orjson_form(body)
    if fast is not None:
        return fast
    parts: list[str] = []
    try:
        _encode(body, parts)
    except _Slow:
        import rfc8785  # only for the rare value the fast encoder leaves to it

        plain = json.loads(json.dumps(body, ensure_ascii=False, allow_nan=False))
        return rfc8785.dumps(plain).decode("utf-8")
    return "".join(parts)


# How orjson writes a number that ECMAScript writes otherwise: with an exponent, or as an integral
# float (each after a digit, outside strings). Not ".0" alone: every 0.000x number holds it. The text
# is searched once per pattern on a copy where "}" and "]" read "," and "+" reads "-" (the same
# positions): CPython's search for a short needle runs at about 1.5 bytes/ns, so fewer needles is faster.
_SUSPECTS = (b"e-", b".0,")
_FOLD = bytes.maketrans(b"}]+", b",,-")
_NUMBER_CHARS = frozenset(b"0123456789.-+e")


def _orjson_form(body: object) -> str | None:
    """RFC 8785 text by orjson (in C, several times the Python encoder), or None where it may differ.

    orjson sorts keys by code point and escapes strings as RFC 8785 does, and refuses integers past
    2**53 (OPT_STRICT_INTEGER); it writes some numbers otherwise (100.0, 1e+20, 1e-6), which are
    rewritten here token by token, outside strings only. It is not used where its output could
    differ: NaN or infinity (written as null: a text with null must come back equal from the
    parser), a character past U+FFFF (keys sort by UTF-16 code units there), a subclass or another type.
    """
    import orjson

    opts = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATACLASS
    opts |= orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
    try:
        out = orjson.dumps(body, option=opts, default=_refuse)
        if (not out.isascii() and max(out) >= 0xF0) or (_nulls_beyond(body, out) and orjson.loads(out) != body):
            return None
    except (TypeError, ValueError, _Slow):  # orjson's errors are both
        return None
    probe = (out + b",").translate(_FOLD)  # a top-level number ends the text: a delimiter to be found by
    hits = []
    for lit in _SUSPECTS:
        pos = probe.find(lit)
        while pos > 0:
            hits.append(pos)
            pos = probe.find(lit, pos + 1)
    if not hits:
        return out.decode("utf-8")
    spans = set()
    slashed = b"\\" in out  # one byte: a memchr, where the two-byte searches below are slow
    for pos in hits:
        if 48 <= out[pos - 1] <= 57:  # after a digit: a number, unless inside a string
            if slashed and b"\\\\" in out:  # an escaped backslash: quotes can no longer be counted simply
                return None
            # Inside a string exactly when an odd number of unescaped quotes comes before.
            if (out.count(b'"', 0, pos) - (out.count(b'\\"', 0, pos) if slashed else 0)) % 2 == 0:
                a, b = pos - 1, pos
                while a > 0 and out[a - 1] in _NUMBER_CHARS:
                    a -= 1
                while b < len(out) and out[b] in _NUMBER_CHARS:
                    b += 1
                spans.add((a, b))
    if not spans:
        return out.decode("utf-8")
    pieces, last = [], 0
    for a, b in sorted(spans):
        pieces += [out[last:a], es_number(float(out[a:b])).encode()]
        last = b
    pieces.append(out[last:])
    return b"".join(pieces).decode("utf-8")


def _nulls_beyond(body: object, out: bytes) -> bool:
    """Whether `out` may hold a null that is not one of the body's top-level None values (a nested None,
    "null" inside a string, or a NaN or infinity that orjson wrote as null): only then is the text parsed
    back and compared. Each of those adds an occurrence of "null", so equal counts rule them all out."""
    n = out.count(b"null")
    if not n:
        return False
    return type(body) is not dict or n != list(body.values()).count(None)


def _refuse(v: object) -> object:
    raise _Slow


def _encode(v: Any, out: list[str]) -> None:
    t = type(v)
    if t is str:
        out.append(_quote(v))
    elif t is dict:
        out.append("{")
        first = True
        for k in sorted(v):
            if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                raise _Slow
            if not first:
                out.append(",")
            first = False
            out.append(_quote(k))
            out.append(":")
            _encode(v[k], out)
        out.append("}")
    elif t is list or t is tuple:
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _encode(x, out)
        out.append("]")
    elif t is float:
        r = repr(v)  # between 1e-4 and 1e16 Python and ECMAScript write the same digits
        out.append(r if "e" not in r and not r.endswith(".0") and r not in ("nan", "inf", "-inf") else es_number(v))
    elif t is bool:
        out.append("true" if v else "false")
    elif t is int:
        if -_SAFE_INT < v < _SAFE_INT:
            out.append(str(v))
        else:
            raise _Slow
    elif v is None:
        out.append("null")
    else:
        raise _Slow


def es_number(x: float) -> str:
    """A float as ECMAScript's Number.prototype.toString writes it (RFC 8785 3.2.2.3)."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("RFC 8785 has no form for NaN or infinity")
    if x == 0:
        return "0"
    if x.is_integer() and -_SAFE_INT < x < _SAFE_INT:
        return str(int(x))
    sign = "-" if x < 0 else ""
    mant, _, exp = repr(abs(x)).partition("e")  # repr: the shortest digits that round-trip
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    e10 = (int(exp) if exp else 0) - len(frac)
    stripped = digits.rstrip("0")
    e10 += len(digits) - len(stripped)
    d, k = stripped, len(stripped)
    n = k + e10  # the value is 0.d * 10**n
    if k <= n <= 21:
        return sign + d + "0" * (n - k)
    if 0 < n <= 21:
        return sign + d[:n] + "." + d[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + d
    e = n - 1
    return sign + (d if k == 1 else d[0] + "." + d[1:]) + "e" + ("+" if e >= 0 else "-") + str(abs(e))
