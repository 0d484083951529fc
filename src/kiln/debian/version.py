"""dpkg version ordering (Debian Policy §5.6.12): epochs, upstream, revision, ``~``.

Backed by python-debian's implementation; ``tests/debian/test_version.py`` checks it
against ``dpkg --compare-versions`` on real version pairs.
"""

from __future__ import annotations

from functools import cmp_to_key, lru_cache

from debian.debian_support import NativeVersion

from kiln.errors import InputError


@lru_cache(maxsize=65536)
def parse_version(text: str) -> NativeVersion:
    """Parse a Debian version, raising ``InputError`` naming the bad string."""
    try:
        version = NativeVersion(text)
    except ValueError as exc:
        raise InputError(f"{text!r} is not a valid Debian version") from exc
    # python-debian accepts what dpkg refuses: an empty upstream part ("1:-1", "-1") or
    # an empty revision after the last hyphen ("1.0-").
    body = text.split(":", 1)[1] if text[:1].isdigit() and ":" in text else text
    upstream, hyphen, revision = body.rpartition("-")
    if not body or (hyphen and not (upstream and revision)):
        raise InputError(f"{text!r} is not a valid Debian version (empty upstream or revision)")
    return version


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
