"""``kiln.pipeline.vexevidence`` on real file lists: trixie's .debs read through kiln's
verified path (signed Release -> Packages -> .deb checked against its sha256).

tiff builds ``libtiff6`` (the library) and ``libtiff-tools`` (``/usr/bin/tiffcrop`` and
the other tools): a fix of ``tools/tiffcrop.c`` cannot apply to an image with only the
library. lz4 builds ``liblz4-1`` and ``lz4`` (the program): a fix of ``lib/lz4.c`` is
named like the program but is the library, so it makes no statement; the real fix
Debian unstable carries for CVE-2025-62813 (``lib/lz4frame.c``) makes none either.
The patches other than unstable's are hand-written against the real source file names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.debian import get_distro
from kiln.debian.deb import read_deb
from kiln.debian.source_index import load_sources
from kiln.pipeline import ArchiveAccess
from kiln.pipeline.backport import find_unstable_fix
from kiln.pipeline.vexevidence import (
    ComponentVerdict,
    decide_component,
    image_files,
    installed_strings,
    source_binaries,
)
from kiln.resolve.lockfile import read_lock
from kiln.sandbox.unpack import host_arch

ROOT = Path(__file__).parents[2]


def _diff(path: str, function: str) -> bytes:
    return (
        f"--- a/{path}\n+++ b/{path}\n@@ -100,3 +100,4 @@ {function}\n"
        " \tuint32 width = 0;\n-\tbuf = limitMalloc(width);\n"
        "+\tif (width == 0) return -1;\n+\tbuf = limitMalloc(width);\n"
    ).encode()


def _binaries(archive: ArchiveAccess, source: str) -> tuple[str, ...]:
    distro = get_distro("debian-13")
    universe = load_sources(
        distro, cache=archive.cache, fetcher=archive.fetcher, mirrors=archive.mirrors,
        now=datetime.now(UTC), keyring=archive.keyring, names=[source],
    )  # fmt: skip
    (newest, *_) = universe.versions(source)
    return newest.binaries


@pytest.mark.network
def test_real_tiff_file_lists_prove_a_tiffcrop_fix_absent_from_a_library_only_image() -> None:
    archive = ArchiveAccess.from_environment()
    arch = host_arch()
    names = _binaries(archive, "tiff")
    assert {"libtiff6", "libtiff-tools"} <= set(names)
    tiff = source_binaries("tiff", names, archive, distro="debian-13", arch=arch)
    assert "usr/bin/tiffcrop" in tiff.files["libtiff-tools"]
    library = {"libtiff6": tiff.files["libtiff6"]}
    assert any(f.startswith("usr/lib/") and ".so." in f for f in library["libtiff6"])
    # base (the catalog's real lock, every variant) plus libtiff6: the image read for real
    base = image_files(read_lock(ROOT / "images" / "base.lock.json"), archive, arch=arch)
    assert "usr/bin/env" in base.files()  # base-dev's coreutils
    files = [*base.files(), *library["libtiff6"]]
    # libtiff6's own bytes, for rule 3 (the .deb checked against the signed index)
    entry = archive.snapshot(get_distro("debian-13"), [arch]).universe(arch).get("libtiff6")
    assert entry is not None
    (deb,) = archive.fetch(get_distro("debian-13"), [entry])
    strings = dict(read_deb(deb).contents)

    def decide(*diffs: bytes) -> ComponentVerdict:
        return decide_component(
            image="base", source="tiff", cve="CVE-2026-0001", fix_origin="hand-written",
            diffs=[("fix.patch", b"".join(diffs))], source_files=tiff.files,
            installed=library, image_files=files, strings=strings,
            binaries=tiff.versions,
        )  # fmt: skip

    held = decide(_diff("tools/tiffcrop.c", "static int readSeparateStripsIntoBuffer(TIFF *in)"))
    assert held.statement, held.reason
    lines = held.evidence()
    assert lines[0].startswith("tools/tiffcrop.c -> /usr/bin/tiffcrop (binary package ")
    assert f"{len(set(files))} paths" in lines[1]
    # a hunk in a function libtiff.so.6 exports (its name is in the library's strings)
    exported = decide(_diff("tools/tiffcrop.c", "int TIFFReadScanline(TIFF *tif)"))
    assert not exported.statement
    assert "TIFFReadScanline is a string in installed /usr/lib/" in exported.reason
    # a fix in the library itself, or in both: no statement
    for diffs in (
        [_diff("libtiff/tif_dirread.c", "static int TIFFFetchNormalTag(TIFF *tif)")],
        [
            _diff("tools/tiffcrop.c", "static int readSeparateStripsIntoBuffer(TIFF *in)"),
            _diff("libtiff/tif_read.c", "int TIFFReadScanline(TIFF *tif)"),
        ],
    ):
        refused = decide(*diffs)
        assert not refused.statement
        assert refused.reason.startswith("libtiff/")


@pytest.mark.network
def test_real_lz4_lists_make_no_statement_for_the_library_or_unstables_real_fix() -> None:
    archive = ArchiveAccess.from_environment()
    arch = host_arch()
    lock = read_lock(ROOT / "images" / "base.lock.json")
    base = image_files(lock, archive, arch=arch)
    installed = {n: f for n, f in base.installed.items() if base.sources.get(n) == "lz4"}
    assert "liblz4-1" in installed  # base-dev carries it (through apt)
    lz4 = source_binaries("lz4", _binaries(archive, "lz4"), archive, distro="debian-13", arch=arch)
    assert "usr/bin/lz4" in lz4.files["lz4"]
    strings = installed_strings(base, "lz4", archive, arch=arch)
    assert strings is not None
    assert any(b"\0LZ4_decompress_safe\0" in data for data in strings.values())

    def decide(name: str, diff: bytes) -> ComponentVerdict:
        return decide_component(
            image="base", source="lz4", cve="CVE-2025-62813", fix_origin=name,
            diffs=[(name, diff)], source_files=lz4.files, installed=installed,
            image_files=base.files(), strings=strings,
            installed_anywhere=base.everywhere, binaries=lz4.versions,
        )  # fmt: skip

    # lib/lz4.c is named like the lz4 program, and is the library liblz4.so.1 is built from
    named = decide("lib.patch", _diff("lib/lz4.c", "int LZ4_decompress_safe(const char* src)"))
    assert not named.statement
    assert "(rule 3)" in named.reason
    # the program's own source (lz4cli.c) names no program: cannot be mapped
    cli = decide("cli.patch", _diff("programs/lz4cli.c", "int main(int argc, const char** argv)"))
    assert not cli.statement
    assert "no binary of the source ships a program 'lz4cli'" in cli.reason
    # the fix Debian unstable really carries for CVE-2025-62813
    fix = find_unstable_fix("lz4", "CVE-2025-62813", archive=archive)
    if fix is None or not fix.patches:
        pytest.skip("the archive moved: unstable no longer carries a patch for CVE-2025-62813")
    real = decide(fix.patches[0].name, fix.patches[0].text)
    assert not real.statement
    assert real.reason.startswith("lib/lz4frame.c: ")
