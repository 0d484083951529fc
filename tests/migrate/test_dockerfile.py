"""The Dockerfile reader: BuildKit's parse, and the exact span of every FROM image."""

from __future__ import annotations

import pytest

from kiln.errors import InputError
from kiln.migrate import parse_dockerfile


def _image_at(text: str, index: int = 0) -> str:
    span = parse_dockerfile(text).stages[index].origin.span
    assert span is not None
    return text[span.start : span.end]


def test_stages_names_and_bodies() -> None:
    text = (
        "ARG V=3.13\n"
        "FROM python:${V}-slim AS Build\n"
        "RUN echo hi\n"
        "from build\n"
        "COPY --from=build /a /b\n"
        'CMD ["x"]\n'
    )
    parsed = parse_dockerfile(text)
    assert [s.origin.image for s in parsed.stages] == ["python:${V}-slim", "build"]
    assert parsed.stages[0].origin.stage_name == "Build"
    assert [i.keyword for i in parsed.stages[1].body] == ["COPY", "CMD"]
    assert parsed.stages[1].body[1].json_form
    arg = parsed.global_arg("V")
    assert arg is not None
    assert (arg.line, arg.default) == (1, "3.13")


def test_heredoc_content_is_not_an_instruction() -> None:
    text = "FROM a:1\nRUN <<EOT\nFROM b:2\nEOT\nFROM c:3\n"
    parsed = parse_dockerfile(text)
    assert [s.origin.image for s in parsed.stages] == ["a:1", "c:3"]
    assert parsed.stages[1].origin.line == 5


def test_span_skips_flags_and_keeps_exact_offsets() -> None:
    text = "# comment\n  from \t--platform=linux/amd64   python:3.13-slim  as  x  \n"
    origin = parse_dockerfile(text).stages[0].origin
    assert origin.flags_platform == "--platform=linux/amd64"
    assert origin.span is not None
    assert (origin.span.line, origin.span.column) == (2, 34)
    assert _image_at(text) == "python:3.13-slim"


def test_continuation_with_comment_lines_inside() -> None:
    text = "FROM \\\n  # a comment inside the continuation\n\n    python:3.13 \\\n AS x\n"
    origin = parse_dockerfile(text).stages[0].origin
    assert origin.span is not None
    assert origin.span.line == 4
    assert _image_at(text) == "python:3.13"
    assert origin.stage_name == "x"


def test_escape_directive_backtick() -> None:
    text = "# escape=`\nFROM `\n  mcr.example/windows:ltsc2022\n"
    parsed = parse_dockerfile(text)
    assert parsed.escape == "`"
    assert _image_at(text) == "mcr.example/windows:ltsc2022"


def test_byte_order_mark_and_crlf() -> None:
    text = "\ufeffFROM python:3.13\r\nRUN x \\\r\n  y\r\nFROM node:20\r\n"
    assert _image_at(text, 0) == "python:3.13"
    assert _image_at(text, 1) == "node:20"
    origin = parse_dockerfile(text).stages[0].origin
    assert origin is not None
    assert origin.span is not None
    assert origin.span.column == 6


def test_word_split_across_a_continuation_is_not_located() -> None:
    text = "FROM python:3.13\\\n-slim\n"
    origin = parse_dockerfile(text).stages[0].origin
    assert origin.image == "python:3.13-slim"  # how BuildKit joins it
    assert origin.span is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM\n", "got nothing"),
        ("FROM a b\n", "got 'a' 'b'"),
        ("FROM a # trailing words\n", "got 'a' '#' 'trailing' 'words'"),
        ("FROM a TO b\n", "got 'a' 'TO' 'b'"),
    ],
)
def test_malformed_from(text: str, problem: str) -> None:
    origin = parse_dockerfile(text).stages[0].origin
    assert origin.problem is not None
    assert problem in origin.problem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no FROM instruction"),
        ("# only a comment\n\n", "no FROM instruction"),
        ("ARG X=1\nRUN echo hi\n", "no FROM instruction"),
        ("FROM a\x00\n", "NUL byte"),
    ],
)
def test_not_a_dockerfile(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_dockerfile(text, "ctx/Dockerfile")
    assert message in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.file == "ctx/Dockerfile"
    assert caught.value.location.line == 1
