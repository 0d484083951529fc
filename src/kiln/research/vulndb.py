"""A CVE's public text from kiln's vulnerability database, for ``kiln research CVE``.

Reads, read-only, the NVD row (description, CWEs, references) or else the Debian
tracker's description, and the publication date of an OSV advisory naming the CVE.
The database is the one ``kiln db update`` writes (``kiln.vuln.db.default_db_url``);
a database that is missing, of another schema or lacks the CVE gives ``None``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import InputError, Location
from kiln.research.dep3 import record_from_changelog
from kiln.research.discover import upstream_version
from kiln.research.record import CveRecord, parse_date
from kiln.vuln.db import SqliteReader

if TYPE_CHECKING:
    from kiln.pipeline.backport import UnstableFix


def _list(value: Any) -> list[Any]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def record_from_db(cve: str, db_url: str) -> CveRecord | None:
    """The record of ``cve`` from the database at ``db_url``, or None."""
    reader = SqliteReader.open_current(db_url)
    if reader is None:
        return None
    path = Path(db_url.removeprefix("sqlite:///"))
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        nvd = conn.execute(
            'SELECT description, cwes, "references" FROM nvd_cve WHERE cve = ?', (cve,)
        ).fetchone()
        tracker = conn.execute(
            "SELECT description FROM debian_tracker_cve WHERE cve = ?", (cve,)
        ).fetchone()
        published = conn.execute(
            "SELECT MIN(published) FROM osv_advisory WHERE published IS NOT NULL AND "
            "(id = ? OR aliases LIKE ?)",
            (cve, f'%"{cve}"%'),
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if nvd is None and tracker is None:
        return None
    description = (nvd[0] if nvd else "") or (tracker[0] if tracker else "") or ""
    cwes = tuple(c for c in _list(nvd[1]) if isinstance(c, str)) if nvd else ()
    refs: list[str] = []
    for ref in _list(nvd[2]) if nvd else []:
        url = ref.get("url") if isinstance(ref, dict) else ref
        if isinstance(url, str):
            refs.append(url)
    when = None
    if published and isinstance(published[0], str):
        try:
            when = parse_date(published[0], Location(db_url))
        except InputError:
            when = None
    return CveRecord(
        cve=cve, description=str(description), published=when, cwe=cwes, references=tuple(refs)
    )


def record_from_db_or_unstable(
    cve: str, db_url: str, unstable: UnstableFix | None
) -> tuple[CveRecord | None, str]:
    """``cve``'s record from the database at ``db_url``, else from the Debian unstable
    changelog entry that names its fix (``unstable``, from ``find_unstable_fix``); and a
    note saying where it came from when it is the changelog ("" otherwise).

    The archive is the vulnerability source that is always reachable, and its item names
    the flaw in a line (``dep3.record_from_changelog``: the entry's date is the
    publication date, its new upstream version the first fixed one). A database row
    without a description loses to the changelog; None when neither has the CVE.
    """
    found = record_from_db(cve, db_url)
    if (found is not None and found.description.strip()) or unstable is None:
        return found, ""
    fixed = upstream_version(unstable.fixed_version) if unstable.kind == "upstream" else None
    record = record_from_changelog(
        cve, item=unstable.changelog_line, entry=unstable.changelog_entry, fixed_upstream=fixed
    )
    note = (
        f"{cve}: no advisory text in the vulnerability database; using {unstable.source} "
        f"{unstable.fixed_version}'s changelog ({unstable.suite}): {record.description!r}"
        + (f", fixed upstream in {fixed}" if fixed else "")
    )
    return record, note
