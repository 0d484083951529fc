"""``kiln research`` end to end through kiln's entry point (real git, shipped ranker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.recipes.dep3 import parse_dep3
from research.conftest import FIXBENCH, Upstream, record_json


def _record(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record_json(**fields)))
    return path


def test_json_output_ranks_the_fix_first_with_evidence(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["research", "CVE-2023-0001", "--repo", str(upstream.work),
         "--record", str(_record(tmp_path)), "--json", "--patch", str(tmp_path / "fix.patch")]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kiln"][0]["commit"] == upstream.fix
    assert out["baseline"][0]["commit"] == upstream.fix
    assert out["kiln"][0]["fired"]
    assert len(out["kiln"]) <= 10
    header = parse_dep3((tmp_path / "fix.patch").read_text(), path="fix.patch")
    assert header.cves == ("CVE-2023-0001",)


def test_text_output_and_affected_verdict(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "parse.c").write_text("int parse(void) { return 0; }\n")
    code = main(
        ["research", "CVE-2023-0001", "--repo", str(upstream.work),
         "--description", "buffer overflow in parse() before 1.1", "--published", "2023-08-10",
         "--affected", str(tree)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert f" 1. {upstream.fix[:12]}" in out
    assert "affected? not_affected (vulnerable_code_not_present)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["research", "nonsense", "--repo", "."], "is not a vulnerability id"),
        (["research", "CVE-2023-0001", "--description", "x"], "--repo or --package is needed"),
        (["research", "CVE-2023-0001", "--repo", "/nonexistent/repo", "--description", "x"],
         "no repository"),
        (["research", "CVE-2023-0001", "--repo", ".", "--description", "x",
          "--published", "soon"], "not an ISO 8601 date"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_reason(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_garbage_record_file_exits_2(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "record.json"
    path.write_text('{"cve": "CVE-2023-0001", "description": [1]}')
    assert (
        main(["research", "CVE-2023-0001", "--repo", str(upstream.work), "--record", str(path)])
        == 2
    )
    assert "'description' must be a string" in capsys.readouterr().err


def test_a_record_about_another_cve_is_refused(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["research", "CVE-2023-9999", "--repo", str(upstream.work),
            "--record", str(_record(tmp_path))]  # fmt: skip
    assert main(args) == 2
    assert "is about CVE-2023-0001" in capsys.readouterr().err


def test_backport_needs_the_package_and_catalog(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["research", "CVE-2023-0001", "--repo", str(upstream.work),
            "--record", str(_record(tmp_path)), "--backport"]  # fmt: skip
    assert main(args) == 2
    assert "--backport needs --package, --catalog" in capsys.readouterr().err


@pytest.mark.network
def test_package_reads_unstables_patches_and_still_finds_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """jq: unstable moved to upstream 1.8 for CVE-2025-49014 (no patch names a commit):
    the signed archive is read, nothing is added, and the ranking stands."""
    bench = FIXBENCH / "cves.jsonl"
    if not bench.exists():
        pytest.skip("fixbench is not here")
    line = next(x for x in bench.read_text().splitlines() if '"CVE-2025-49014"' in x)
    data = json.loads(line)
    record = tmp_path / "record.json"
    record.write_text(line)
    code = main(
        ["research", "CVE-2025-49014", "--package", "jq", "--json", "--record", str(record),
         "--repo", str(FIXBENCH / "repos" / "jq.git")]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(data["fix_commits"]) & {c["commit"] for c in out["kiln"]}


def test_no_window_no_candidates_exits_1_with_a_hint(
    upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    # no publication date and no versions: the git window is empty
    args = ["research", "CVE-2023-0001", "--repo", str(upstream.work), "--description", "x"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no candidate commits for CVE-2023-0001" in err
    assert "--published" in err


def test_backport_summary_says_build_tests_fixes_and_both_scans(tmp_path: Path) -> None:
    """The lines printed after a backport (the values are a result as D's pipeline fills it)."""
    from kiln.cli.research import backport_summary
    from kiln.pipeline.backport import (
        BackportResult,
        ImageOutcome,
        PackageTests,
        ScanCounts,
    )

    scan = {
        when: ScanCounts(tmp_path / when, {"high": n}, n, cve_reported=n == 2)
        for when, n in (("before", 2), ("after", 1))
    }
    result = BackportResult(
        source="libarchive", base_version="3.7.4-4", kiln_version="3.7.4-4+kiln1",
        cves=("CVE-2025-0001",), files={}, patches={}, packages=(),
        package_tests=PackageTests(
            ran=True, summary=("# PASS:  612",), log=tmp_path / "build.log",
            recipe_tests=(("bsdtar runs", True, ""), ("rar", False, "exit 1")),
        ),
        build_seconds=612.4, apt_repository=tmp_path / "repo", origin=(), patch_origins={},
        provenance=tmp_path / "p.json", changelog_line="",
        image=ImageOutcome(
            name="bsdtar", variants=("runtime",), layouts={}, digests={}, tests_passed=3,
            tests_failed=0, before=(scan["before"],), after=(scan["after"],),
            kiln_fixes={"libarchive13t64": "CVE-2025-0001"},
        ),
        timings={"build": 612.4, "image": 80.0},
    )  # fmt: skip
    lines = backport_summary(result)
    assert lines[0].startswith("built libarchive 3.7.4-4+kiln1 (0 .debs, 612 s) from 3.7.4-4")
    assert "package tests: ran (# PASS:  612)" in lines[1]
    assert "recipe tests: 1 passed, failed: rar" in lines
    assert any("Kiln-Fixes libarchive13t64: CVE-2025-0001" in line for line in lines)
    assert "scan before: CVE-2025-0001 listed; after: not listed" in lines
    assert lines[-1] == "timings: build 612 s, image 80 s"
