"""Typed Debian package relations, parsed from the raw fields of a ``Packages`` stanza.

Relation fields (``Depends``, ``Pre-Depends``, ``Provides``, ``Conflicts``, ``Breaks``)
are parsed with python-debian's ``PkgRelation.parse_relations`` and then checked, because
python-debian returns text it cannot parse "raw" instead of failing. The syntax is Debian
Policy §7.1 (relations, version operators) and the multiarch spec for ``:any``,
``:native`` and ``:<arch>`` qualifiers: https://www.debian.org/doc/debian-policy/ch-relationships.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from debian.deb822 import PkgRelation

from kiln.debian.model import BinaryPackage
from kiln.debian.version import parse_version
from kiln.errors import InputError, RemoteContentError

# Debian Policy §5.6.1: lower case letters, digits, '+', '-', '.'; two or more characters,
# starting with an alphanumeric. Upper case is tolerated because old indexes carried it.
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9+.\-]+$")
_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9\-]*$")
# ``<`` and ``>`` are the deprecated spellings of ``<=`` and ``>=`` (Policy §7.1).
_OPERATORS = {"<<": "<<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">>", "<": "<=", ">": ">="}


class MalformedRelationError(RemoteContentError):
    """A relation field in a package index cannot be parsed."""


@dataclass(frozen=True)
class Alternative:
    """One alternative of a relation: ``name[:archqual] [(op version)]``."""

    name: str
    archqual: str | None = None
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        text = self.name if self.archqual is None else f"{self.name}:{self.archqual}"
        if self.op is not None:
            text += f" ({self.op} {self.version})"
        return text


@dataclass(frozen=True)
class OrGroup:
    """One comma-separated item of a relation field: alternatives joined by ``|``."""

    alternatives: tuple[Alternative, ...]

    def __str__(self) -> str:
        return " | ".join(str(a) for a in self.alternatives)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.alternatives)


@dataclass(frozen=True)
class Provide:
    """One entry of a ``Provides`` field: a virtual name and an optional exact version."""

    name: str
    version: str | None = None


class _BadRelationError(ValueError):
    """Internal: a relation text is malformed (re-raised with the package named)."""


@lru_cache(maxsize=131072)
def _parse_text(text: str) -> tuple[OrGroup, ...]:
    if not text.strip():
        return ()
    groups: list[OrGroup] = []
    for raw_group in PkgRelation.parse_relations(text):
        alternatives: list[Alternative] = []
        for raw in raw_group:
            name = raw["name"]
            if not _NAME_RE.match(name):
                raise _BadRelationError(f"cannot parse {name!r}")
            archqual = raw.get("archqual")
            if archqual is not None and not _ARCH_RE.match(archqual):
                raise _BadRelationError(f"bad architecture qualifier {archqual!r} on {name}")
            op: str | None = None
            version: str | None = None
            relation = raw.get("version")
            if relation is not None:
                raw_op, version = relation
                if raw_op not in _OPERATORS:
                    raise _BadRelationError(f"bad version operator {raw_op!r} on {name}")
                op = _OPERATORS[raw_op]
                try:
                    parse_version(version)
                except InputError as exc:
                    raise _BadRelationError(f"bad version {version!r} on {name}") from exc
            alternatives.append(Alternative(name, archqual, op, version))
        groups.append(OrGroup(tuple(alternatives)))
    return tuple(groups)


def parse_relations(package: BinaryPackage, field: str, text: str) -> tuple[OrGroup, ...]:
    """Parse one relation field of ``package``; ``field`` names it in errors."""
    try:
        return _parse_text(text)
    except _BadRelationError as exc:
        raise MalformedRelationError(
            f"{package.name} {package.version} ({package.suite}): {field}: {exc} in {text!r}"
        ) from exc


def parse_provides(package: BinaryPackage) -> tuple[Provide, ...]:
    """The virtual names ``package`` provides; only ``=`` is allowed there (Policy §7.5)."""
    provides: list[Provide] = []
    for group in parse_relations(package, "Provides", package.provides):
        if len(group.alternatives) != 1:
            raise MalformedRelationError(
                f"{package.name} {package.version} ({package.suite}): Provides: "
                f"alternatives are not allowed in {str(group)!r}"
            )
        alt = group.alternatives[0]
        if alt.op not in (None, "="):
            raise MalformedRelationError(
                f"{package.name} {package.version} ({package.suite}): Provides: only '=' "
                f"may version a provided name, not {str(alt)!r}"
            )
        provides.append(Provide(alt.name, alt.version))
    return tuple(provides)
