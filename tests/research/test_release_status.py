"""``release_status`` when the mirror lacks the newest version's packaging tarball.

The signed-index I/O (``_Suites``: Sources, the packaging tarball, the Packages
snapshot, the .deb download) is replaced by a stand-in; the .debs are real ones built
with ``dpkg-deb`` and read by kiln's checked .deb reader, the changelog by the same
parser the ``debian-archive`` feed uses. The real mirror's case (curl) is
``test_curl_port_network.py``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, build_deb
from kiln.debian.distro import Distro
from kiln.debian.model import BinaryPackage
from kiln.debian.source_index import SourceFile, SourcePackage
from kiln.pipeline import backport
from kiln.pipeline.backport import DebianTree, MirrorMissingError, release_status

CHANGELOG = """\
hello (1.0-1+deb13u3) trixie-security; urgency=medium

  * Fix CVE-2026-0003: a crash.

 -- kiln tests <tests@kiln.invalid>  Thu, 15 Jan 2026 12:00:00 +0000

hello (1.0-1+deb13u2) trixie-security; urgency=medium

  * Fix CVE-2026-0002.
  * CVE-2026-0009 does not affect this version.

 -- kiln tests <tests@kiln.invalid>  Wed, 14 Jan 2026 12:00:00 +0000

hello (1.0-1+deb13u1) trixie-security; urgency=medium

  * Fix CVE-2026-0001.

 -- kiln tests <tests@kiln.invalid>  Tue, 13 Jan 2026 12:00:00 +0000
"""


def _source(version: str) -> SourcePackage:
    files = (
        SourceFile(f"hello_{version}.dsc", 10, "0" * 64),
        SourceFile(f"hello_{version}.debian.tar.xz", 10, "1" * 64),
    )
    return SourcePackage("hello", version, "pool/main/h/hello", files, "trixie",
                         format="3.0 (quilt)", binaries=("hello", "hello-doc"))  # fmt: skip


@dataclass
class _Archive:
    debs: dict[str, Path]  # binary name -> built .deb
    fetched: list[str] = field(default_factory=list)

    def snapshot(self, distro: Distro, archs: list[str]) -> _Archive:
        return self

    def universe(self, arch: str) -> _Archive:
        return self

    def get(self, name: str) -> BinaryPackage | None:
        path = self.debs.get(name)
        if path is None:
            return None
        return BinaryPackage(name, "1.0-1+deb13u3", "all", "hello", "1.0-1+deb13u3",
                             f"pool/main/h/hello/{path.name}", path.stat().st_size,
                             "2" * 64, "trixie-security")  # fmt: skip

    def fetch(self, distro: Distro, packages: list[BinaryPackage]) -> list[Path]:
        self.fetched.extend(p.name for p in packages)
        return [self.debs[p.name] for p in packages]

    @property
    def cache(self) -> _Archive:
        return self

    fetcher = None

    def read_blob(self, sha256: str, *, size: int | None = None) -> bytes:
        return b"a .dsc"


class _Suites:
    """Sources of the versions listed; the packaging of those in ``missing`` is a 404."""

    sources: list[SourcePackage]
    missing: set[str]

    def __init__(self, archive: _Archive, distro: Distro) -> None:
        self.archive = archive
        self.distro = distro
        self.urls = {"trixie": "http://mirror.invalid/debian"}

    def versions(self, suite: str, name: str) -> list[SourcePackage]:
        return [p for p in self.sources if p.suite == suite and p.name == name]

    def debian_tree(self, package: SourcePackage) -> DebianTree:
        if package.version in self.missing:
            raise MirrorMissingError(f"{package.version}: missing from the mirror")
        return DebianTree({}, (), "hello.debian.tar.xz")


@pytest.fixture
def debs(tmp_path: Path) -> dict[str, Path]:
    log = gzip.compress(CHANGELOG.encode())
    small = DebSpec("hello-doc", "1.0-1+deb13u3", source="hello (1.0-1+deb13u3)",
                    symlinks={"usr/share/doc/hello-doc": "hello"})  # fmt: skip
    big = DebSpec("hello", "1.0-1+deb13u3", source="hello (1.0-1+deb13u3)",
                  files={"usr/share/doc/hello/changelog.Debian.gz": log,
                         "usr/share/hello/data": b"x" * 4096})  # fmt: skip
    return {s.name: build_deb(s, tmp_path / f"{s.name}.deb") for s in (small, big)}


@pytest.fixture
def suites(monkeypatch: pytest.MonkeyPatch) -> type[_Suites]:
    _Suites.sources = [_source(v) for v in ("1.0-1+deb13u3", "1.0-1+deb13u2", "1.0-1+deb13u1")]
    _Suites.missing = {"1.0-1+deb13u3", "1.0-1+deb13u2"}  # u1's packaging is on the mirror
    monkeypatch.setattr(backport, "_Suites", _Suites)
    return _Suites


def test_the_newest_binary_changelog_answers_and_the_fetchable_version_is_named(
    debs: dict[str, Path], suites: type[_Suites]
) -> None:
    archive = _Archive(debs)
    status = release_status("hello", "CVE-2026-0002", archive=archive, arch="amd64")  # type: ignore[arg-type]
    assert status.version == "1.0-1+deb13u3"
    assert status.fixed
    assert "CVE-2026-0002" in status.fixed_line
    assert not status.patches_known
    assert "changelog.Debian.gz of binary hello 1.0-1+deb13u3" in status.evidence
    assert "patches are unknown" in status.evidence
    assert status.fetchable == "1.0-1+deb13u1"  # u2's packaging is missing too
    # hello-doc is smaller but its doc folder points at hello's: no changelog of its own
    assert archive.fetched == ["hello-doc", "hello"]
    newer = {m.cve: m.version for m in status.fixed_after("1.0-1+deb13u1")}
    assert newer == {"CVE-2026-0002": "1.0-1+deb13u2", "CVE-2026-0003": "1.0-1+deb13u3"}

    unnamed = release_status("hello", "CVE-2026-0009", archive=archive, arch="amd64")  # type: ignore[arg-type]
    assert not unnamed.fixed  # only a "does not affect" mention


def test_no_binary_with_a_changelog_is_a_mirror_error_naming_what_was_tried(
    debs: dict[str, Path], suites: type[_Suites]
) -> None:
    archive = _Archive({"hello-doc": debs["hello-doc"]})
    with pytest.raises(MirrorMissingError, match=r"no binary package .* \(tried: hello-doc\)"):
        release_status("hello", "CVE-2026-0002", archive=archive, arch="amd64")  # type: ignore[arg-type]


def test_no_version_on_the_mirror_leaves_fetchable_empty(
    debs: dict[str, Path], suites: type[_Suites]
) -> None:
    suites.missing = {p.version for p in suites.sources}
    status = release_status("hello", "CVE-2026-0042", archive=_Archive(debs), arch="amd64")  # type: ignore[arg-type]
    assert status.fetchable is None
    assert not status.fixed
