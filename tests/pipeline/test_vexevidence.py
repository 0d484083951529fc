"""The rules of ``kiln.pipeline.vexevidence`` on file lists, offline.

The file lists are written from trixie's real packages (the paths ``dpkg -L`` shows for
``libtiff6``, ``libtiff-tools``, ``liblz4-1`` and ``lz4``, abridged to the files the
rules look at); tests/pipeline/test_vexevidence_network.py reads them from the real
.debs. The patches are hand-written diffs against the real source file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.pipeline.vexevidence import (
    ComponentVerdict,
    changed_files,
    decide_component,
    vex_document,
    vex_statements,
)
from kiln.vuln.vex.load import load_vex

LIBTIFF6 = [
    "usr/lib/x86_64-linux-gnu/libtiff.so.6.1.0",
    "usr/lib/x86_64-linux-gnu/libtiff.so.6",
    "usr/share/doc/libtiff6/copyright",
]
LIBTIFF_TOOLS = [
    "usr/bin/fax2ps",
    "usr/bin/fax2tiff",
    "usr/bin/pal2rgb",
    "usr/bin/ppm2tiff",
    "usr/bin/raw2tiff",
    "usr/bin/tiff2bw",
    "usr/bin/tiff2pdf",
    "usr/bin/tiff2ps",
    "usr/bin/tiff2rgba",
    "usr/bin/tiffcmp",
    "usr/bin/tiffcp",
    "usr/bin/tiffcrop",
    "usr/bin/tiffdither",
    "usr/bin/tiffdump",
    "usr/bin/tiffinfo",
    "usr/bin/tiffmedian",
    "usr/bin/tiffset",
    "usr/bin/tiffsplit",
    "usr/share/man/man1/tiffcrop.1.gz",
]
TIFF_SOURCE = {
    "libtiff6": LIBTIFF6,
    "libtiff-tools": LIBTIFF_TOOLS,
    "libtiff-dev": ["usr/include/x86_64-linux-gnu/tiff.h", "usr/lib/x86_64-linux-gnu/libtiff.so"],
    "libtiffxx6": ["usr/lib/x86_64-linux-gnu/libtiffxx.so.6"],
}
BASE_FILES = ["etc/passwd", "usr/bin/env", "usr/lib/os-release", *LIBTIFF6]


def diff(path: str, function: str = "static int process(void)") -> bytes:
    """A one-hunk unified diff of ``path`` (the shape of a Debian DEP-3 patch body)."""
    return (
        f"Description: fix\n---\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -10,3 +10,4 @@ {function}\n"
        " \tint x = 0;\n-\tx = y[n];\n+\tif (n < len)\n+\t\tx = y[n];\n"
    ).encode()


def decide(
    diffs: list[tuple[str, bytes]],
    *,
    installed: dict[str, list[str]] | None = None,
    image: list[str] | None = None,
    source: dict[str, list[str]] | None = None,
    strings: dict[str, bytes] | None = None,
    anywhere: tuple[str, ...] = (),
) -> ComponentVerdict:
    got = installed if installed is not None else {"libtiff6": LIBTIFF6}
    return decide_component(
        image="base",
        source="tiff",
        cve="CVE-2026-0001",
        fix_origin="Debian sid tiff 4.7.0-4: CVE-2026-0001.patch",
        diffs=diffs,
        source_files=source if source is not None else TIFF_SOURCE,
        installed=got,
        image_files=image if image is not None else BASE_FILES,
        strings=strings if strings is not None else {},
        installed_anywhere=anywhere or tuple(got),
        binaries=("libtiff6 4.7.0-3", "libtiff-tools 4.7.0-3"),
    )


def test_a_fix_of_a_program_the_image_lacks_is_component_not_present() -> None:
    verdict = decide([("CVE.patch", diff("tools/tiffcrop.c"))])
    assert verdict.statement, verdict.reason
    assert verdict.justification == "component_not_present"
    evidence = verdict.evidence()
    assert evidence[0].startswith("tools/tiffcrop.c -> /usr/bin/tiffcrop (binary package ")
    assert "libtiff-tools" in evidence[0]
    assert any(line.startswith("image file list: 6 paths, sha256 ") for line in evidence)
    assert "looked for in the image: tiffcrop" in evidence
    assert verdict.looked_for == ("tiffcrop",)


def test_tests_and_docs_are_set_aside_but_not_enough_alone() -> None:
    both = decide(
        [("a.patch", diff("tools/tiffcrop.c") + diff("test/tiffcrop-R90.sh") + diff("doc/x.rst"))]
    )
    assert both.statement
    only_tests = decide([("t.patch", diff("test/tiffcrop-R90.sh") + diff("ext/sessionC.test"))])
    assert not only_tests.statement
    assert "no shipped code" in only_tests.reason


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("libtiff/tif_dirread.c", "no binary of the source ships a program 'tif_dirread'"),
        ("libtiff/tiffio.h", "not a program's own source file"),
        ("debian/rules", "not a program's own source file"),
        ("configure.ac", "not a program's own source file"),
        ("tools/ab.c", "not a program's own source file"),  # a two-letter stem maps nothing
    ],
)
def test_a_file_that_cannot_be_mapped_makes_no_statement(path: str, why: str) -> None:
    verdict = decide([("p.patch", diff(path))])
    assert not verdict.statement
    assert why in verdict.reason


def test_one_unmapped_file_among_mapped_ones_makes_no_statement() -> None:
    verdict = decide([("p.patch", diff("tools/tiffcrop.c") + diff("libtiff/tif_read.c"))])
    assert not verdict.statement
    assert verdict.reason.startswith("libtiff/tif_read.c: ")


def test_the_program_installed_in_any_variant_or_arch_makes_no_statement() -> None:
    dev = decide(
        [("p.patch", diff("tools/tiffcrop.c"))],
        installed={"libtiff6": LIBTIFF6, "libtiff-tools": LIBTIFF_TOOLS},
        image=[*BASE_FILES, *LIBTIFF_TOOLS],
    )
    assert not dev.statement
    assert "libtiff-tools is installed (rule 4)" in dev.reason
    # installed on another architecture only (not in the file lists read)
    arm = decide([("p.patch", diff("tools/tiffcrop.c"))], anywhere=("libtiff6", "libtiff-tools"))
    assert not arm.statement
    assert "(rule 4)" in arm.reason


def test_a_file_of_that_name_from_another_package_makes_no_statement() -> None:
    verdict = decide(
        [("p.patch", diff("tools/tiffcrop.c"))],
        image=[*BASE_FILES, "usr/local/bin/tiffcrop"],
    )
    assert not verdict.statement
    assert "a file named 'tiffcrop' (rule 5)" in verdict.reason


def test_lz4_lib_source_named_like_the_program_is_ambiguous() -> None:
    """lib/lz4.c: the ``lz4`` program's name, and liblz4.so.1's: it is the library."""
    liblz4 = ["usr/lib/x86_64-linux-gnu/liblz4.so.1.10.0", "usr/lib/x86_64-linux-gnu/liblz4.so.1"]
    verdict = decide_component(
        image="base",
        source="lz4",
        cve="CVE-2026-0002",
        fix_origin="hand-written",
        diffs=[("p.patch", diff("lib/lz4.c", "int LZ4_decompress_safe(const char* src)"))],
        source_files={
            "liblz4-1": liblz4,
            "lz4": ["usr/bin/lz4", "usr/bin/lz4c", "usr/bin/lz4cat", "usr/bin/unlz4"],
        },
        installed={"liblz4-1": liblz4},
        image_files=liblz4,
        strings={},
    )
    assert not verdict.statement
    assert "liblz4.so.1.10.0, whose name contains 'lz4'" in verdict.reason
    assert "(rule 3)" in verdict.reason


def test_a_hunk_function_exported_by_an_installed_library_makes_no_statement() -> None:
    symbols = b"\0TIFFOpen\0_TIFFprintAscii\0readContigStripsIntoBuffer\0"
    verdict = decide(
        [("p.patch", diff("tools/tiffcrop.c", "int readContigStripsIntoBuffer(TIFF* in)"))],
        strings={"usr/lib/x86_64-linux-gnu/libtiff.so.6.1.0": symbols},
    )
    assert not verdict.statement
    assert "readContigStripsIntoBuffer is a string in installed" in verdict.reason
    # a longer name that merely ends with it is not that function
    other = decide(
        [("p.patch", diff("tools/tiffcrop.c", "static int StripsIntoBuffer(TIFF* in)"))],
        strings={"usr/lib/x86_64-linux-gnu/libtiff.so.6.1.0": symbols},
    )
    assert other.statement
    # the installed files could not be read whole: a hunk function cannot be ruled out
    unread = decide_component(
        image="base", source="tiff", cve="CVE-2026-0001", fix_origin="x",
        diffs=[("p.patch", diff("tools/tiffcrop.c"))], source_files=TIFF_SOURCE,
        installed={"libtiff6": LIBTIFF6}, image_files=BASE_FILES, strings=None,
    )  # fmt: skip
    assert not unread.statement
    assert "too large" in unread.reason


@pytest.mark.parametrize(
    "bad", [b"--- a/../etc/passwd\n+++ b/../etc/passwd\n", b"--- /etc/x\n+++ /etc/x\n"]
)
def test_unsafe_paths_in_a_diff_are_refused(bad: bytes) -> None:
    with pytest.raises(InputError, match="unsafe path"):
        changed_files(bad, where="x.patch")


def test_changed_files_reads_renames_creations_and_hunk_functions() -> None:
    text = (
        b"--- a/tools/old.c\n+++ b/tools/new.c\n@@ -1 +1 @@ int do_it(int a)\n-x\n+y\n"
        b"--- /dev/null\n+++ b/tools/added.c\n@@ -0,0 +1 @@\n+z\n"
    )
    found = changed_files(text)
    assert [(c.path, c.functions) for c in found] == [
        ("tools/old.c", ()),
        ("tools/new.c", ("do_it",)),
        ("tools/added.c", ()),
    ]


def test_the_vex_file_is_openvex_kiln_reads_back(tmp_path: Path) -> None:
    held = decide([("CVE.patch", diff("tools/tiffcrop.c"))])
    held_not = decide([("p.patch", diff("libtiff/tif_read.c"))])
    data = vex_document(
        [held, held_not],
        author="kiln factory",
        timestamp="2026-12-07T11:00:00Z",
    )
    document = json.loads(data)
    (statement,) = document["statements"]
    assert statement["status"] == "not_affected"
    assert statement["justification"] == "component_not_present"
    assert statement["products"] == [{"@id": "pkg:deb/debian/libtiff6"}]
    assert "/usr/bin/tiffcrop" in statement["impact_statement"]
    assert "Evidence: tools/tiffcrop.c -> /usr/bin/tiffcrop" in statement["impact_statement"]
    (tmp_path / "base.openvex.json").write_bytes(data)
    (read,) = load_vex(tmp_path / "base.openvex.json")
    assert (read.vulnerability, read.status) == ("CVE-2026-0001", "not_affected")
    assert vex_statements([held_not], timestamp="t") == []
    with pytest.raises(InputError, match="no verdict holds"):
        vex_document([held_not], author="k", timestamp="t")
