"""Ecosystem names, package-name normalisation and version ordering per ecosystem.

OSV spells ecosystems its own way (https://ossf.github.io/osv-schema/#affectedpackage-field);
inventories use purl types. Ordering: PEP 440 via ``packaging`` for PyPI, SemVer 2.0 via
``semver`` for npm/Go/crates.io and SEMVER ranges, dpkg ordering via
``kiln.debian.version`` for Debian.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kiln.debian.version import parse_version as parse_dpkg_version
from kiln.errors import InputError

if TYPE_CHECKING:
    import semver
    from packaging.version import Version

# semver and packaging are imported where a PyPI, npm, Go or crates.io version is first
# read: a scan of a Debian-only rootfs never needs them (they cost ~25 ms of its start).
# ruff: noqa: PLC0415

# purl type / inventory ecosystem -> OSV ecosystem
_OSV_ECOSYSTEM = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "go": "Go",
    "cargo": "crates.io",
    "gem": "RubyGems",
    "maven": "Maven",
    "nuget": "NuGet",
    "composer": "Packagist",
    "deb": "Debian",
}


class BadVersionError(ValueError):
    """A version string the ecosystem's ordering cannot parse."""


def osv_ecosystem(ecosystem: str) -> str:
    """The OSV ecosystem name for an inventory ecosystem (``pypi`` -> ``PyPI``)."""
    return _OSV_ECOSYSTEM.get(ecosystem.lower(), ecosystem)


def base_ecosystem(osv_name: str) -> str:
    """``Debian:12`` -> ``Debian``; other names unchanged."""
    return osv_name.split(":", 1)[0]


def normalize_package_name(osv_name: str, name: str) -> str:
    """The lookup key for a package name: PEP 503 for PyPI, lower case for npm."""
    eco = base_ecosystem(osv_name)
    if eco == "PyPI":
        from packaging.utils import canonicalize_name

        return str(canonicalize_name(name))
    if eco == "npm":
        return name.lower()
    return name


def _semver(text: str) -> semver.Version:
    import semver

    try:
        return semver.Version.parse(text.removeprefix("v"))
    except (ValueError, TypeError) as exc:
        raise BadVersionError(f"{text!r} is not a SemVer 2.0 version") from exc


def _pep440(text: str) -> Version:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion as exc:
        raise BadVersionError(f"{text!r} is not a PEP 440 version") from exc


def _dpkg(text: str) -> Any:
    try:
        return dpkg_key(text)
    except InputError as exc:
        raise BadVersionError(f"{text!r} is not a Debian version") from exc


_DPKG_PART = re.compile(r"(\D*)(\d*)")


def _dpkg_weight(c: str) -> int:
    # dpkg's order(): "~" before the end of the string, letters before everything else.
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _dpkg_part_key(text: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    pairs: list[tuple[tuple[int, ...], int]] = []
    for m in _DPKG_PART.finditer(text):
        if not m.group(0):
            continue
        pairs.append(((*(_dpkg_weight(c) for c in m.group(1)), 0), int(m.group(2) or 0)))
    while pairs and pairs[-1] == ((0,), 0):
        pairs.pop()  # trailing "" / 0 compare equal to nothing at all
    # The sentinel stands for "the string ended": it sorts after a "~" part and before
    # any other, exactly as dpkg compares a longer string with a shorter one.
    pairs.append(((0,), 0))
    return tuple(pairs)


@lru_cache(maxsize=200_000)
def dpkg_key(
    text: str,
) -> tuple[int, tuple[tuple[tuple[int, ...], int], ...], tuple[tuple[tuple[int, ...], int], ...]]:
    """A sort key equal to dpkg's ordering (Debian Policy §5.6.12); validates via
    ``kiln.debian.version`` once per distinct string. Comparing keys is much cheaper
    than python-debian's comparison, which re-parses both strings every time."""
    parse_dpkg_version(text)  # raises InputError on an invalid version
    epoch, sep, rest = text.partition(":")
    if not sep:
        epoch, rest = "0", text
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    return (int(epoch), _dpkg_part_key(upstream), _dpkg_part_key(revision))


VersionParser = Callable[[str], Any]


@lru_cache(maxsize=64)
def version_parser(osv_name: str, range_type: str = "ECOSYSTEM") -> VersionParser | None:
    """How to order versions of this ecosystem, or ``None`` if kiln cannot order them."""
    if range_type == "SEMVER":
        return _semver
    match base_ecosystem(osv_name):
        case "PyPI":
            return _pep440
        case "npm" | "Go" | "crates.io":
            return _semver
        case "Debian" | "Ubuntu":
            return _dpkg
        case _:
            return None
