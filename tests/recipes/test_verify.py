"""Rebuild comparison: identical .debs, and what differs when they are not."""

from __future__ import annotations

from pathlib import Path

from fixtures.debrepo import DebSpec, build_deb
from kiln.recipes.verify import compare_debs, debs_by_package


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
