"""Debian's DEP-3 patch headers as a candidate source: the commits they name.

Debian's unstable/experimental patches often say where they come from: ``Origin:
upstream, https://github.com/o/r/commit/<sha>``, ``Applied-Upstream: <version>,
commit:<sha>``. ``commits_in_headers`` finds those ids; ``with_patch_origins`` adds
them to a record's references, so the advisory source proposes them and the
``commit_in_advisory`` feature fires for them. The headers come from
``kiln.pipeline.backport.find_unstable_fix`` (unstable's signed packaging tarball).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from email.utils import parsedate_to_datetime

from kiln.research.record import CveRecord, VersionRange

_FIELDS = ("origin", "applied-upstream", "bug", "forwarded")
_COMMIT = re.compile(r"(?:/commits?/|commit[:= ]\s*|\bid=)([0-9a-f]{7,40})\b", re.IGNORECASE)


def commits_in_headers(headers: Iterable[tuple[str, str]]) -> list[str]:
    """Commit ids named by ``Origin``, ``Applied-Upstream`` (and ``Bug``/``Forwarded``)."""
    found: list[str] = []
    for name, value in headers:
        if name.lower() in _FIELDS:
            found.extend(m.lower() for m in _COMMIT.findall(value))
    return list(dict.fromkeys(found))


def with_patch_origins(
    record: CveRecord, patches: Sequence[Iterable[tuple[str, str]]]
) -> CveRecord:
    """``record`` with the commits Debian's patches name added as commit references."""
    extra = [f"debian-dep3:/commit/{sha}" for h in patches for sha in commits_in_headers(h)]
    if not extra:
        return record
    return dataclasses.replace(record, references=(*record.references, *extra))


# the trailer line of a Debian changelog entry: " -- Name <mail>  Sun, 06 Sep 2026 01:58:14 +0800"
_TRAILER_DATE = re.compile(r"^ -- .*?>\s+(.+?)\s*$", re.MULTILINE)
_CVE_PREFIX = re.compile(r"^\s*(?:[-*+]\s*)?CVE-\d{4}-\d{4,}\s*[:,-]?\s*", re.IGNORECASE)


def record_from_changelog(
    cve: str, *, item: str, entry: str, fixed_upstream: str | None
) -> CveRecord:
    """A record of ``cve`` from the Debian changelog that names its fix, for when no
    advisory text is at hand (kiln's database has none: no NVD, no tracker).

    ``item`` (the changelog item naming the CVE) is the description; the entry's date is
    the publication date (the fix was released by then, so the git window around it
    holds the fix); ``fixed_upstream`` (the upstream version of the entry, when it moved
    to a new upstream release) is the first fixed version, which bounds the tag window.
    """
    text = " ".join(_CVE_PREFIX.sub("", item).split())
    published = None
    found = _TRAILER_DATE.search(entry)
    if found:
        try:
            published = parsedate_to_datetime(found.group(1))
        except (TypeError, ValueError):
            published = None
    ranges = (VersionRange(end=fixed_upstream),) if fixed_upstream else ()
    return CveRecord(
        cve=cve,
        description=text or cve,
        published=published,
        references=(),
        ranges=ranges,
    )
