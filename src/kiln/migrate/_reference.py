"""Image references as Dockerfiles write them: ``[host[:port]/]path[:tag][@digest]``.

Unlike ``kiln.registry.Reference`` (kiln's own references, which must name their
registry), a FROM line may rely on the default registry's short names: ``python:3.13``.
For matching against the catalog's ``compatibility.replaces`` patterns, the registry
host and the official-images namespace ``library/`` are set aside, so that a mirror or
proxy of an official image (``host/library/python:3.13``) matches ``python:3.13*``.
Grammar: https://github.com/distribution/reference/blob/main/reference.go
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]{32,}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class ReferenceSyntaxError(ValueError):
    """The text is not an image reference."""


@dataclass(frozen=True)
class SourceReference:
    """A FROM image: ``host`` (if written), ``repository`` without ``library/``, tag, digest."""

    text: str
    host: str | None
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> SourceReference:
        """Parse a FROM image; raise ``ReferenceSyntaxError`` saying which part is wrong."""
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest = rest.partition("@")
            if not _DIGEST.fullmatch(digest):
                raise ReferenceSyntaxError(f"{digest!r} is not a digest (algorithm:hex)")
        tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, _, tag = rest.rpartition(":")
            if not _TAG.fullmatch(tag):
                raise ReferenceSyntaxError(f"{tag!r} is not a valid tag")
        host = None
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            if not _HOST.fullmatch(first):
                raise ReferenceSyntaxError(f"{first!r} is not a registry host[:port]")
            host, rest = first, remainder
        if not _PATH.fullmatch(rest):
            raise ReferenceSyntaxError(
                f"{rest!r} is not a repository name (lowercase letters, digits, separators)"
            )
        repository = rest.removeprefix("library/") if "/" in rest else rest
        return cls(text, host, repository, tag, digest)

    @property
    def display(self) -> str:
        """The reference without registry host or digest, as the catalog's patterns read."""
        return self.repository + (f":{self.tag}" if self.tag else "")


def version_of(tag: str | None) -> tuple[int, ...] | None:
    """The numeric version a tag starts with: ``3.13-slim`` -> (3, 13); ``slim`` -> None."""
    if tag is None:
        return None
    match = _VERSION.match(tag)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)
