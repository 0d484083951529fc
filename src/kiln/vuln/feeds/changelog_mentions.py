"""CVE mentions in a Debian changelog, each with its line and whether it reads as a fix.

A changelog entry naming a CVE usually means that version fixes it (the premise of the
``debian-changelog`` feed), but not always: maintainers also write that a CVE "does not
affect" the package, that a patch was reverted or rejected, or that an id was disputed.
``classify`` recognises the common phrasings and marks such a mention ``low``; the
matcher then reports it as low-confidence instead of trusting it. Parsing is the one in
``debian_changelog.parse_changelog`` (Debian Policy §4.4), after bounds that keep a
hostile changelog (10^5 entries, a 1 MB line) from costing more than a real one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kiln.errors import Location
from kiln.vuln.feeds.debian_changelog import CVE_RE, parse_changelog
from kiln.vuln.feeds.interface import FeedFormatError

Confidence = Literal["fix", "low"]
# Bumped whenever ``classify`` or ``mentions_from_changelog`` changes what they return:
# caches of parsed changelogs are keyed by it.
RULES_VERSION = "3"

# Bounds well above any changelog in Debian (the longest have a few thousand entries and
# lines under 1 KiB); beyond them a changelog is refused, not truncated.
MAX_CHANGELOG_BYTES = 16 << 20
MAX_ENTRIES = 20_000
MAX_LINE = 64 << 10
MAX_EVIDENCE = 300

_HEADER_RE = re.compile(rb"^[a-z0-9][a-z0-9.+-]* \(", re.MULTILINE)
_ITEM_RE = re.compile(r"^\s*(?:[*+-]|\[ [^]]+ \])\s")
# Phrasings that name a CVE without fixing it in this version. Narrow on purpose: a CVE's
# own description often says "unaffected", "rejected" or "ignored" about the bug itself.
_NOT_A_FIX = re.compile(
    r"""(?ix)
    \b(?:does|do|did)(?:\s+not|n't)\s+(?:affect|apply\s+to)\b
    | \bnot\s+(?:affected|vulnerable)\s+(?:by|to)\s+CVE-
    | \b(?:package|version|code|debian|we|this|it)\s+(?:is|are|was|were)\s+
        (?:not\s+(?:affected|vulnerable)|unaffected)\b
    | \bunaffected\s+by\s+CVE-
    | ^\W*revert
    | \brevert(?:s|ed|ing)?\s+(?:the\s+)?(?:fix|patch|change|commit)
    | \b(?:patch|fix)(?:es|s)?\s+(?:was\s+|were\s+|is\s+)?rejected\b
    | \brejected\s+(?:by\s+)?upstream\b
    | \bdisputed\b
    | \bfalse[\s-]+positive\b
    | \bno\s+security\s+impact\b
    | \bwon'?t\s+fix\b
    """
)
# "Drop the CVE patch, applied upstream": a new upstream release that carries the fix.
_UPSTREAM_FIX = re.compile(r"(?i)\b(?:applied|fixed|included|merged|integrated)\s+upstream\b")


@dataclass(frozen=True)
class Mention:
    """The first version of one changelog that names ``cve`` (as a fix, if any entry does)."""

    cve: str
    version: str
    line: str  # the changelog item naming it, whitespace collapsed, cut at MAX_EVIDENCE
    confidence: Confidence


def classify(item: str) -> Confidence:
    """``low`` when a changelog item names a CVE in one of the not-a-fix phrasings."""
    if _NOT_A_FIX.search(item) and not _UPSTREAM_FIX.search(item):
        return "low"
    return "fix"


def _items(lines: Iterable[str]) -> list[str]:
    """A block's change lines grouped into items (a bullet and its continuation lines)."""
    items: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        if _ITEM_RE.match(line) or not items:
            items.append([line.strip()])
        else:
            items[-1].append(line.strip())
    return [" ".join(parts) for parts in items]


def check_bounds(text: bytes, display: str) -> None:
    """Refuse a changelog beyond the bounds (``FeedFormatError`` naming ``display``)."""
    if len(text) > MAX_CHANGELOG_BYTES:
        raise FeedFormatError(
            f"changelog of {len(text)} bytes, more than {MAX_CHANGELOG_BYTES}: not read",
            Location(display),
        )
    entries = len(_HEADER_RE.findall(text))
    if entries > MAX_ENTRIES:
        raise FeedFormatError(
            f"changelog of {entries} entries, more than {MAX_ENTRIES}: not read",
            Location(display),
        )
    start = 0
    while start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        if end - start > MAX_LINE:
            number = text.count(b"\n", 0, start) + 1
            raise FeedFormatError(
                f"line of {end - start} bytes, more than {MAX_LINE}: not read",
                Location(display, number),
            )
        start = end + 1


def mentions_from_changelog(text: bytes, display: str) -> tuple[str, list[Mention]]:
    """(source name, the first mention of each CVE, sorted by CVE) of one changelog.

    A CVE named first in a not-a-fix phrasing and later as a fix is fixed by the later
    version; one never named as a fix keeps its first (low-confidence) mention.
    """
    check_bounds(text, display)
    changelog = parse_changelog(text, display)
    fixes: dict[str, Mention] = {}
    low: dict[str, Mention] = {}
    for block in reversed(list(changelog)):  # oldest first
        version = str(block.version)
        for item in _items(block.changes()):
            for cve in sorted(set(CVE_RE.findall(item))):
                confidence = classify(item)
                seen = fixes if confidence == "fix" else low
                if cve not in seen:
                    seen[cve] = Mention(cve, version, item[:MAX_EVIDENCE], confidence)
    merged = {**low, **fixes}
    return str(changelog.package), [merged[c] for c in sorted(merged)]
