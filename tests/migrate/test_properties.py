"""Property: however a FROM line is spelled, only its image token changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.migrate import Catalog, Rewrite, migrate
from migrate.conftest import NGINX, NODE, PREFIX, PYTHON, STATIC

CATALOG = Catalog((NGINX, NODE, PYTHON, STATIC))
SPACE = st.text(" \t", min_size=1, max_size=3)
OPTIONAL_SPACE = st.text(" \t", max_size=3)
EOL = st.sampled_from(["\n", "\r\n"])
KEYWORD = st.sampled_from(["FROM", "from", "From", "fRoM"])
IMAGE = st.sampled_from(["python:3.13-slim", "node:20-slim", "nginx", "python:3"])
COMMENT = st.sampled_from(["", "# a comment\n", "#FROM python:3.13\n"])


@st.composite
def from_line(draw: st.DrawFn) -> tuple[str, str, str]:
    """(text before the image, the image, text after it) of one FROM instruction."""
    before = draw(OPTIONAL_SPACE) + draw(KEYWORD) + draw(SPACE)
    if draw(st.booleans()):  # a continuation (with a comment line inside) before the image
        before += "\\" + draw(EOL) + draw(COMMENT) + draw(SPACE)
    after = ""
    if draw(st.booleans()):
        after += draw(SPACE) + draw(st.sampled_from(["AS", "as"])) + draw(SPACE) + "stage"
    after += draw(OPTIONAL_SPACE) + draw(EOL)
    return before, draw(IMAGE), after


@settings(max_examples=150, deadline=None)
@given(
    header=st.sampled_from(["", "# syntax=docker/dockerfile:1\n", "\ufeff", "ARG X=1\n"]),
    line=from_line(),
    body=st.sampled_from(["RUN echo FROM python:3.13\n", 'COPY a b\nCMD ["x"]\n', ""]),
)
def test_only_the_image_token_changes(header: str, line: tuple[str, str, str], body: str) -> None:
    before, image, after = line
    text = header + before + image + after + body
    result = migrate(text, CATALOG, PREFIX)
    (outcome,) = result.outcomes
    assert isinstance(outcome, Rewrite)
    assert outcome.original == image
    assert result.migrated == header + before + outcome.replacement + after + body
