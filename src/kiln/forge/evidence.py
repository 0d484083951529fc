"""The evidence a pull request carries, and its Markdown description.

``Evidence`` is plain frozen data (the forge layer imports neither ``kiln.vuln`` nor
``kiln.pipeline``; the factory fills it from their results). ``render_markdown`` turns
it into the description a reviewer trusts at a glance: a title line, a summary table of
CVEs before → after, then the package diff, image sizes, checks, provenance, patch
origin and the agent's transcript summary.

Every string that comes from outside (advisory titles, package names, versions, DEP-3
headers, changelog lines, log excerpts) is made inert before it is written: control
characters and line breaks go (``kiln.text.plain_line``), every ASCII punctuation
character is backslash-escaped (CommonMark §2.4 allows it for all of them, so no
emphasis, link, image, heading, table cell or raw HTML can start), and URL schemes,
``www.`` and ``@`` get a word joiner (U+2060) so GitHub's autolink extension cannot
turn a hostile advisory's text into a link. The description is bounded
(``MAX_BODY_CHARS``, below GitHub's 65,536) and says so when it was cut.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kiln.errors import InputError
from kiln.text import plain_line

#: GitHub refuses a pull request body over 65,536 characters; leave room for a footer
MAX_BODY_CHARS = 60_000
#: one feed string (an advisory title, a changelog line) is cut at this many characters
MAX_FIELD_CHARS = 300

CheckStatus = Literal["pass", "fail", "skipped", "error"]
ChangeKind = Literal["bump", "backport", "vex", "research"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("bump", "backport", "vex", "research")


@dataclass(frozen=True)
class CveRow:
    """One vulnerability finding in the image, before or after the change."""

    id: str
    package: str
    installed: str
    severity: str = "unknown"
    fixed_version: str | None = None
    kev: bool = False
    epss: float | None = None
    title: str = ""


@dataclass(frozen=True)
class PackageChange:
    """A package the change adds (``before`` None), removes (``after`` None) or moves."""

    name: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class SizeChange:
    """The image's size on one platform, in bytes, before and after (None: not built)."""

    platform: str
    before: int | None
    after: int | None


@dataclass(frozen=True)
class CheckResult:
    """One check of the change: a test suite, a compat app, the build, the scan."""

    name: str
    status: CheckStatus
    detail: str = ""


@dataclass(frozen=True)
class PatchOrigin:
    """Where a backported patch comes from: its DEP-3 headers and the changelog line."""

    name: str
    headers: Mapping[str, str] = field(default_factory=dict)
    changelog: str | None = None


@dataclass(frozen=True)
class AgentStep:
    """One recorded call of the self-healing agent: the tool, what it did, a digest."""

    tool: str
    summary: str
    digest: str = ""


@dataclass(frozen=True)
class Evidence:
    """Everything a reviewer needs to trust a change (see the module docstring)."""

    image: str
    kind: ChangeKind
    generation: str
    cves_before: tuple[CveRow, ...] = ()
    cves_after: tuple[CveRow, ...] = ()
    packages: tuple[PackageChange, ...] = ()
    sizes: tuple[SizeChange, ...] = ()
    tests: tuple[CheckResult, ...] = ()
    compat: tuple[CheckResult, ...] = ()
    provenance_digest: str | None = None
    patches: tuple[PatchOrigin, ...] = ()
    agent: tuple[AgentStep, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The evidence as JSON-ready data (what the local forge's PR records keep)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object, *, where: str) -> Evidence:
        """``to_dict``'s output back as ``Evidence``; ``InputError`` naming ``where`` and
        the field when it is not that shape (a record edited or corrupted by hand)."""
        try:
            return _evidence_from(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"{where}: the evidence is malformed: {exc}") from exc

    @property
    def cves_fixed(self) -> tuple[str, ...]:
        """The vulnerability ids found before and no longer after, sorted."""
        after = {row.id for row in self.cves_after}
        return tuple(sorted({row.id for row in self.cves_before} - after))

    @property
    def checks(self) -> dict[str, CheckStatus]:
        """Every check by name (``test:``/``compat:`` prefixed), for the PR record."""
        out: dict[str, CheckStatus] = {}
        for prefix, results in (("test", self.tests), ("compat", self.compat)):
            for result in results:
                out[f"{prefix}:{result.name}"] = result.status
        return out

    @property
    def checks_pass(self) -> bool:
        """Whether there is at least one check and every one passed (auto-merge gate)."""
        checks = self.checks
        return bool(checks) and all(status == "pass" for status in checks.values())


# --- from JSON ----------------------------------------------------------------------


def _expect(value: object, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} is not {kind.__name__}")
    return value


def _optional(value: object, kind: type, name: str) -> Any:
    return None if value is None else _expect(value, kind, name)


def _rows(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    rows = _expect(data.get(name, []), list, name)
    return [_expect(row, dict, f"{name}[{n}]") for n, row in enumerate(rows)]


def _before_after(row: Mapping[str, Any], name: str, key: str, kind: type) -> tuple[str, Any, Any]:
    """A (key, before, after) row: the key a string, before/after ``kind`` or None."""
    return (
        _expect(row[key], str, f"{name}.{key}"),
        _optional(row.get("before"), kind, f"{name}.before"),
        _optional(row.get("after"), kind, f"{name}.after"),
    )


def _check(row: Mapping[str, Any], name: str) -> CheckResult:
    status = _expect(row["status"], str, f"{name}.status")
    if status not in ("pass", "fail", "skipped", "error"):
        raise ValueError(f"{name}.status {status!r} is not pass, fail, skipped or error")
    return CheckResult(
        _expect(row["name"], str, f"{name}.name"),
        status,
        _expect(row.get("detail", ""), str, f"{name}.detail"),
    )


def _cve(row: Mapping[str, Any], name: str) -> CveRow:
    epss = row.get("epss")
    if epss is not None and (isinstance(epss, bool) or not isinstance(epss, int | float)):
        raise TypeError(f"{name}.epss is not a number")
    return CveRow(
        id=_expect(row["id"], str, f"{name}.id"),
        package=_expect(row["package"], str, f"{name}.package"),
        installed=_expect(row["installed"], str, f"{name}.installed"),
        severity=_expect(row.get("severity", "unknown"), str, f"{name}.severity"),
        fixed_version=_optional(row.get("fixed_version"), str, f"{name}.fixed_version"),
        kev=_expect(row.get("kev", False), bool, f"{name}.kev"),
        epss=None if epss is None else float(epss),
        title=_expect(row.get("title", ""), str, f"{name}.title"),
    )


def _evidence_from(value: object) -> Evidence:
    data: Mapping[str, Any] = _expect(value, dict, "the evidence")
    kind = _expect(data["kind"], str, "kind")
    if kind not in CHANGE_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(CHANGE_KINDS)}")
    patches = []
    for n, row in enumerate(_rows(data, "patches")):
        headers = _expect(row.get("headers", {}), dict, f"patches[{n}].headers")
        for key, header in headers.items():
            _expect(header, str, f"patches[{n}].headers.{key}")
        patches.append(
            PatchOrigin(
                _expect(row["name"], str, f"patches[{n}].name"),
                dict(headers),
                _optional(row.get("changelog"), str, f"patches[{n}].changelog"),
            )
        )
    return Evidence(
        image=_expect(data["image"], str, "image"),
        kind=kind,  # checked against CHANGE_KINDS above
        generation=_expect(data["generation"], str, "generation"),
        cves_before=tuple(
            _cve(r, f"cves_before[{n}]") for n, r in enumerate(_rows(data, "cves_before"))
        ),
        cves_after=tuple(
            _cve(r, f"cves_after[{n}]") for n, r in enumerate(_rows(data, "cves_after"))
        ),
        packages=tuple(
            PackageChange(*_before_after(r, f"packages[{n}]", "name", str))
            for n, r in enumerate(_rows(data, "packages"))
        ),
        sizes=tuple(
            SizeChange(*_before_after(r, f"sizes[{n}]", "platform", int))
            for n, r in enumerate(_rows(data, "sizes"))
        ),
        tests=tuple(_check(r, f"tests[{n}]") for n, r in enumerate(_rows(data, "tests"))),
        compat=tuple(_check(r, f"compat[{n}]") for n, r in enumerate(_rows(data, "compat"))),
        provenance_digest=_optional(data.get("provenance_digest"), str, "provenance_digest"),
        patches=tuple(patches),
        agent=tuple(
            AgentStep(
                _expect(r["tool"], str, f"agent[{n}].tool"),
                _expect(r["summary"], str, f"agent[{n}].summary"),
                _expect(r.get("digest", ""), str, f"agent[{n}].digest"),
            )
            for n, r in enumerate(_rows(data, "agent"))
        ),
        notes=tuple(
            _expect(note, str, "notes[]") for note in _expect(data.get("notes", []), list, "notes")
        ),
    )


# --- Markdown -----------------------------------------------------------------------

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|file|javascript|data)(?=:)|(www)(?=\.)|(@)")
_JOINER = "\u2060"


def escape(text: object, *, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` as inert Markdown on one line: no markup, no HTML, no autolink.

    Longer than ``limit`` characters, it is cut with an ellipsis.
    """
    line = plain_line(str(text)).strip()
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    line = _AUTOLINK.sub(
        lambda m: m.group(0) + _JOINER if m.group(3) is None else _JOINER + "@", line
    )
    return _PUNCT.sub(r"\\\1", line)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _version(value: str | None) -> str:
    return escape(value) if value else "—"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1_000_000:.2f} MB"


def _delta(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return "—"
    diff = after - before
    sign = "+" if diff > 0 else ""
    percent = f" ({sign}{diff / before * 100:.1f}%)" if before else ""
    return f"{sign}{diff / 1_000_000:.2f} MB{percent}"


_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "negligible": 4}
_STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "error": "❌ error", "skipped": "⏭ skipped"}


def _cve_lines(evidence: Evidence) -> list[str]:
    after = {row.id: row for row in evidence.cves_after}
    before = {row.id: row for row in evidence.cves_before}
    ids = sorted(
        set(before) | set(after),
        key=lambda cve: (
            _SEVERITY_ORDER.get((before.get(cve) or after[cve]).severity.lower(), 5),
            cve,
        ),
    )
    if not ids:
        return ["No known vulnerabilities before or after this change."]
    rows = []
    for cve in ids:
        row = before.get(cve) or after[cve]
        outcome = "still present" if cve in after else "fixed"
        if cve not in before:
            outcome = "new"
        rows.append(
            [
                escape(cve),
                escape(row.severity),
                "yes" if row.kev else "no",
                f"{row.epss:.3f}" if row.epss is not None else "—",
                escape(row.package),
                _version(row.installed),
                _version(row.fixed_version),
                "present" if cve in before else "—",
                outcome,
            ]
        )
    lines = [
        f"**{len(before)} → {len(after)}** known vulnerabilities "
        f"({len(evidence.cves_fixed)} fixed).",
        "",
    ]
    lines += _table(
        ("CVE", "severity", "KEV", "EPSS", "package", "installed", "fixed in", "before", "after"),
        rows,
    )
    titled = [cve for cve in ids if (before.get(cve) or after[cve]).title]
    if titled:
        lines += ["", "<details><summary>Advisory titles</summary>", ""]
        lines += [
            f"- {escape(cve)}: {escape((before.get(cve) or after[cve]).title)}" for cve in titled
        ]
        lines += ["", "</details>"]
    return lines


def _package_lines(evidence: Evidence) -> list[str]:
    if not evidence.packages:
        return ["No package changes."]
    rows = []
    for change in sorted(evidence.packages, key=lambda c: c.name):
        what = "changed"
        if change.before is None:
            what = "added"
        elif change.after is None:
            what = "removed"
        rows.append([escape(change.name), what, _version(change.before), _version(change.after)])
    return _table(("package", "change", "before", "after"), rows)


def _size_lines(evidence: Evidence) -> list[str]:
    rows = [
        [
            escape(size.platform),
            _size(size.before),
            _size(size.after),
            _delta(size.before, size.after),
        ]
        for size in sorted(evidence.sizes, key=lambda s: s.platform)
    ]
    return _table(("platform", "before", "after", "difference"), rows)


def _check_lines(evidence: Evidence) -> list[str]:
    rows = [
        [kind, escape(result.name), _STATUS_MARK[result.status], escape(result.detail)]
        for kind, results in (("test", evidence.tests), ("compat", evidence.compat))
        for result in results
    ]
    if not rows:
        return ["No checks ran."]
    return _table(("kind", "check", "result", "detail"), rows)


def _patch_lines(evidence: Evidence) -> list[str]:
    lines: list[str] = []
    for patch in evidence.patches:
        lines.append(f"- **{escape(patch.name)}**")
        lines.extend(
            f"  - {escape(key, limit=60)}: {escape(value)}"
            for key, value in sorted(patch.headers.items())
        )
        if patch.changelog:
            lines.append(f"  - changelog: {escape(patch.changelog)}")
    return lines


def _agent_lines(evidence: Evidence) -> list[str]:
    lines = [
        f"The self-healing agent made {len(evidence.agent)} recorded call(s); "
        "it never merges, a human reviews.",
        "",
    ]
    rows = [
        [
            str(number),
            escape(step.tool, limit=40),
            escape(step.summary),
            escape(step.digest, limit=80),
        ]
        for number, step in enumerate(evidence.agent, start=1)
    ]
    return lines + _table(("#", "tool", "what", "result digest"), rows)


def render_markdown(evidence: Evidence, *, limit: int = MAX_BODY_CHARS) -> str:
    """The pull request description for ``evidence``, at most ``limit`` characters."""
    fixed = evidence.cves_fixed
    title = (
        f"## kiln {evidence.kind}: {escape(evidence.image, limit=80)} — "
        f"{len(fixed)} CVE{'s' if len(fixed) != 1 else ''} fixed"
    )
    sections: list[tuple[str, list[str]]] = [
        ("Vulnerabilities", _cve_lines(evidence)),
        ("Packages", _package_lines(evidence)),
    ]
    if evidence.sizes:
        sections.append(("Image size", _size_lines(evidence)))
    sections.append(("Checks", _check_lines(evidence)))
    provenance = (
        f"SLSA provenance of the built image: {escape(evidence.provenance_digest, limit=100)}"
        if evidence.provenance_digest
        else "No provenance: the image was not built."
    )
    sections.append(("Provenance", [provenance]))
    if evidence.patches:
        sections.append(("Patch origin", _patch_lines(evidence)))
    if evidence.agent:
        sections.append(("Agent transcript", _agent_lines(evidence)))
    if evidence.notes:
        sections.append(("Notes", [f"- {escape(note)}" for note in evidence.notes]))
    lines = [title, "", f"Generation {escape(evidence.generation, limit=80)}.", ""]
    for name, body in sections:
        lines += [f"### {name}", "", *body, ""]
    return _bounded(lines, limit)


def _bounded(lines: list[str], limit: int) -> str:
    text = "\n".join(lines).rstrip("\n") + "\n"
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    budget = limit - 200  # room for the note
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
    dropped = len(lines) - len(kept)
    note = (
        f"\n_Truncated: {dropped} more line(s) not shown (the description is limited to "
        f"{limit} characters); the full evidence is in kiln's PR record._\n"
    )
    return "\n".join(kept).rstrip("\n") + "\n" + note
