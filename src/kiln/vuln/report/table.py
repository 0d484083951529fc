"""The human report: one rich table per severity, worst first, with a fix column."""

from __future__ import annotations

from itertools import groupby
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kiln.vuln.model import Severity
from kiln.vuln.report.interface import Formatter
from kiln.vuln.scan import ScanResult

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.NEGLIGIBLE: "dim",
    Severity.UNKNOWN: "dim",
}


class TableFormatter(Formatter):
    name: ClassVar[str] = "table"

    def render(self, result: ScanResult) -> RenderableType:
        parts: list[RenderableType] = []
        d = result.distro
        distro = f" ({d.id} {d.version_id or ''} {d.codename or ''})".rstrip() if d else ""
        parts.append(
            Text(f"{result.target}{distro}: {result.package_count} packages", style="bold")
        )
        active = sorted(result.active, key=lambda f: f.sort_key)
        for severity, group in groupby(active, key=lambda f: f.severity):
            rows = list(group)
            table = Table(
                title=f"{severity.label.upper()} ({len(rows)})",
                title_style=_STYLE[severity],
                title_justify="left",
                expand=False,
            )
            for col in (
                "Vulnerability",
                "Package",
                "Installed",
                "Fix available",
                "Status",
                "Title",
            ):
                table.add_column(col, overflow="fold")
            for f in rows:
                vid = f.id + (" [KEV]" if f.kev else "")
                # Text cells: feed text is shown as written (no rich markup or emoji codes,
                # so "[/]" in a title cannot break the report), and is not parsed per cell.
                table.add_row(
                    *map(
                        Text,
                        (
                            vid,
                            f.package_name,
                            f.package_version,
                            (f.fixed_version or "") if f.fix_available else "no",
                            f.status.value,
                            f.title[:80],
                        ),
                    )
                )
            parts.append(table)
        counts = ", ".join(f"{k}: {v}" for k, v in result.counts().items() if v)
        suppressed = len(result.findings) - len(result.active)
        summary = f"{len(active)} findings" + (f" ({counts})" if counts else "")
        summary += f"; {sum(1 for f in active if f.fix_available)} with a fix available"
        if suppressed:
            summary += f"; {suppressed} not affected per VEX"
        parts.append(Text(summary, style="bold"))
        for w in result.warnings:
            parts.append(Text(f"warning: {w}", style="yellow"))
        return Group(*parts)
