"""FROM image references: short names, registry hosts, library/, tags and digests."""

from __future__ import annotations

import pytest

from kiln.migrate import ReferenceSyntaxError, SourceReference
from kiln.migrate._reference import version_of

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("python", None, "python", None, None),
        ("python:3.13-slim", None, "python", "3.13-slim", None),
        ("library/python:3", None, "python", "3", None),
        ("registry.example/library/python:3", "registry.example", "python", "3", None),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", None),
        (
            "registry.example/distroless/python3-debian12",
            "registry.example",
            "distroless/python3-debian12",
            None,
            None,
        ),
        (f"python:3.13@{DIGEST}", None, "python", "3.13", DIGEST),
        (f"python@{DIGEST}", None, "python", None, DIGEST),
        ("[::1]:5000/x:1", "[::1]:5000", "x", "1", None),
    ],
)
def test_parse(
    text: str, host: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = SourceReference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("Python:3", "not a repository name"),
        ("python:", "not a valid tag"),
        ("python:-x", "not a valid tag"),
        ("python@sha256:12", "not a digest"),
        ("bad_host.example/x:1", "not a registry host"),
        ("a//b", "not a repository name"),
    ],
)
def test_refuses(text: str, part: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=part):
        SourceReference.parse(text)


@pytest.mark.parametrize(
    ("tag", "version"),
    [("3.13-slim", (3, 13)), ("3", (3,)), ("20.19.2", (20, 19, 2)), ("slim", None), (None, None)],
)
def test_version_of(tag: str | None, version: tuple[int, ...] | None) -> None:
    assert version_of(tag) == version
