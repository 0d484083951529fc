"""``kiln.research.codeabsent``: ``vulnerable_code_not_present`` only when the code a fix
changes is nowhere in the source tree (offline: a small tree written here; the network
test reads lz4's real trixie source through the signed path and dpkg-source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.pipeline import ArchiveAccess
from kiln.pipeline.backport import find_unstable_fix
from kiln.pipeline.vexevidence import vex_document
from kiln.research.codeabsent import CodeVerdict, decide_absent, unpacked_source

LIB = """int check(const char* p, int n) {
    if (p == NULL) return -1;
    return decode_block(p, n, output_buffer_size);
}
"""


def _tree(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "decode.c").write_text(LIB)
    (root / "tests").mkdir()
    (root / "tests" / "new_api_test.c").write_text("int main(void) { return 0; }\n")
    return root


def _diff(path: str, removed: str, context: str = "static int old = 0;") -> bytes:
    return (
        f"--- a/{path}\n+++ b/{path}\n@@ -10,3 +10,3 @@ int api(void)\n"
        f" {context}\n-{removed}\n+    return safe_decode(p, n);\n"
    ).encode()


def _decide(tree: Path, *diffs: bytes) -> CodeVerdict:
    return decide_absent(
        image="base", source="lz4", cve="CVE-2026-0003", fix_origin="hand-written",
        diffs=[("fix.patch", b"".join(diffs))], tree=tree, tree_name="lz4 (test tree)",
        installed=("liblz4-1",),
    )  # fmt: skip


def test_a_fix_of_code_that_is_nowhere_in_the_source_holds(tmp_path: Path) -> None:
    verdict = _decide(_tree(tmp_path), _diff("lib/new_api.c", "    return fast_decode(p, n);"))
    assert verdict.statement, verdict.reason
    assert verdict.justification == "vulnerable_code_not_present"
    assert verdict.evidence()[0].startswith("lib/new_api.c @@ -10,3 +10,3 @@ int api(void): ")
    assert "no file 'new_api.c' in the source" in verdict.evidence()[0]
    assert verdict.evidence()[-1] == "source searched: lz4 (test tree), 2 files"
    document = vex_document([verdict], author="kiln", timestamp="2026-12-07T11:00:00Z")
    assert b'"justification": "vulnerable_code_not_present"' in document


def test_a_file_that_exists_or_shares_the_name_makes_no_statement(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    there = _decide(tree, _diff("lib/decode.c", "    return fast_decode(p, n);"))
    assert not there.statement
    assert "the source has a file named 'decode.c' (rule 2)" in there.reason
    moved = _decide(tree, _diff("src/decode.c", "    return fast_decode(p, n);"))
    assert not moved.statement  # same name elsewhere: maybe moved


def test_the_removed_lines_found_in_another_file_make_no_statement(tmp_path: Path) -> None:
    """A renamed file: the vulnerable line is still there, under another name."""
    verdict = _decide(
        _tree(tmp_path),
        _diff("lib/old_decode.c", "    return decode_block(p, n, output_buffer_size);"),
    )
    assert not verdict.statement
    assert verdict.reason.endswith("its line is in lib/decode.c (rule 3)")


def test_no_distinctive_line_or_only_tests_makes_no_statement(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    short = _decide(tree, _diff("lib/new_api.c", "  }", context="{"))
    assert not short.statement
    assert "no line of 16+ characters" in short.reason
    tests = _decide(tree, _diff("tests/other_test.c", "    return fast_decode(p, n);"))
    assert not tests.statement
    assert "no shipped code" in tests.reason
    # one absent hunk and one present one: no statement
    both = _decide(
        tree,
        _diff("lib/new_api.c", "    return fast_decode(p, n);"),
        _diff("lib/decode.c", "    return fast_decode(p, n);"),
    )
    assert not both.statement


@pytest.mark.network
def test_lz4s_real_source_through_the_signed_path(tmp_path: Path) -> None:
    archive = ArchiveAccess.from_environment()
    tree, name = unpacked_source("lz4", "1.10.0-4", tmp_path / "lz4", archive, distro="debian-13")
    assert (tree / "lib" / "lz4frame.c").is_file()
    assert name.startswith("lz4 1.10.0-4 (dpkg-source -x, Debian's patches applied, .dsc sha256 ")
    # a fix for code lz4 1.10.0 does not have (a file and lines that are nowhere in it)
    new = _decide(tree, _diff("lib/lz4_stream_v2.c", "    LZ4_streamV2_decode(ctx, src, dst);"))
    assert new.statement, new.reason
    assert new.files_searched > 100
    # the vulnerable line is still in lz4.c under a made-up old file name: no statement
    real_line = next(
        line
        for line in (tree / "lib" / "lz4.c").read_text(errors="replace").splitlines()
        if len(" ".join(line.split())) > 30 and "LZ4_decompress_generic" in line
    )
    moved = _decide(tree, _diff("lib/lz4_old.c", real_line))
    assert not moved.statement
    assert moved.reason.endswith("its line is in lib/lz4.c (rule 3)")
    # the fix Debian unstable really carries for CVE-2025-62813: lz4frame.c is there
    fix = find_unstable_fix("lz4", "CVE-2025-62813", archive=archive)
    if fix is None or not fix.patches:
        pytest.skip("the archive moved: unstable no longer carries a patch for CVE-2025-62813")
    real = decide_absent(
        image="base", source="lz4", cve="CVE-2025-62813", fix_origin=fix.origin,
        diffs=[(p.name, p.text) for p in fix.patches], tree=tree, tree_name=name,
    )  # fmt: skip
    assert not real.statement
    assert "the source has a file named 'lz4frame.c' (rule 2)" in real.reason
