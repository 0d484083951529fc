"""The current state of each (image, vulnerability), derived from its events (pure).

The newest *determining* event (``events.DETERMINING``) decides the status, in OpenVEX's
vocabulary: ``under_investigation`` (detected, not yet judged), ``affected``
(true positive, pending an upstream fix, or no fix planned), ``not_affected`` (a false
positive with its justification) or ``fixed``. A later ``detection`` after ``fixed``
re-opens it (a regression is news). kiln's remediation records (attempts, pull requests,
publications) never change the status; they are the history a reviewer reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kiln.vuln.advisories.events import DETERMINING, AdvisoryEvent, EventKind, format_time


@dataclass(frozen=True)
class AdvisoryState:
    """Where one vulnerability in one image stands, with the events that led there."""

    image: str
    vuln_id: str
    package: str | None
    status: str  # OpenVEX: under_investigation | affected | not_affected | fixed
    determination: AdvisoryEvent | None  # the newest determining event
    events: tuple[AdvisoryEvent, ...]  # every event, in append order

    @property
    def last(self) -> AdvisoryEvent:
        """The newest event of any kind."""
        return self.events[-1]

    @property
    def resolution(self) -> str:
        """The status as a person says it: ``fix-not-planned`` and ``pending-upstream-fix``
        are kept apart from a plain ``affected``."""
        kind = self.determination.kind if self.determination else None
        if kind in (EventKind.PENDING_UPSTREAM_FIX, EventKind.FIX_NOT_PLANNED):
            return str(kind)
        return self.status

    @property
    def time(self) -> datetime | None:
        """When the status was decided (the determining event), else the newest event."""
        event = self.determination or self.last
        return event.time

    def to_json(self) -> dict[str, Any]:
        """The state as ``kiln advisories list --json`` prints it."""
        return {
            "image": self.image,
            "vuln_id": self.vuln_id,
            "package": self.package,
            "status": self.status,
            "resolution": self.resolution,
            "determination": self.determination.to_json() if self.determination else None,
            "last_event": self.last.kind.value,
            "last_time": format_time(self.last.time) if self.last.time else None,
            "events": len(self.events),
        }


def derive_state(events: Sequence[AdvisoryEvent]) -> AdvisoryState:
    """The state of one (image, vulnerability) from its events in append order."""
    if not events:
        raise ValueError("derive_state needs at least one event")
    first = events[0]
    determination = next((e for e in reversed(events) if e.kind in DETERMINING), None)
    package = next((e.package for e in reversed(events) if e.package), None)
    status = DETERMINING[determination.kind] if determination else "under_investigation"
    return AdvisoryState(first.image, first.vuln_id, package, status, determination, tuple(events))


def derive_states(events: Iterable[AdvisoryEvent]) -> list[AdvisoryState]:
    """One state per (image, vulnerability) in ``events`` (append order), sorted by both."""
    grouped: dict[tuple[str, str], list[AdvisoryEvent]] = {}
    for event in events:
        grouped.setdefault((event.image, event.vuln_id), []).append(event)
    return [derive_state(grouped[key]) for key in sorted(grouped)]
