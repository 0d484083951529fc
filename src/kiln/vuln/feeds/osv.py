"""OSV records (JSON or YAML; a directory, a zip, or one file) -> ``OsvRecord``.

Schema: https://ossf.github.io/osv-schema/ . OSV is an open schema (databases add
fields), so unknown fields are ignored but the fields kiln relies on are validated:
``id``, ``modified``, ``affected[].package``, range types and events. A range kiln cannot
order (a version that does not parse in the ecosystem's scheme, an event with two keys,
no ``introduced``) is skipped with a warning naming the file and field; GIT ranges are
kept out of matching (commits say nothing about installed versions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import Location
from kiln.jsonlimits import parse_json
from kiln.vuln.ecosystems import BadVersionError, normalize_package_name, version_parser
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning, ImportMode
from kiln.vuln.feeds.source import FeedInput
from kiln.vuln.model import FeedRecord, OsvAffected, OsvEvent, OsvRange, OsvRecord

_SUFFIXES = (".json", ".yaml", ".yml")
_MAX_RECORD_BYTES = 64 * 1024 * 1024  # one advisory; the largest in OSV's dumps are ~1 MB
_YAML_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


class _Package(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    ecosystem: str = Field(min_length=1)
    name: str = Field(min_length=1)
    purl: str | None = None


class _Range(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["ECOSYSTEM", "SEMVER", "GIT"]
    repo: str | None = None
    events: list[dict[str, str]] = Field(min_length=1)


class _Affected(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    package: _Package | None = None
    ranges: list[_Range] = []
    versions: list[str] = []


class _Severity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str
    score: str


class _Reference(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str | None = None
    url: str


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str = Field(min_length=1)
    modified: str
    published: str | None = None
    withdrawn: str | None = None
    aliases: list[str] = []
    summary: str = ""
    details: str = ""
    severity: list[_Severity] = []
    affected: list[_Affected] = []
    references: list[_Reference] = []
    database_specific: dict[str, Any] | None = None


def _load(data: bytes, display: str) -> Any:
    if display.endswith(".json"):
        return parse_json(
            data,
            where=display,
            max_bytes=_MAX_RECORD_BYTES,
            what="the OSV record",
            error=FeedFormatError,
        )
    try:
        if b"&" in data or b"*" in data:  # only then can the document hold an anchor or alias
            _refuse_aliases(data, display)
        # The base loader keeps every scalar a string: "2.10" must not become the float 2.1.
        return yaml.load(data, Loader=_YAML_LOADER)  # noqa: S506 - BaseLoader builds no objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise FeedFormatError(
            f"malformed YAML: {exc.problem}", Location(display, line=line)
        ) from exc
    except yaml.YAMLError as exc:
        raise FeedFormatError(f"malformed YAML: {exc}", Location(display)) from exc


def _refuse_aliases(data: bytes, display: str) -> None:
    """Refuse anchors and aliases: OSV records never need them, and a few hundred bytes
    of nested aliases stand for billions of nodes once validated or serialised."""
    for event in yaml.parse(data, Loader=_YAML_LOADER):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor is not None:
            mark = event.start_mark
            written = f"*{anchor}" if isinstance(event, yaml.AliasEvent) else f"&{anchor}"
            raise FeedFormatError(
                f"YAML anchors and aliases are not accepted ({written})",
                Location(display, line=mark.line + 1 if mark is not None else None),
            )


def _event(raw: dict[str, str]) -> OsvEvent:
    if len(raw) != 1:
        raise ValueError(f"an event must have exactly one key, got {sorted(raw)}")
    ((key, value),) = raw.items()
    if key not in ("introduced", "fixed", "last_affected", "limit"):
        raise ValueError(f"unknown event type {key!r}")
    return OsvEvent(**{key: str(value)})


def _check_range(ecosystem: str, rng: _Range, events: tuple[OsvEvent, ...]) -> None:
    if not any(e.introduced is not None for e in events):
        raise ValueError("the range has no 'introduced' event")
    parse = version_parser(ecosystem, rng.type)
    if parse is None:
        return
    for e in events:
        for v in (e.introduced, e.fixed, e.last_affected):
            if v is not None and not (v == "0" and e.introduced == v):
                try:
                    parse(v)
                except BadVersionError as exc:
                    raise ValueError(str(exc)) from exc


def parse_osv(data: bytes, display: str) -> tuple[OsvRecord, list[FeedWarning]]:
    """One OSV document -> record and the warnings for ranges it had to skip."""
    raw = _load(data, display)
    if not isinstance(raw, dict):
        raise FeedFormatError("an OSV record must be an object", Location(display, field="$"))
    try:
        rec = _Record.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        raise FeedFormatError(
            f"invalid OSV record: {err['msg']}", Location(display, field=path)
        ) from exc
    warnings: list[FeedWarning] = []
    affected: list[OsvAffected] = []
    for ai, aff in enumerate(rec.affected):
        if aff.package is None:
            continue  # a GIT-only entry: nothing to match installed packages against
        eco = aff.package.ecosystem
        ranges: list[OsvRange] = []
        for ri, rng in enumerate(aff.ranges):
            where = f"affected[{ai}].ranges[{ri}]"
            try:
                events = tuple(_event(e) for e in rng.events)
                if rng.type != "GIT":
                    _check_range(eco, rng, events)
            except ValueError as exc:
                warnings.append(
                    FeedWarning(f"{rec.id}: range skipped: {exc}", Location(display, field=where))
                )
                continue
            ranges.append(OsvRange(rng.type, events))
        affected.append(
            OsvAffected(
                ecosystem=eco,
                package=normalize_package_name(eco, aff.package.name),
                ranges=tuple(ranges),
                versions=tuple(aff.versions),
            )
        )
    db_sev = (rec.database_specific or {}).get("severity")
    return (
        OsvRecord(
            id=rec.id,
            aliases=tuple(sorted(set(rec.aliases) - {rec.id})),
            summary=rec.summary,
            details=rec.details,
            modified=rec.modified,
            published=rec.published,
            severity=tuple((s.type, s.score) for s in rec.severity),
            database_severity=db_sev if isinstance(db_sev, str) else None,
            references=tuple(r.url for r in rec.references),
            affected=tuple(affected),
            withdrawn=rec.withdrawn,
        ),
        warnings,
    )


class OsvFeed(Feed):
    """OSV advisories for any ecosystem (PyPI, npm, Go, Debian, ...)."""

    name: ClassVar[str] = "osv"
    # One input usually holds one ecosystem; importing npm must not drop PyPI.
    mode: ClassVar[ImportMode] = "upsert"

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        members = source.members()
        for member in members:
            display = source.display(member)
            name = member if source.kind in ("dir", "zip") else source.origin
            if not name.endswith(_SUFFIXES):
                if source.kind in ("dir", "zip"):
                    continue  # LICENSE, README and friends
                name += ".json"
            with source.open(member if source.kind in ("dir", "zip") else None) as fh:
                data = fh.read()
            record, warnings = parse_osv(data, display if display.endswith(_SUFFIXES) else name)
            yield from warnings
            if record.withdrawn:
                yield FeedWarning(f"{record.id}: withdrawn, skipped", Location(display))
                continue
            yield record
