"""Render the suite's result: a table per app (rich), failure details, and JSON.

The JSON document (schema ``kiln.compat/v1``) carries everything the table shows plus
the FROM swaps, every observed response and the log tails of failed steps.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kiln.compat.runner import AppResult, SuiteResult

SCHEMA = "kiln.compat/v1"


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _mark(value: bool) -> str:
    return "ok" if value else "FAIL"


def _count(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _change(before: int | None, after: int | None) -> str:
    if before is None or after is None or before == 0 or after >= before:
        return ""
    return f" (-{(before - after) * 100 / before:.0f}%)"


def table(result: SuiteResult) -> Table:
    """One row per app: build, run, identical answers; size, packages, CVEs before -> after."""
    grid = Table(title="compatibility: official-image stand-ins -> kiln images")
    for header in ("app", "build", "run", "same", "size", "packages", "CVEs", "result"):
        grid.add_column(header, no_wrap=True)
    for app in result.apps:
        b, a = app.before, app.after
        grid.add_row(
            app.name,
            f"{_mark(b.build_ok)}/{_mark(a.build_ok)}",
            f"{_mark(b.run_ok)}/{_mark(a.run_ok)}",
            "yes" if app.identical else "NO",
            f"{human_size(b.size)} -> {human_size(a.size)}{_change(b.size, a.size)}",
            f"{_count(b.packages)} -> {_count(a.packages)}",
            f"{_count(b.cves)} -> {_count(a.cves)}{_change(b.cves, a.cves)}",
            Text("ok", style="green") if app.ok else Text("FAIL", style="bold red"),
        )
    return grid


def failures(result: SuiteResult) -> list[RenderableType]:
    """Why each failed app failed, with the log tail of the failing step."""
    parts: list[RenderableType] = []
    for problem in result.problems:
        parts.append(Text(f"suite: {problem}", style="red"))
    for app in result.apps:
        if app.ok:
            continue
        lines = [f"{app.name}: FAILED"]
        lines += [f"  FROM {swap}" for swap in app.swaps]
        for side in (app.before, app.after):
            if side.problem:
                lines.append(f"  {side.name}: {side.problem}")
                if side.log_tail:
                    lines += [f"    | {line}" for line in side.log_tail.splitlines()]
        lines += [f"  differs: {d}" for d in app.differences]
        parts.append(Text("\n".join(lines)))
    return parts


_SOURCE_NOTE: dict[tuple[str, ...], str] = {
    ("debian-archive",): " (Debian's signed changelogs, fixed + fix-in-unstable; no tracker data)"
}


def notes(result: SuiteResult) -> list[str]:
    """Footnotes: CVE counts not available, stand-ins reused, time taken."""
    out: list[str] = []
    cve_notes = sorted(
        {s.cve_note for app in result.apps for s in (app.before, app.after) if s.cve_note}
    )
    out += [f"CVEs: {note}" for note in cve_notes]
    used = sorted({s.cve_source for app in result.apps for s in (app.before, app.after)} - {""})
    if used:
        out.append(f"CVEs: Debian data from {', '.join(used)}{_SOURCE_NOTE.get(tuple(used), '')}")
    cached = [s.name for s in result.standins if s.cached]
    built = [s.name for s in result.standins if not s.cached]
    if built:
        out.append(f"stand-ins built: {', '.join(built)}")
    if cached:
        out.append(f"stand-ins reused: {', '.join(cached)}")
    out.append(f"took {result.seconds:.0f}s")
    return out


def render(result: SuiteResult) -> Group:
    parts: list[RenderableType] = [table(result)]
    parts += failures(result)
    parts += [Text(n, style="dim") for n in notes(result)]
    return Group(*parts)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def app_json(app: AppResult) -> dict[str, Any]:
    data: dict[str, Any] = {"ok": app.ok, **_jsonable(app)}
    return data


def to_json(result: SuiteResult) -> str:
    document = {
        "schema": SCHEMA,
        "ok": result.ok,
        "seconds": round(result.seconds, 1),
        "problems": list(result.problems),
        "apps": [app_json(a) for a in result.apps],
        "standins": _jsonable(result.standins),
        "kiln_images": _jsonable(result.kiln_images),
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
