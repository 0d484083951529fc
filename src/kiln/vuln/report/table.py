"""The human report: findings grouped by severity, worst first, with a fix column.

Laid out here rather than by ``rich.table.Table``: a rich table measures, wraps and
renders every cell as its own renderable, which took seconds for a few thousand
findings. Here each row is one line of padded columns, handed to rich in bulk; rich
only adds the colour of the headings, and only on a terminal that has colour (a
pipe or file gets plain text; ``NO_COLOR`` is honoured by rich).

Cells are feed and target text, shown as written: no rich markup, no emoji codes, and
no control characters or terminal escape sequences (a hostile advisory title cannot
move the cursor, retitle the terminal or hide text).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from kiln.text import plain_line
from kiln.vuln.model import Finding, Severity
from kiln.vuln.report.interface import Formatter
from kiln.vuln.scan import ScanResult

_HEADING = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.NEGLIGIBLE: "dim",
    Severity.UNKNOWN: "dim",
}
_COLUMNS = ("Vulnerability", "Package", "Installed", "Fix available", "Status", "Title")
# Widest a column may get before its cells are cut with an ellipsis; the title takes
# what the console width leaves, between _TITLE_MIN and _TITLE_MAX cells.
_CAPS = (40, 40, 32, 32, 16)
_TITLE_MIN, _TITLE_MAX = 12, 80
_GAP = "  "
_ELLIPSIS = "…"


def _fit(text: str, width: int) -> str:
    """``text`` padded to ``width`` cells, or cut to it with an ellipsis."""
    size = cell_len(text)
    if size <= width:
        return text + " " * (width - size)
    return set_cell_size(text, width - 1) + _ELLIPSIS


def _fixed(f: Finding) -> str:
    """The fix column: the fixed version, where Debian unstable fixes it, or "no"."""
    if f.fix_available:
        return f.fixed_version or ""
    return f"unstable {f.unstable_version}" if f.unstable_version else "no"


def _cells(f: Finding) -> tuple[str, ...]:
    cells = (
        f.id + (" [KEV]" if f.kev else ""),
        f.package_name,
        f.package_version,
        _fixed(f),
        f.status.value,
        f.title,
    )
    return cells if all(map(str.isprintable, cells)) else tuple(map(plain_line, cells))


def _column_width(cells: tuple[str, ...]) -> int:
    """Cells the widest of ``cells`` takes (characters, when all are ASCII)."""
    return max(map(len if "".join(cells).isascii() else cell_len, cells))


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the report and the rich style of its text (``None``: plain)."""

    text: str
    style: str | None = None


def report_lines(result: ScanResult, width: int | None) -> list[Line]:
    """The report for ``result`` laid out for a console ``width`` cells wide (or any).

    Columns are as wide as their widest cell up to a cap; the title gets the rest of
    the line (at least ``_TITLE_MIN`` cells, so a narrow console wraps rather than
    losing every title). Pure: the same result and width give the same lines.
    """
    d = result.distro
    distro = f" ({d.id} {d.version_id or ''} {d.codename or ''})".rstrip() if d else ""
    heading = f"{result.target}{distro}: {result.package_count} packages"
    lines = [Line(plain_line(heading), "bold")]
    active = sorted(result.active, key=lambda f: f.sort_key)
    rows = [_cells(f) for f in active]
    if rows:
        widths = [
            min(cap, _column_width((name, *column)))
            for name, cap, column in zip(_COLUMNS, _CAPS, zip(*rows, strict=True), strict=False)
        ]
        room = _TITLE_MAX if width is None else width - sum(widths) - len(_GAP) * len(widths)
        longest = _column_width((_COLUMNS[-1], *(r[-1] for r in rows)))
        widths.append(min(longest, _TITLE_MAX, max(_TITLE_MIN, room)))
        header = _GAP.join(_column(_COLUMNS[i : i + 1], w)[0] for i, w in enumerate(widths))
        rule = _GAP.join("-" * w for w in widths)
        columns = [_column(c, w) for c, w in zip(zip(*rows, strict=True), widths, strict=True)]
        body = [_GAP.join(cells).rstrip() for cells in zip(*columns, strict=True)]
        start = 0
        for severity, group in groupby(active, key=lambda f: f.severity):
            count = sum(1 for _ in group)
            lines.append(Line(""))
            lines.append(Line(f"{severity.label.upper()} ({count})", _HEADING[severity]))
            lines.append(Line(header.rstrip(), "bold"))
            lines.append(Line(rule))
            lines.extend(map(Line, body[start : start + count]))
            start += count
        lines.append(Line(""))
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts().items() if v)
    suppressed = len(result.findings) - len(active)
    summary = f"{len(active)} findings" + (f" ({counts})" if counts else "")
    summary += f"; {sum(1 for f in active if f.fix_available)} with a fix available"
    if suppressed:
        summary += f"; {suppressed} not affected per VEX"
    lines.append(Line(summary, "bold"))
    lines.extend(Line(plain_line(f"warning: {w}"), "yellow") for w in result.warnings)
    return lines


def _column(cells: tuple[str, ...], width: int) -> list[str]:
    """Each of ``cells`` padded to ``width`` cells or cut to it with an ellipsis."""
    if not "".join(cells).isascii():
        return [_fit(c, width) for c in cells]
    cut = width - 1
    return [c.ljust(width) if len(c) <= width else c[:cut] + _ELLIPSIS for c in cells]


@dataclass(frozen=True)
class ScanTable:
    """A rich renderable of the report, laid out when the console is known.

    On a terminal the title column shrinks to the console width; a pipe or file has no
    width, so titles get their full ``_TITLE_MAX`` cells there. Print it with
    ``crop=False``: rich would otherwise cut lines wider than its width, versions too.
    """

    result: ScanResult

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width if console.is_terminal else None
        newline = Segment.line()
        for style, run in groupby(report_lines(self.result, width), key=lambda line: line.style):
            texts = [line.text for line in run]
            # plain rows go out 64 to a segment: few segments for rich to walk, and
            # short enough for rich to split into lines if printed with crop=True
            for at in range(0, len(texts), 64):
                text = "\n".join(texts[at : at + 64])
                yield Segment(text, Style.parse(style)) if style else Segment(text)
                yield newline


class TableFormatter(Formatter):
    name: ClassVar[str] = "table"

    def render(self, result: ScanResult) -> ScanTable:
        return ScanTable(result)
