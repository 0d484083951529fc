"""``source_changelog``: a source's changelog read from one of its binaries (real .debs).

The one loop the backport pipeline (``release_status`` when the packaging tarball is
missing) and the ``debian-archive`` feed both use; the .debs are built with
``dpkg-deb`` and fetched by a stand-in that records what was asked.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, build_deb
from kiln.debian.deb import (
    ChangelogNotFound,
    DebFormatError,
    SourceChangelog,
    source_changelog,
)
from kiln.debian.model import BinaryPackage
from kiln.errors import RemoteContentError

VERSION = "14.2.0-19"
CHANGELOG = (
    f"gcc-14 ({VERSION}) unstable; urgency=medium\n\n  * Fix CVE-2026-2001.\n\n"
    " -- kiln tests <tests@kiln.invalid>  Thu, 15 Jan 2026 12:00:00 +0000\n"
)


def _doc(pkg: str) -> dict[str, bytes]:
    return {f"usr/share/doc/{pkg}/changelog.Debian.gz": gzip.compress(CHANGELOG.encode())}


@dataclass
class _Fetch:
    """Fetches the built .debs by binary name and records the order asked."""

    debs: dict[str, Path]
    asked: list[str] = field(default_factory=list)

    def __call__(self, binary: BinaryPackage) -> Path:
        self.asked.append(binary.name)
        return self.debs[binary.name]


def _build(tmp_path: Path, *specs: DebSpec) -> tuple[list[BinaryPackage], _Fetch]:
    """Build ``specs`` (given smallest first) and their index entries, in that order."""
    debs = {s.name: build_deb(s, tmp_path / f"{s.name}.deb") for s in specs}
    binaries = [
        BinaryPackage(
            s.name, VERSION, "amd64", "gcc-14", VERSION, s.filename, size, "0" * 64, "trixie"
        )
        for size, s in enumerate(specs, start=1)
    ]
    return binaries, _Fetch(debs)


def _spec(
    name: str, files: Mapping[str, bytes] | None = None, symlinks: Mapping[str, str] | None = None
) -> DebSpec:
    return DebSpec(name, VERSION, "amd64", source="gcc-14",
                   files=files or {}, symlinks=symlinks or {})  # fmt: skip


def test_the_first_binary_with_a_changelog_answers(tmp_path: Path) -> None:
    binaries, fetch = _build(tmp_path, _spec("gcc-14-base", files=_doc("gcc-14-base")),
                             _spec("libgcc-s1", files=_doc("libgcc-s1")))  # fmt: skip
    found = source_changelog(binaries, fetch, max_tries=4)
    assert isinstance(found, SourceChangelog)
    assert found.text == CHANGELOG.encode()
    assert found.path == "usr/share/doc/gcc-14-base/changelog.Debian.gz"
    assert found.binary == binaries[0]
    assert fetch.asked == ["gcc-14-base"]


def test_a_doc_directory_symlink_has_the_binary_it_points_to_tried_next(tmp_path: Path) -> None:
    binaries, fetch = _build(
        tmp_path,
        _spec("libgcc-s1", symlinks={"usr/share/doc/libgcc-s1": "gcc-14-base"}),
        _spec("cpp-14"),  # smaller than gcc-14-base, no changelog: skipped over
        _spec("gcc-14-base", files=_doc("gcc-14-base")),
    )
    found = source_changelog(binaries, fetch, max_tries=2)
    assert isinstance(found, SourceChangelog)
    assert found.binary is not None
    assert found.binary.name == "gcc-14-base"
    assert found.text == CHANGELOG.encode()
    assert fetch.asked == ["libgcc-s1", "gcc-14-base"]


def test_no_binary_with_a_changelog_names_the_binaries_tried(tmp_path: Path) -> None:
    binaries, fetch = _build(
        tmp_path,
        _spec("libgcc-s1", symlinks={"usr/share/doc/libgcc-s1": "gcc-14-base"}),
        _spec("cpp-14"),
        _spec("gcc-14-base"),  # a README only
    )
    assert source_changelog(binaries, fetch, max_tries=4) == ChangelogNotFound(
        ("libgcc-s1", "gcc-14-base", "cpp-14")
    )
    fetch.asked.clear()
    assert source_changelog(binaries, fetch, max_tries=1) == ChangelogNotFound(("libgcc-s1",))
    assert fetch.asked == ["libgcc-s1"]
    assert source_changelog([], fetch, max_tries=4) == ChangelogNotFound(())


def test_a_corrupt_deb_is_a_format_error_naming_it(tmp_path: Path) -> None:
    binaries, fetch = _build(tmp_path, _spec("libgcc-s1"), _spec("gcc-14-base"))
    good = fetch.debs["libgcc-s1"].read_bytes()
    fetch.debs["libgcc-s1"].write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DebFormatError) as caught:
        source_changelog(binaries, fetch, max_tries=4)
    error = caught.value
    assert isinstance(error, RemoteContentError)  # reported as a message, not a traceback
    assert error.message.startswith(f"{binaries[0].filename}: not a readable .deb: ")
    assert "Traceback" not in error.diagnostics()
    assert fetch.asked == ["libgcc-s1"]  # nothing after it is read


def test_packaging_is_asked_once_before_the_first_big_binary(tmp_path: Path) -> None:
    binaries, fetch = _build(tmp_path, _spec("libgcc-s1"), _spec("cpp-14"),
                             _spec("gcc-14-base", files=_doc("gcc-14-base")))  # fmt: skip
    asked: list[int] = []

    def packaging(below: int) -> bytes | None:
        asked.append(below)
        return None  # no smaller packaging tarball: read the binaries

    found = source_changelog(binaries, fetch, max_tries=4, packaging=packaging, big=1)
    assert isinstance(found, SourceChangelog)
    assert found.binary == binaries[2]
    assert asked == [2]  # cpp-14 (size 2) is the first over big=1; asked once only

    fetch.asked.clear()
    found = source_changelog(binaries, fetch, max_tries=4, packaging=lambda _: b"log", big=1)
    assert found == SourceChangelog(b"log", "debian/changelog", None)
    assert fetch.asked == ["libgcc-s1"]

    never = source_changelog(binaries, fetch, max_tries=4, packaging=packaging, big=10)
    assert isinstance(never, SourceChangelog)
    assert asked == [2]  # no binary over big: packaging not asked
