"""Release versions ↔ tags, and the git window between last affected and first fixed.

Tags are read generically: the numbers of ``v2.9.14``, ``curl-7_49_0``, ``cares-1_16_0``,
``jq-1.7.1`` or ``1.26.5`` are the version; tags naming a pre-release (rc, alpha, beta,
pre, dev) count only when no final release has that number. Versions the advisory
gives come from its CPE ranges, its OSV/CNA events and phrases of its description
("before 2.10.3", "through 2.9.14", "fixed in 1.8.0").
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import unquote

from kiln.research.record import CveRecord, VersionRange

_NUMS = re.compile(r"(\d+(?:[._]\d+)+|\d+)")
_PRE = re.compile(r"(?i)(rc|alpha|beta|pre|dev|a\d|b\d)")
_DESC_FIXED = re.compile(
    r"(?i)\b(?:before|prior to|fixed in|patched in|upgrade to|update to|earlier than|<)"
    r"\s+(?:version\s+|v)?(\d+(?:\.\d+){1,3})\b"
)
_DESC_LAST = re.compile(
    r"(?i)\b(?:through|up to(?: and including)?|<=|and earlier|or earlier)\s+(?:version\s+|v)?"
    r"(\d+(?:\.\d+){1,3})\b"
)
_DESC_LAST_AFTER = re.compile(r"(?i)\b(\d+(?:\.\d+){1,3})\s+(?:and|or)\s+(?:earlier|older|below)")

Version = tuple[int, ...]


def version_key(text: str) -> Version | None:
    """The numeric version in a version string or tag name, trailing zeros dropped."""
    found = _NUMS.findall(text)
    if not found:
        return None
    best = max(found, key=len)
    numbers = [int(n) for n in re.split(r"[._]", best) if n.isdigit()]
    if not numbers or any(n > 1_000_000 for n in numbers) or numbers[0] > 10_000:
        return None  # a date or a hash-like number, not a release
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


@dataclass(frozen=True)
class TagIndex:
    """Release tags by version: only final releases unless a version has only pre-releases."""

    by_version: dict[Version, str]

    @classmethod
    def build(cls, tags: dict[str, tuple[str, int]]) -> TagIndex:
        """Index tag names (from ``GitRepo.tags``) by the version they spell."""
        final: dict[Version, str] = {}
        pre: dict[Version, str] = {}
        for name in sorted(tags):
            key = version_key(name)
            if key is None or not re.search(r"\d[._]\d", name):
                continue  # a release has at least two numbers (v1.0, curl-8_0_0)
            rest = _NUMS.sub("", name)
            (pre if _PRE.search(rest) else final).setdefault(key, name)
        merged = dict(pre)
        merged.update(final)
        return cls(by_version=merged)

    def tag(self, version: str) -> str | None:
        """The tag of exactly this version."""
        key = version_key(version)
        return self.by_version.get(key) if key else None

    def previous(self, version: str) -> str | None:
        """The greatest tagged version below ``version``."""
        key = version_key(version)
        below = [v for v in self.by_version if key and v < key]
        return self.by_version[max(below)] if below else None

    def following(self, version: str) -> str | None:
        """The smallest tagged version above ``version``."""
        key = version_key(version)
        above = [v for v in self.by_version if key and v > key]
        return self.by_version[min(above)] if above else None

    def next_series(self, version: str) -> str | None:
        """The first release of the series after ``version``'s (``1.25`` for ``1.24.2``):
        same major version, tags named alike; for a maintenance version only (three
        numbers or more). None otherwise."""
        key = version_key(version)
        own = self.tag(version) or self.previous(version)
        if not key or len(key) < 3 or own is None:
            return None
        series = key[:-1]
        shape = _NUMS.sub("", own)  # the same naming (not another project's tags)
        above = [
            v
            for v, name in self.by_version.items()
            if v > key
            and v[0] == key[0]
            and v[: len(series)] != series
            and _NUMS.sub("", name) == shape
        ]
        return self.by_version[min(above)] if above else None


@dataclass(frozen=True)
class Bounds:
    """Versions the advisory names: first fixed and last affected."""

    fixed: tuple[str, ...]
    last_affected: tuple[str, ...]


# a forge's page of one release or tag: GitHub /releases/tag/X, GitLab /-/releases/X and
# /-/tags/X, Gitea /releases/tag/X; group 1 is the project, group 2 the tag
_RELEASE_PAGE = re.compile(
    r"(?i)^https?://[^/?#]+/(?:[^/?#]+/)*?([^/?#]+?)(?:\.git)?/(?:-/)?(?:releases/tag|releases|tags)/"
    r"([^/?#]{1,100})/?$"
)


def project_name(repo_name: str) -> str:
    """A repository's project name from its URL or path: ``libarchive`` for
    ``https://github.com/libarchive/libarchive.git`` or ``/srv/mirrors/libarchive.git``."""
    last = repo_name.rstrip("/").rsplit("/", 1)[-1]
    return last.removesuffix(".git").lower()


def with_release_pages(record: CveRecord, project: str) -> CveRecord:
    """``record`` with a first-fixed bound for each release page of ``project`` its
    references link (``.../libarchive/releases/tag/v3.7.4``: the fix ships in that
    release), unless its own bounds already name that version. Pages of other projects
    (an advisory about a protocol links many vendors' releases) are not read."""
    known = {version_key(v) for v in advisory_bounds(record).fixed}
    added: list[VersionRange] = []
    for url in record.references:
        m = _RELEASE_PAGE.match(url)
        if m is None or m.group(1).lower() != project or not project:
            continue
        tag = unquote(m.group(2))
        key = version_key(tag)
        if key is None or key in known or not re.search(r"\d[._]\d", tag):
            continue
        known.add(key)
        added.append(VersionRange(end=tag, product=f"release page {url[:200]}"))
    if not added:
        return record
    return dataclasses.replace(record, ranges=(*record.ranges, *added))


def advisory_bounds(record: CveRecord) -> Bounds:
    """First-fixed and last-affected versions from the record's ranges and description."""
    fixed: list[str] = []
    last: list[str] = []
    for r in record.ranges:
        if r.end and version_key(r.end) and not re.fullmatch(r"\d{4}-\d\d-\d\d", r.end):
            (last if r.end_inclusive else fixed).append(r.end)
    last.extend(v for v in record.exact_versions if version_key(v))
    text = record.text
    fixed.extend(_DESC_FIXED.findall(text))
    last.extend(_DESC_LAST.findall(text))
    last.extend(_DESC_LAST_AFTER.findall(text))
    return Bounds(tuple(dict.fromkeys(fixed)), tuple(dict.fromkeys(last)))


def advisory_affects(record: CveRecord, version: str) -> str | None:
    """Which of the advisory's ranges (or exact versions) names ``version`` as affected,
    said in words; None when none does or the advisory gives none."""
    key = version_key(version)
    if key is None:
        return None
    for r in record.ranges:
        start = version_key(r.start) if r.start else None
        end = version_key(r.end) if r.end else None
        dated = any(b and re.fullmatch(r"\d{4}-\d\d-\d\d.*", b) for b in (r.start, r.end))
        unreadable = (r.start and start is None) or (r.end and end is None)
        if dated or unreadable or (start is end is None):
            continue  # a date or an unreadable bound: no claim about version numbers
        if start is not None and key < start:
            continue
        if end is not None and (key > end or (key == end and not r.end_inclusive)):
            continue
        upper = f"through {r.end}" if r.end_inclusive else f"before {r.end}"
        bounds = " ".join(x for x in (f"from {r.start}" if r.start else "", upper if r.end else ""))
        return f"the advisory's range {bounds.strip()} includes {version}"
    if any(version_key(v) == key for v in record.exact_versions):
        return f"the advisory lists {version} as affected"
    return None


def tag_windows(bounds: Bounds, tags: TagIndex) -> list[list[str]]:
    """``git log`` revision lists, one per window ``first-fixed ^last-affected``.

    A fixed version with no tag yet (the fix is unreleased) gives ``--all ^last``. A
    maintenance release (``1.24.2``) often carries a backport while the commit upstream
    names lives on the main line and ships first in the next series (``1.25``): that
    series' first release, bounded below by the same tag, is searched too.
    """
    windows: list[list[str]] = []
    for version in bounds.fixed:
        fixed_tag = tags.tag(version)
        before = tags.previous(version)
        if fixed_tag and before:
            windows.append([fixed_tag, f"^{before}"])
        elif before and not fixed_tag:
            windows.append(["--all", f"^{before}"])
        mainline = tags.next_series(version)
        if mainline and before and mainline != fixed_tag:
            windows.append([mainline, f"^{before}"])
    for version in bounds.last_affected:
        last_tag = tags.tag(version)
        if not last_tag:
            continue
        after = tags.following(version)
        windows.append([after, f"^{last_tag}"] if after else ["--all", f"^{last_tag}"])
        mainline = tags.next_series(version)
        if mainline and mainline != after:
            windows.append([mainline, f"^{last_tag}"])
    unique: dict[tuple[str, ...], list[str]] = {tuple(w): w for w in windows}
    return list(unique.values())
