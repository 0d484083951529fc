"""dpkg version ordering (Debian Policy §5.6.12): epochs, upstream, revision, ``~``.

Backed by python-debian's implementation for the ordering; ``tests/debian/test_version.py``
checks it against ``dpkg --compare-versions`` on real version pairs. What is a version at
all follows dpkg (python-debian accepts ``c6`` or a 20-digit epoch, dpkg does not);
``tests/hostile/test_version_dpkg.py`` checks that against ``dpkg --validate-version``.
"""

from __future__ import annotations

import re
from functools import cmp_to_key, lru_cache

from debian.debian_support import NativeVersion

from kiln.errors import InputError

# deb-version(7), as dpkg's parseversion() checks it (lib/dpkg/parsehelp.c); ASCII only.
_EPOCH = re.compile(r"[0-9]+")
_UPSTREAM = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")
_REVISION = re.compile(r"[A-Za-z0-9.+~]+")
_MAX_EPOCH = 2**31 - 1  # dpkg stores the epoch in an int


def _invalid(text: str) -> str | None:
    """Why dpkg would refuse ``text`` as a version, or None.

    Stricter than dpkg in two ways: no whitespace at all (dpkg trims it at the ends), and
    the epoch is digits only (dpkg's strtol() also takes a leading ``+``).
    """
    if not text:
        return "the version is empty"
    if any(c.isspace() for c in text):
        return "it contains whitespace"
    epoch, colon, rest = text.partition(":")
    if not colon:
        epoch, rest = "", text
    elif not epoch:
        return "the epoch before ':' is empty"
    elif not _EPOCH.fullmatch(epoch):
        return f"the epoch {epoch!r} is not a number"
    elif len(epoch.lstrip("0")) > 10 or int(epoch) > _MAX_EPOCH:
        return f"the epoch is larger than {_MAX_EPOCH}"
    elif not rest:
        return "nothing follows the epoch"
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not revision:
        return "the revision after the last '-' is empty"
    if not upstream:
        return "the upstream version is empty"
    if not upstream[0].isdigit() or not upstream[0].isascii():
        return f"the upstream version {upstream!r} does not start with a digit"
    if not _UPSTREAM.fullmatch(upstream):
        return f"the upstream version {upstream!r} has a character other than A-Za-z0-9.+~:-"
    if hyphen and not _REVISION.fullmatch(revision):
        return f"the revision {revision!r} has a character other than A-Za-z0-9.+~"
    return None


@lru_cache(maxsize=65536)
def parse_version(text: str) -> NativeVersion:
    """Parse a Debian version as dpkg does, raising ``InputError`` naming the bad string."""
    reason = _invalid(text)
    if reason is not None:
        raise InputError(f"{text!r} is not a valid Debian version: {reason}")
    try:
        return NativeVersion(text)
    except ValueError as exc:  # pragma: no cover - python-debian's pattern is looser than _invalid
        raise InputError(f"{text!r} is not a valid Debian version") from exc


def compare_versions(a: str, b: str) -> int:
    """Return <0, 0 or >0 as ``a`` sorts before, equal to or after ``b`` in dpkg order."""
    va, vb = parse_version(a), parse_version(b)
    if va < vb:
        return -1
    if va > vb:
        return 1
    return 0


version_key = cmp_to_key(compare_versions)


def satisfies(version: str, op: str | None, wanted: str | None) -> bool:
    """Whether ``version`` satisfies the relation ``op wanted`` (``>=``, ``<<``, ...)."""
    if op is None or wanted is None:
        return True
    c = compare_versions(version, wanted)
    match op:
        case ">=":
            return c >= 0
        case "<=":
            return c <= 0
        case ">>" | ">":
            return c > 0
        case "<<" | "<":
            return c < 0
        case "=":
            return c == 0
        case _:
            raise InputError(f"unknown version relation operator {op!r}")
