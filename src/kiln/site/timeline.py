"""The remediation loop's events and the pull requests awaiting review, per image.

Advisory events come from ``kiln.vuln.advisories.AdvisoryStore`` (the same database
the scans read, ``--db``); pull requests from ``kiln.forge.LocalGitForge`` over the
catalog repository (``--forge DIR``; without it the review queue is empty and the page
says so). Every string here is as the store holds it: the templates escape it and strip
control characters; nothing is interpreted.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

MAX_EVENTS = 500
_SCALARS = (str, int, float, bool)


def _details(data: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted(data.items()) if isinstance(v, _SCALARS))


def advisories_for(db: str | None, images: Collection[str] | None) -> list[dict[str, Any]]:
    """Advisory events about ``images`` (labels: ``python``, ``python-dev``; None: all),
    newest first, at most ``MAX_EVENTS``."""
    from kiln.vuln.advisories import AdvisoryStore  # noqa: PLC0415 (SQLAlchemy: on use)

    with AdvisoryStore.open(db) as store:
        events = store.events()
    chosen = [e for e in events if images is None or e.image in images]
    chosen.reverse()
    return [
        {
            "time": e.to_json()["time"] or "",
            "image": e.image,
            "vuln_id": e.vuln_id,
            "kind": e.kind.value,
            "package": e.package or "",
            "details": _details(dict(e.data)),
        }
        for e in chosen[:MAX_EVENTS]
    ]


def pull_requests_for(forge: Path | None, images: Collection[str]) -> list[dict[str, Any]]:
    """Open pull requests of the local forge about ``images``, with their evidence."""
    if forge is None:
        return []
    from kiln.forge import LocalGitForge  # noqa: PLC0415

    local = LocalGitForge(forge)
    found = []
    for pr in local.list():
        if pr.state != "open" or pr.image not in images:
            continue
        found.append(
            {
                **pr.to_dict(),
                "checks": {k: str(v) for k, v in pr.checks.items()},
                "evidence": local.body(pr.id),
            }
        )
    return found


def safely(make: Any, *args: Any) -> tuple[list[dict[str, Any]], str]:
    """``make(*args)``, or no rows and why (a page shows the rest of the image anyway)."""
    try:
        return make(*args), ""
    except KilnError as exc:
        return [], exc.message
