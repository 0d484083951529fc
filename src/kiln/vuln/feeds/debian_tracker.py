"""Debian Security Tracker JSON export -> ``TrackerStatus`` records.

The export (``/tracker/data/json``) maps source package -> CVE -> {description, scope,
releases: {codename: {status, repositories, fixed_version, urgency, nodsa, nodsa_reason}}}.
The real file is about 70 MB, so it is stream-parsed one source package at a time with
ijson; memory stays bounded by the largest package (linux). Format notes:
https://security-tracker.debian.org/tracker/data/json and the tracker's own docs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import ijson  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from kiln.errors import Location
from kiln.jsonlimits import MAX_DEPTH, stream_nesting_exceeds
from kiln.vuln.feeds._stream import CountingReader
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning
from kiln.vuln.feeds.source import FeedInput
from kiln.vuln.model import FeedRecord, TrackerStatus

TRACKER_URL = "https://security-tracker.debian.org/tracker/data/json"


class _Release(BaseModel):
    # The tracker adds fields over time; unknown ones are ignored, known ones checked.
    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["resolved", "open", "undetermined"]
    repositories: dict[str, str] = {}
    fixed_version: str | None = None
    urgency: str | None = None
    nodsa: str | None = None
    nodsa_reason: str | None = None


class _Cve(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    description: str | None = None
    scope: str | None = None
    # A CVE with no release data is written as an empty list, not an empty object.
    releases: dict[str, _Release] | list[None] = {}


_PACKAGE = TypeAdapter(dict[str, _Cve])


def _loc_path(package: str, loc: tuple[int | str, ...]) -> str:
    # Union members show up in pydantic locations as type tags ("dict[str,_Release]").
    parts = [str(p) for p in loc if not str(p).startswith(("dict[", "list["))]
    return ".".join([package, *parts])


class DebianTrackerFeed(Feed):
    """The Debian Security Tracker's per-source-package CVE status export."""

    name: ClassVar[str] = "debian-tracker"
    default_url: ClassVar[str | None] = TRACKER_URL

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        member = source.members()[0] if source.kind in ("dir", "zip") else None
        with source.open(member) as raw:
            # ijson keeps a path per event: deep nesting costs O(depth^2) memory (60 KB
            # nested 30,000 levels took 2.2 GB), so it is refused before parsing
            if stream_nesting_exceeds(raw, MAX_DEPTH):
                raise FeedFormatError(
                    f"not a Debian tracker export: it nests deeper than {MAX_DEPTH} levels",
                    Location(source.origin, field="$"),
                )
        with source.open(member) as raw:
            reader = CountingReader(raw)
            if reader.peek_first_byte() != b"{":
                raise FeedFormatError(
                    "not a Debian tracker export: the top level must be a JSON object "
                    "(source package -> CVE -> releases)",
                    Location(source.origin, field="$"),
                )
            last = "(start)"
            try:
                for package, cves in ijson.kvitems(reader, "", use_float=True):
                    yield from self._package(source.origin, package, cves, reader.offset)
                    last = package
            except ijson.JSONError as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise FeedFormatError(
                    f"malformed JSON near byte {reader.offset}, after source package "
                    f"{last!r}: {first_line}",
                    Location(source.origin, field=f"$.{last}"),
                    hint="the download may be truncated; fetch the export again",
                ) from exc

    def _package(
        self, origin: str, package: str, cves: Any, offset: int
    ) -> Iterator[TrackerStatus | FeedWarning]:
        try:
            parsed = _PACKAGE.validate_python(cves)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise FeedFormatError(
                f"{err['msg']} (near byte {offset})",
                Location(origin, field=_loc_path(package, tuple(err["loc"]))),
            ) from exc
        for cve_id in sorted(parsed):
            cve = parsed[cve_id]
            if not isinstance(cve.releases, dict):
                continue
            for release in sorted(cve.releases):
                rel = cve.releases[release]
                yield TrackerStatus(
                    source=package,
                    cve=cve_id,
                    release=release,
                    status=rel.status,
                    fixed_version=rel.fixed_version,
                    urgency=rel.urgency,
                    nodsa=rel.nodsa,
                    nodsa_reason=rel.nodsa_reason,
                    description=cve.description,
                )
