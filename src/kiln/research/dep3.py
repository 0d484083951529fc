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

from kiln.research.record import CveRecord

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
