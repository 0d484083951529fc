"""The table and JSON report layouts: what they show, hostile text, and the JSON layout."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from rich.console import Console

from kiln.text import plain_line as plain_cell
from kiln.vuln.model import Finding, FindingStatus, Severity
from kiln.vuln.report import FORMATTERS, result_json
from kiln.vuln.report._layout import ANY, dumps_lines
from kiln.vuln.report.json_format import render_json
from kiln.vuln.report.table import report_lines
from kiln.vuln.scan import DistroInfo, ScanResult


def _finding(n: int, severity: Severity, **changes: object) -> Finding:
    f = Finding(
        id=f"CVE-2024-{1000 + n}",
        aliases=(f"GHSA-aaaa-bbbb-{n:04d}",),
        package_ecosystem="deb",
        package_name=f"lib{n % 7}",
        package_version=f"1.{n}-1",
        package_purl=f"pkg:deb/debian/lib{n % 7}@1.{n}-1",
        source_name=f"src{n % 7}",
        source_version=f"1.{n}-1",
        locations=("/var/lib/dpkg/status",),
        status=FindingStatus.FIXED if n % 2 else FindingStatus.OPEN,
        fixed_version=f"1.{n}-2" if n % 2 else None,
        severity=severity,
        severity_source="debian-tracker",
        cvss_vector=None,
        cvss_score=None,
        kev=n == 3,
        epss=None,
        title=f"issue number {n} in the parser",
        urls=(),
        matches=(),
    )
    # changes overrides fields of several types, per test: not one TypedDict
    return replace(f, **changes)  # type: ignore[arg-type]


def _result(findings: list[Finding], warnings: tuple[str, ...] = ()) -> ScanResult:
    return ScanResult(
        "rootfs", DistroInfo("debian", "12", "bookworm"), 42, tuple(findings), (), warnings
    )


SEVERITIES = [Severity.LOW, Severity.CRITICAL, Severity.MEDIUM, Severity.HIGH]


def _many(count: int = 40) -> list[Finding]:
    return [_finding(n, SEVERITIES[n % len(SEVERITIES)]) for n in range(count)]


def _print(result: ScanResult, width: int = 120, **console: object) -> str:
    out = io.StringIO()
    # console is passed through to rich's Console: options of several types
    Console(file=out, width=width, **console).print(FORMATTERS["table"].render(result))  # type: ignore[arg-type]
    return out.getvalue()


def test_the_table_groups_by_severity_worst_first_with_fix_column_and_summary() -> None:
    vexed = _finding(99, Severity.CRITICAL, status=FindingStatus.NOT_AFFECTED)
    text = _print(_result([*_many(), vexed], warnings=("no OSV data",)))
    lines = text.splitlines()
    assert lines[0] == "rootfs (debian 12 bookworm): 42 packages"
    headings = [line for line in lines if line.endswith(")") and line.split(" (")[0].isupper()]
    assert headings == ["CRITICAL (10)", "HIGH (10)", "MEDIUM (10)", "LOW (10)"]
    header = lines[lines.index("CRITICAL (10)") + 1]
    assert header.split() == [
        "Vulnerability",
        "Package",
        "Installed",
        "Fix",
        "available",
        "Status",
        "Title",
    ]
    rows = [line for line in lines if line.startswith("CVE-")]
    assert len(rows) == 40  # every active finding once; the VEX-suppressed one is not shown
    assert "CVE-2024-1099" not in text
    kev = next(r for r in rows if r.startswith("CVE-2024-1003"))
    assert kev.split()[:7] == ["CVE-2024-1003", "[KEV]", "lib3", "1.3-1", "1.3-2", "fixed", "issue"]
    unfixed = next(r for r in rows if r.startswith("CVE-2024-1002 "))
    assert unfixed.split()[3:5] == ["no", "open"]
    # columns line up: every row's status starts where the header's does
    at = header.index("Status")
    assert all(r[at:].startswith(("fixed", "open")) for r in rows)
    assert lines[-2] == (
        "40 findings (critical: 10, high: 10, medium: 10, low: 10); "
        "20 with a fix available; 1 not affected per VEX"
    )
    assert lines[-1] == "warning: no OSV data"


def test_long_cells_are_cut_with_an_ellipsis_to_the_console_width() -> None:
    long = _finding(1, Severity.HIGH, title="x" * 300, package_name="p" * 100)
    lines = report_lines(_result([long]), width=120)
    row = next(line.text for line in lines if line.text.startswith("CVE-"))
    assert "p" * 39 + "…" in row
    assert row.endswith("…")
    assert len(row) == 120  # the title takes what the other columns leave
    # a narrow console still shows the start of each title
    narrow = next(line.text for line in report_lines(_result([long]), 40) if "CVE-" in line.text)
    assert "x" * 11 + "…" in narrow


def test_an_empty_result_is_a_heading_and_a_summary() -> None:
    text = _print(_result([]))
    assert text.splitlines() == [
        "rootfs (debian 12 bookworm): 42 packages",
        "0 findings; 0 with a fix available",
    ]


HOSTILE = (
    "ok\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x1b[0m \x9b1A \x1bP1$r\x1b\\ tab\there\nline"
    " \u202eevil\u202c [bold]x[/] :fire: \x00\x08\x7f"
)


def test_plain_cell_drops_escapes_and_controls_and_keeps_the_text() -> None:
    # OSC title, erase screen, colours, 8-bit CSI cursor-up and a DCS string all go
    assert plain_cell(HOSTILE) == "ok red   tab here line evil [bold]x[/] :fire: "
    assert plain_cell("naïve “quotes” 漢字 [x]") == "naïve “quotes” 漢字 [x]"
    assert plain_cell("\x1b") == ""
    assert plain_cell("\x1b[") == ""


@pytest.mark.parametrize("terminal", [False, True])
def test_hostile_feed_text_cannot_reach_the_terminal(terminal: bool) -> None:
    hostile = _finding(
        1, Severity.HIGH, title=HOSTILE, package_name="lib\x1b[8m", fixed_version="2\x1b]8;;x\x07"
    )
    result = _result([hostile], warnings=("bad \x1b[2Jwarning",))
    colours = "standard" if terminal else "auto"  # auto: none, as for a pipe
    text = _print(result, width=400, force_terminal=terminal, color_system=colours)
    for escape in ("\x1b]", "\x1b[2J", "\x1b[8m", "\x1bP", "\x9b", "\x07", "\x00", "\u202e"):
        assert escape not in text
    assert "ok red   tab here line evil [bold]x[/] :fire:" in text
    assert "bad warning" in text
    if terminal:  # only kiln's own styles: the heading colours
        assert "\x1b[31mHIGH (1)\x1b[0m" in text
    else:
        assert "\x1b" not in text


def test_no_color_keeps_the_text_without_colours() -> None:
    text = _print(_result(_many(4)), force_terminal=True, color_system="standard", no_color=True)
    assert "CRITICAL (1)" in text
    assert "\x1b[31m" not in text
    assert "\x1b[1;31m" not in text


def test_json_has_one_finding_per_line_and_the_same_value() -> None:
    findings = [*_many(12), _finding(50, Severity.LOW, title="line\nbreak “ü” \x1b[2J")]
    doc = result_json(_result(findings, warnings=("w1", "w2")))
    text = render_json(doc)
    assert json.loads(text) == doc
    assert list(json.loads(text)) == list(doc)
    lines = text.splitlines()
    assert lines[0] == "{"
    assert lines[1] == '  "schema": "kiln.scan/v1",'
    one_per_line = [line for line in lines if line.startswith('    {"id": ')]
    assert len(one_per_line) == len(findings)
    assert all(json.loads(line.rstrip(",")) in doc["findings"] for line in one_per_line)
    assert text.isascii()  # non-ASCII escaped, as json.dumps does by default
    assert text.endswith("\n}\n")
    assert '\n    "w1",\n' in text  # other arrays stay indented one item per line


def test_json_without_findings_is_an_empty_array() -> None:
    doc = result_json(_result([]))
    text = FORMATTERS["json"].render(_result([]))
    assert isinstance(text, str)
    assert json.loads(text) == doc
    assert '\n  "findings": [],\n' in text
    assert json.loads(render_json({})) == {}


def test_dumps_lines_flattens_only_the_named_arrays() -> None:
    doc = {
        "a": [{"x": [1, 2]}, {"x": []}],
        "runs": [{"results": [{"r": "é"}, {"r": 2}], "other": [{"k": {}}]}],
        "empty": {},
        "none": None,
        "tuple": (1, "two"),
    }
    text = dumps_lines(doc, [("a",), ("runs", ANY, "results")])
    assert json.loads(text) == json.loads(json.dumps(doc))
    assert list(json.loads(text)) == list(doc)
    lines = text.splitlines()
    assert '    {"x": [1, 2]},' in lines
    assert '    {"x": []}' in lines
    assert '        {"r": "\\u00e9"},' in lines
    assert '          "k": {}' in lines  # not named: indented as json.dumps(indent=2) does
    assert '  "empty": {},' in lines
    assert text == dumps_lines(doc, {("a",), ("runs", ANY, "results")})
    assert dumps_lines([], []) == "[]\n"
    with pytest.raises(TypeError, match="key 1 at runs"):
        dumps_lines({"runs": {1: "x"}}, [])


def test_sarif_and_openvex_write_one_result_or_statement_per_line() -> None:
    result = _result(_many(12))
    sarif = FORMATTERS["sarif"].render(result)
    openvex = FORMATTERS["openvex"].render(result)
    assert isinstance(sarif, str)
    assert isinstance(openvex, str)
    results = json.loads(sarif)["runs"][0]["results"]
    lines = sarif.splitlines()
    assert len([x for x in lines if x.startswith('        {"ruleId": ')]) == len(results) == 12
    assert len([x for x in lines if x.startswith('            {"id": "CVE-')]) == 12  # rules
    statements = json.loads(openvex)["statements"]
    assert [json.loads(x.rstrip(",")) for x in openvex.splitlines() if x.startswith("    {")] == (
        statements
    )
