"""kiln.jsonlimits: outside JSON is refused past its size and depth limits, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.errors import InputError, KilnError, RemoteContentError
from kiln.jsonlimits import (
    MAX_DEPTH,
    nesting_exceeds,
    parse_json,
    read_json_file,
    stream_nesting_exceeds,
)


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_deep_nesting_is_refused_with_the_documents_name() -> None:
    with pytest.raises(RemoteContentError) as caught:
        parse_json(
            b'{"a":' + _nest(5000) + b"}",
            where="registry r: x@sha256:1",
            max_bytes=1 << 20,
            what="the Sigstore bundle",
            error=RemoteContentError,
        )
    assert str(caught.value) == (
        "registry r: x@sha256:1: the Sigstore bundle nests arrays/objects deeper than "
        f"{MAX_DEPTH} levels"
    )


def test_depth_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    assert parse_json(_nest(10), where="f", max_bytes=100, max_depth=10) == json.loads(_nest(10))
    with pytest.raises(InputError, match="deeper than 9 levels"):
        parse_json(_nest(10), where="f", max_bytes=100, max_depth=9)
    # strings full of brackets and escapes do not count as nesting
    doc = json.dumps([["[[[[", "]]]]", "\\", '"[', "{}{", "\u005b"]]).encode()
    assert parse_json(doc, where="f", max_bytes=1000, max_depth=2)[0][0] == "[[[["
    # closing brackets inside strings cannot hide real nesting
    hidden = b'[[[[[["]]]]]",[[[[[[]]]]]],"[[[[["]]]]]]'
    assert not nesting_exceeds(hidden, 12)
    assert nesting_exceeds(hidden, 11)


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(InputError, match="is 11 bytes, larger than the limit of 10"):
        parse_json(b'"123456789"', where="f", max_bytes=10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'{"a": 1,}',
            r"^f: the JSON document is not JSON: Expecting property name .* at line 1 column 9$",
        ),
        (b"[NaN]", "NaN is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b"1" * 5000, "4300 digits"),
        (b'"\xff"', "is not UTF-8 JSON"),
        (b"", "is not JSON: Expecting value"),
    ],
)
def test_malformed_json_is_an_input_error(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_json(data, where="f", max_bytes=1 << 20)


def test_a_file_over_the_limit_is_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"0," * 1000 + b"0]")
    with pytest.raises(InputError, match=r"big.json: the manifest is larger than the limit of 100"):
        read_json_file(big, max_bytes=100, what="the manifest")
    with pytest.raises(InputError, match="cannot read the manifest"):
        read_json_file(tmp_path / "missing.json", max_bytes=100, what="the manifest")
    assert read_json_file(big, max_bytes=10_000) == [0] * 1001


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(_json, st.integers(min_value=0, max_value=8))
def test_depth_check_agrees_with_the_parsed_value(value: object, limit: int) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    assert nesting_exceeds(data, limit) == (_depth(value) > limit)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_as_kiln_errors(data: bytes) -> None:
    with contextlib.suppress(KilnError):
        parse_json(data, where="f", max_bytes=200, max_depth=8)


@given(_json, st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=64))
def test_the_streamed_depth_check_brackets_the_true_depth(
    value: object, limit: int, chunk: int
) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    exceeds = stream_nesting_exceeds(io.BytesIO(data), limit, chunk=chunk)
    if _depth(value) > limit:
        assert exceeds
    if _depth(value) * 2 <= limit:
        assert not exceeds


def test_the_streamed_depth_check_sees_nesting_across_chunks() -> None:
    deep = b'{"a": "\\\\", "b": "[\\"[", "c": ' + _nest(100_000) + b"}"
    assert stream_nesting_exceeds(io.BytesIO(deep), 128, chunk=7)
    assert not stream_nesting_exceeds(io.BytesIO(_nest(60) * 1000), 128, chunk=7)
