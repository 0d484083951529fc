"""Rebuild comparison: identical .debs, and what differs when they are not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, build_deb
from kiln.recipes.verify import (
    DIFFOSCOPE_MAX_REPORT,
    compare_debs,
    debs_by_package,
    diffoscope_argv,
    run_diffoscope,
)


def test_identical_debs_compare_equal(tmp_path: Path) -> None:
    spec = DebSpec("hello", "1.0-1", files={"usr/share/hello/a": b"a\n"})
    ours = build_deb(spec, tmp_path / "ours" / "hello_1.0-1_all.deb")
    theirs = build_deb(spec, tmp_path / "theirs" / "hello_1.0-1_all.deb")
    result = compare_debs("hello", "1.0-1", debs_by_package([ours]), {"hello": theirs})
    assert result.identical
    assert result.rate == 1.0


def test_differing_debs_name_the_member(tmp_path: Path) -> None:
    ours = build_deb(
        DebSpec("hello", "1.0-1", files={"usr/share/hello/a": b"a\n"}), tmp_path / "o.deb"
    )
    theirs = build_deb(
        DebSpec("hello", "1.0-1", files={"usr/share/hello/a": b"b\n"}), tmp_path / "t.deb"
    )
    result = compare_debs(
        "hello", "1.0-1", {"hello": ours}, {"hello": theirs}, use_diffoscope=False,
        skipped=("hello-dbgsym",),
    )  # fmt: skip
    assert not result.identical
    (item,) = result.packages
    assert item.differences == ("usr/share/hello/a: content differs",)
    assert result.skipped == ("hello-dbgsym",)


def test_package_missing_on_one_side_is_not_identical(tmp_path: Path) -> None:
    ours = build_deb(DebSpec("hello", "1.0-1"), tmp_path / "o.deb")
    result = compare_debs("hello", "1.0-1", {"hello": ours}, {})
    assert not result.identical
    assert result.packages[0].differences == ("not in the distro",)


def test_elf_audit_reads_the_debs(tmp_path: Path) -> None:
    from kiln.recipes.check import audit_debs

    true = Path("/usr/bin/true").read_bytes()
    deb = build_deb(
        DebSpec("tt", "1", files={"usr/lib/t/libtrue.so.1": true, "usr/share/t/doc": b"x"}),
        tmp_path / "tt_1_all.deb",
    )
    (audit,) = audit_debs([deb])
    assert audit.path == "/usr/lib/t/libtrue.so.1"
    assert audit.package == "tt"
    assert audit.nx_stack


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    ours = build_deb(
        DebSpec("hello", "1.0-1", files={"usr/share/hello/greeting": b"hello, kiln!\n"}),
        tmp_path / "ours" / "hello_1.0-1_all.deb",
    )
    theirs = build_deb(
        DebSpec("hello", "1.0-1", files={"usr/share/hello/greeting": b"hello debian\n"}),
        tmp_path / "theirs" / "hello_1.0-1_all.deb",
    )
    return ours, theirs


needs_diffoscope = pytest.mark.skipif(
    shutil.which("diffoscope") is None, reason="diffoscope-minimal is not installed (make apt)"
)


@needs_diffoscope
def test_diffoscope_reports_a_mismatching_pair_next_to_the_result(tmp_path: Path) -> None:
    ours, theirs = _pair(tmp_path)
    result = compare_debs(
        "hello", "1.0-1", {"hello": ours}, {"hello": theirs}, report_dir=tmp_path / "out"
    )
    assert result.diffoscope_available
    (item,) = result.packages
    assert item.differences == ("usr/share/hello/greeting: content differs",)
    assert item.diffoscope is not None
    assert item.diffoscope.complete, item.diffoscope.note
    assert item.diffoscope.path == tmp_path / "out" / "hello.diffoscope.txt"
    report = item.diffoscope.path.read_text()
    # Debian's side first: "-" lines are theirs, "+" lines ours.
    assert "-hello debian" in report
    assert "+hello, kiln!" in report
    assert "usr/share/hello/greeting" in report


@needs_diffoscope
def test_identical_pairs_get_no_diffoscope_report(tmp_path: Path) -> None:
    spec = DebSpec("hello", "1.0-1", files={"usr/share/hello/a": b"a\n"})
    ours = build_deb(spec, tmp_path / "o" / "hello_1.0-1_all.deb")
    theirs = build_deb(spec, tmp_path / "t" / "hello_1.0-1_all.deb")
    result = compare_debs("hello", "1.0-1", {"hello": ours}, {"hello": theirs},
                          report_dir=tmp_path / "out")  # fmt: skip
    assert result.identical
    assert result.packages[0].diffoscope is None
    assert not (tmp_path / "out").exists()


def test_without_diffoscope_the_member_comparison_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    ours, theirs = _pair(tmp_path)
    result = compare_debs(
        "hello", "1.0-1", {"hello": ours}, {"hello": theirs}, report_dir=tmp_path / "out"
    )
    assert not result.diffoscope_available
    (item,) = result.packages
    assert item.diffoscope is None
    assert item.differences == ("usr/share/hello/greeting: content differs",)


def test_a_failing_diffoscope_is_noted_in_its_report(tmp_path: Path) -> None:
    fake = tmp_path / "diffoscope"
    fake.write_text("#!/bin/sh\necho 'diffoscope: broken tool' >&2\nexit 2\n")
    fake.chmod(0o755)
    ours, theirs = _pair(tmp_path)
    report = run_diffoscope(str(fake), theirs, ours, tmp_path / "out" / "hello.txt")
    assert not report.complete
    assert "exit 2" in report.note
    assert "broken tool" in report.note
    assert "[kiln] diffoscope failed (exit 2)" in report.path.read_text()


def test_diffoscope_is_bounded_in_size_and_time(tmp_path: Path) -> None:
    argv = diffoscope_argv("diffoscope", tmp_path / "t.deb", tmp_path / "o.deb",
                           tmp_path / "r.txt", timeout=120)  # fmt: skip
    assert argv[argv.index("--max-report-size") + 1] == str(DIFFOSCOPE_MAX_REPORT)
    assert argv[argv.index("--max-text-report-size") + 1] == str(DIFFOSCOPE_MAX_REPORT)
    assert argv[argv.index("--timeout") + 1] == "120"
    assert argv[argv.index("--text") + 1] == str(tmp_path / "r.txt")
    assert argv[-2:] == [str(tmp_path / "t.deb"), str(tmp_path / "o.deb")]
