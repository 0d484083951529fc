"""Advisory events: what happened to one vulnerability in one image, one event at a time.

Modelled on Wolfi's advisory events (wolfictl ``advisory`` data, schema 2): a
vulnerability's life in an image is an append-only list of typed events, and its current
status is read off the newest *determining* event. Wolfi's kinds are kept with their
meaning: ``detection`` (a scanner or feed reported it; under investigation),
``true-positive-determination`` (it applies; affected), ``false-positive-determination``
(it does not apply; not_affected, with a VEX justification), ``pending-upstream-fix``
(affected, waiting for upstream), ``fix-not-planned`` (affected, no fix will come),
``fixed`` (fixed in a version). kiln adds the remediation loop's own records, which say
what was tried and never change the status: ``remediation-attempted`` (step, outcome,
reason), ``pr-opened``, ``pr-merged`` and ``published`` (the image digest that carries the
fix).

Each kind's ``data`` is checked by a frozen pydantic model; anything else (an unknown kind,
a missing justification, an unknown field, an oversized value) is an ``InputError`` that
names the kind and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kiln.errors import InputError, Location
from kiln.text import plain_line
from kiln.vuln.vex.model import JUSTIFICATIONS

#: an event's data, as canonical JSON, may not exceed this (a package's file list as
#: evidence fits: 256 KiB is some 4,000 paths)
MAX_DATA_BYTES = 256 * 1024
#: one free-text value (a note, an impact statement, a reason)
MAX_TEXT = 8 * 1024

_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VULN = re.compile(r"[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9._:-]{1,60}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}|pkg:[A-Za-z0-9.+-]+/[\x21-\x7e]{1,250}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_STEP = re.compile(r"[a-z][a-z0-9-]{0,31}")


class EventKind(StrEnum):
    """The kinds of advisory event (Wolfi's six, then kiln's remediation records)."""

    DETECTION = "detection"
    TRUE_POSITIVE = "true-positive-determination"
    FALSE_POSITIVE = "false-positive-determination"
    PENDING_UPSTREAM_FIX = "pending-upstream-fix"
    FIX_NOT_PLANNED = "fix-not-planned"
    FIXED = "fixed"
    REMEDIATION_ATTEMPTED = "remediation-attempted"
    PR_OPENED = "pr-opened"
    PR_MERGED = "pr-merged"
    PUBLISHED = "published"


#: kinds that decide a vulnerability's status, and the OpenVEX status each gives
DETERMINING: Mapping[EventKind, str] = {
    EventKind.DETECTION: "under_investigation",
    EventKind.TRUE_POSITIVE: "affected",
    EventKind.FALSE_POSITIVE: "not_affected",
    EventKind.PENDING_UPSTREAM_FIX: "affected",
    EventKind.FIX_NOT_PLANNED: "affected",
    EventKind.FIXED: "fixed",
}


def _text(*, required: bool = False) -> Any:
    """A free-text field: 1..MAX_TEXT characters, optional unless ``required``."""
    if required:
        return Field(min_length=1, max_length=MAX_TEXT)
    return Field(default=None, min_length=1, max_length=MAX_TEXT)


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


class DetectionData(_Data):
    """Who reported it: ``source`` (``manual``, ``kiln-scan``, a feed name), what was seen."""

    source: str = Field(default="manual", min_length=1, max_length=64)
    installed_version: str | None = Field(default=None, min_length=1, max_length=256)
    severity: str | None = Field(default=None, min_length=1, max_length=32)
    scanner: str | None = Field(default=None, min_length=1, max_length=128)
    note: str | None = _text()


class TruePositiveData(_Data):
    note: str | None = _text()


def _justification(value: str) -> str:
    """One of OpenVEX's five ``not_affected`` justifications."""
    if value in JUSTIFICATIONS:
        return value
    raise ValueError(f"must be one of {', '.join(JUSTIFICATIONS)}")


class FalsePositiveData(_Data):
    """A ``not_affected`` determination: an OpenVEX justification and why it holds."""

    justification: Annotated[str, AfterValidator(_justification)]
    impact_statement: str = _text(required=True)
    evidence: str | list[str] | None = None

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else value or []
        if any(not item or len(item) > MAX_TEXT for item in items):
            raise ValueError(f"each evidence item must be 1..{MAX_TEXT} characters")
        return value


class NoteData(_Data):
    """``pending-upstream-fix`` and ``fix-not-planned``: Wolfi requires the note saying why."""

    note: str = _text(required=True)


class FixedData(_Data):
    fixed_version: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9.+~:_-]+$")
    note: str | None = _text()


class RemediationData(_Data):
    """One step of the remediation loop and how it ended."""

    step: str = Field(max_length=32)
    outcome: Literal["started", "succeeded", "failed", "skipped", "dead-lettered"]
    reason: str | None = _text()
    generation: str | None = Field(default=None, min_length=1, max_length=128)
    attempt: int | None = Field(default=None, ge=0, le=1_000_000)

    @field_validator("step")
    @classmethod
    def _step(cls, value: str) -> str:
        if not _STEP.fullmatch(value):
            raise ValueError("must be a lower-case word such as bump, backport, vex, research")
        return value

    @model_validator(mode="after")
    def _reason(self) -> RemediationData:
        if self.outcome in ("failed", "skipped", "dead-lettered") and not self.reason:
            raise ValueError(f"a {self.outcome} step needs a reason")
        return self


class PrOpenedData(_Data):
    pr_id: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=2048)
    branch: str | None = Field(default=None, min_length=1, max_length=256)
    generation: str | None = Field(default=None, min_length=1, max_length=128)


class PrMergedData(_Data):
    pr_id: str = Field(min_length=1, max_length=128)
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,64}$")


class PublishedData(_Data):
    digest: str
    reference: str | None = Field(default=None, min_length=1, max_length=512)

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not _DIGEST.fullmatch(value):
            raise ValueError("must be sha256:<64 hex digits>")
        return value


DATA_MODELS: Mapping[EventKind, type[_Data]] = {
    EventKind.DETECTION: DetectionData,
    EventKind.TRUE_POSITIVE: TruePositiveData,
    EventKind.FALSE_POSITIVE: FalsePositiveData,
    EventKind.PENDING_UPSTREAM_FIX: NoteData,
    EventKind.FIX_NOT_PLANNED: NoteData,
    EventKind.FIXED: FixedData,
    EventKind.REMEDIATION_ATTEMPTED: RemediationData,
    EventKind.PR_OPENED: PrOpenedData,
    EventKind.PR_MERGED: PrMergedData,
    EventKind.PUBLISHED: PublishedData,
}


def parse_kind(value: str | EventKind, *, where: str = "advisory event") -> EventKind:
    """``value`` as an ``EventKind``, or an ``InputError`` listing the kinds."""
    try:
        return EventKind(value)
    except ValueError:
        raise InputError(
            f"unknown advisory event kind {str(value)[:64]!r}",
            Location(where, field="kind"),
            hint=f"one of {', '.join(k.value for k in EventKind)}",
        ) from None


def canonical_data(data: Mapping[str, Any]) -> str:
    """The JSON text stored for ``data``: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def validate_data(kind: EventKind, data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``data`` checked against ``kind``'s model: the fields given, normalised, or an
    ``InputError`` naming the field."""
    if not isinstance(data, Mapping):
        raise InputError(
            f"{kind.value}: data must be a mapping of field to value", Location(where, field="data")
        )
    try:
        size = len(canonical_data(data).encode())
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{kind.value}: data is not JSON-serialisable ({exc})", Location(where, field="data")
        ) from None
    if size > MAX_DATA_BYTES:
        raise InputError(
            f"{kind.value}: data is {size} bytes as JSON, more than {MAX_DATA_BYTES}",
            Location(where, field="data"),
        )
    try:
        model = DATA_MODELS[kind].model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        raise InputError(
            f"{message} (in a {kind.value} event)",
            Location(where, field=f"data.{path}" if path else "data"),
        ) from None
    return model.model_dump(mode="json", exclude_none=True)


def format_time(value: datetime) -> str:
    """An event time as stored: RFC 3339 in UTC to the second (``2026-01-02T03:04:05Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, where: str) -> datetime:
    """A stored or given RFC 3339 time; one without a time zone is refused."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"time {text[:64]!r} is not an RFC 3339 date-time", Location(where, field="time")
        ) from None
    if value.tzinfo is None:
        raise InputError(f"time {text[:64]!r} has no time zone", Location(where, field="time"))
    return value.astimezone(UTC)


def _check(pattern: re.Pattern[str], value: object, name: str, *, where: str, hint: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        raise InputError(
            f"invalid {name} {str(value)[:80]!r}", Location(where, field=name), hint=hint
        )
    return value


@dataclass(frozen=True)
class AdvisoryEvent:
    """One event about ``vuln_id`` in ``image``; checked on construction.

    ``package`` is the binary package (``openssl``) or a purl the event is about; ``time``
    is when it happened (``None``: the store stamps the time of the append, UTC). ``id``
    is the store's sequence number, set on events read back (``None`` before an append).
    """

    image: str
    vuln_id: str
    kind: EventKind
    package: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    time: datetime | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        where = plain_line(f"advisory event {str(self.image)[:80]} {str(self.vuln_id)[:64]}")
        _check(_IMAGE, self.image, "image", where=where, hint="an image name such as python-dev")
        _check(_VULN, self.vuln_id, "vuln_id", where=where, hint="an id such as CVE-2024-1234")
        if self.package is not None:
            _check(
                _PACKAGE,
                self.package,
                "package",
                where=where,
                hint="a Debian binary package name or a purl",
            )
        kind = parse_kind(self.kind, where=where)
        if self.time is not None:
            if not isinstance(self.time, datetime) or self.time.tzinfo is None:
                raise InputError(
                    "time must be a timezone-aware datetime", Location(where, field="time")
                )
            object.__setattr__(self, "time", self.time.astimezone(UTC).replace(microsecond=0))
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "data", validate_data(kind, self.data, where=where))

    @property
    def determining(self) -> bool:
        """Whether this event decides the vulnerability's status."""
        return self.kind in DETERMINING

    def to_json(self) -> dict[str, Any]:
        """The event as kiln's JSON output shows it."""
        return {
            "id": self.id,
            "image": self.image,
            "vuln_id": self.vuln_id,
            "kind": self.kind.value,
            "package": self.package,
            "time": format_time(self.time) if self.time else None,
            "data": dict(self.data),
        }
