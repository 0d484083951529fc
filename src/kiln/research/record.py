"""The public text of a CVE that the fix-commit finder reads: a trust boundary.

A record comes from a fixbench-style JSON line (``cves.jsonl``), a ``--record`` file, or
command-line options. Only the INPUT fields are read (description, dates, version
ranges, CWE, references without commit links); the ANSWER fields of a fixbench record
(``fix_commits`` and the curation notes) are never copied into a ``CveRecord``, so no
ranking code can see them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.errors import InputError, Location
from kiln.jsonlimits import parse_json, read_json_file

CVE_ID = re.compile(r"^(?:CVE|GHSA|OSV|PYSEC)-[0-9A-Za-z-]{4,64}$")
MAX_RECORD_BYTES = 1 << 20  # one CVE's text; NVD's largest records are ~200 kB
MAX_RECORDS_BYTES = 256 << 20  # a whole cves.jsonl
_MAX_TEXT = 64 << 10  # characters of description kept
_MAX_REFERENCES = 500


@dataclass(frozen=True)
class VersionRange:
    """One affected range: versions from ``start`` (inclusive) to ``end``.

    ``end_inclusive`` tells whether ``end`` is the last affected version (True) or the
    first fixed one (False). Any bound may be missing.
    """

    start: str | None = None
    end: str | None = None
    end_inclusive: bool = False
    product: str | None = None


@dataclass(frozen=True)
class CveRecord:
    """What a finder may read about one vulnerability."""

    cve: str
    description: str
    published: datetime | None = None
    repo: str | None = None
    title: str | None = None
    cwe: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    ranges: tuple[VersionRange, ...] = ()
    exact_versions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """Title and description: the advisory's words that rankers compare with commits."""
        return f"{self.title}\n{self.description}" if self.title else self.description


@dataclass(frozen=True)
class BenchRecord:
    """A fixbench line: the record a finder sees, and the answer only a scorer reads."""

    record: CveRecord
    fix_commits: frozenset[str] = field(default_factory=frozenset)
    leaky: bool = False


def _str(value: Any, where: Location, name: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InputError(f"field {name!r} is missing", location=where)
        return None
    if not isinstance(value, str):
        raise InputError(
            f"field {name!r} must be a string, not {type(value).__name__}", location=where
        )
    return value[:_MAX_TEXT]


def _strings(value: Any, where: Location, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"field {name!r} must be a list of strings", location=where)
    return tuple(value[:_MAX_REFERENCES])


def parse_date(value: str, where: Location) -> datetime:
    """An ISO 8601 date or time (naive means UTC), or InputError naming ``where``."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{value!r} is not an ISO 8601 date", location=where) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _cpe_ranges(value: Any, where: Location) -> tuple[list[VersionRange], list[str]]:
    ranges: list[VersionRange] = []
    exact: list[str] = []
    if value is None:
        return ranges, exact
    if not isinstance(value, list):
        raise InputError("field 'cpe_version_ranges' must be a list", location=where)
    for item in value[:_MAX_REFERENCES]:
        if not isinstance(item, dict):
            raise InputError("'cpe_version_ranges' entries must be objects", location=where)
        criteria = item.get("criteria")
        parts = criteria.split(":") if isinstance(criteria, str) else []
        product = parts[4] if len(parts) > 5 else None
        version = parts[5] if len(parts) > 5 else "*"
        start = item.get("versionStartIncluding")
        end_in = item.get("versionEndIncluding")
        end_ex = item.get("versionEndExcluding")
        if end_in is None and end_ex is None and start is None:
            if version not in ("*", "-", ""):
                exact.append(version)
            continue
        end = end_in if isinstance(end_in, str) else end_ex if isinstance(end_ex, str) else None
        ranges.append(
            VersionRange(
                start=start if isinstance(start, str) else None,
                end=end,
                end_inclusive=isinstance(end_in, str),
                product=product,
            )
        )
    return ranges, exact


_CNA_BOUND = re.compile(r"(>=|<=|<|>|=)\s*v?([0-9][0-9A-Za-z.+~-]*)")


def _cna_ranges(value: Any, where: Location) -> list[VersionRange]:
    """OSV events (``introduced:X``, a bare fixed version) or a CNA ``>= a, < b`` string."""
    if value is None:
        return []
    if isinstance(value, str):
        start = end = None
        inclusive = False
        for op, version in _CNA_BOUND.findall(value):
            if op in (">=", ">", "="):
                start = version
            else:
                end, inclusive = version, op == "<="
        return [VersionRange(start=start, end=end, end_inclusive=inclusive)] if end else []
    events = _strings(value, where, "affected_versions_cna")
    ranges: list[VersionRange] = []
    start_v: str | None = None
    for event in events:
        if event.startswith("introduced:"):
            start_v = event.split(":", 1)[1]
            start_v = None if start_v == "0" else start_v
        elif event.startswith("last_affected:"):
            ranges.append(VersionRange(start_v, event.split(":", 1)[1], end_inclusive=True))
        elif ":" not in event and event:
            ranges.append(VersionRange(start_v, event.removeprefix("fixed")))
    return ranges


def record_from_json(data: Any, where: Location) -> BenchRecord:
    """A ``BenchRecord`` from one parsed fixbench object, or InputError naming ``where``."""
    if not isinstance(data, dict):
        raise InputError("a CVE record must be a JSON object", location=where)
    cve = _str(data.get("cve"), where, "cve", required=True) or ""
    if not CVE_ID.match(cve):
        raise InputError(f"{cve[:80]!r} is not a vulnerability id (CVE-YYYY-N)", location=where)
    description = _str(data.get("description"), where, "description") or ""
    published_text = _str(data.get("published"), where, "published") or _str(
        data.get("date_public_cna"), where, "date_public_cna"
    )
    published = parse_date(published_text, where) if published_text else None
    ranges, exact = _cpe_ranges(data.get("cpe_version_ranges"), where)
    ranges.extend(_cna_ranges(data.get("affected_versions_cna"), where))
    cwe = _strings(data.get("cwe"), where, "cwe")
    record = CveRecord(
        cve=cve,
        description=description,
        published=published,
        repo=_str(data.get("repo"), where, "repo"),
        title=_str(data.get("title"), where, "title"),
        cwe=cwe,
        references=_strings(data.get("references_without_commits"), where, "references")
        + _strings(data.get("references"), where, "references"),
        ranges=tuple(ranges),
        exact_versions=tuple(exact),
    )
    fixes = data.get("fix_commits")
    flags = data.get("flags")
    leaky = isinstance(flags, dict) and any(v is True for v in flags.values())
    answer = frozenset(f for f in fixes if isinstance(f, str)) if isinstance(fixes, list) else None
    return BenchRecord(record=record, fix_commits=answer or frozenset(), leaky=leaky)


def load_record_file(path: Path) -> BenchRecord:
    """One record from a JSON file (``kiln research --record FILE``)."""
    data = read_json_file(path, max_bytes=MAX_RECORD_BYTES, what="the CVE record")
    return record_from_json(data, Location(str(path)))


def load_records(path: Path) -> list[BenchRecord]:
    """Every record of a JSON-lines file, each line checked; errors name ``path:line``."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORDS_BYTES:
            raise InputError(
                f"is {size} bytes, larger than the limit of {MAX_RECORDS_BYTES}",
                location=Location(str(path)),
            )
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(
            f"cannot read the records: {exc.strerror or exc}", location=Location(str(path))
        ) from exc
    records: list[BenchRecord] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = Location(str(path), number)
        data = parse_json(line, where=str(where), max_bytes=MAX_RECORD_BYTES, what="the record")
        records.append(record_from_json(data, where))
    if not records:
        raise InputError("holds no CVE records", location=Location(str(path)))
    return records


def whole_ids(ids: Sequence[str]) -> re.Pattern[str]:
    """A pattern naming any of ``ids`` as a whole id, in any case: no letter or digit
    right before or after, so ``CVE-2024-2379`` is not named by ``CVE-2024-23790``,
    ``XCVE-2024-2379`` or ``CVE-2024-2379a``, but is by ``fix-CVE-2024-2379`` (a branch
    name) and ``CVE-2024-2379_1.patch``. The finder's ordering, the mentions source
    and the release notes read text with it."""
    alternatives = "|".join(re.escape(i) for i in ids)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])", re.IGNORECASE)
