"""The catalog steps read specs and locks from the base branch, never the working tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.factory.catalog import CatalogSteps


def _repo(path: Path) -> Path:
    (path / "images").mkdir(parents=True)
    (path / "images" / "static.yaml").write_text("name: static\n")
    (path / "images" / "static.lock.json").write_text('{"committed": true}\n')
    who = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "images"], [*who, "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return path


def test_stage_copies_the_base_branch_not_the_working_tree(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "catalog")
    (repo / "images" / "static.lock.json").write_text('{"relocked in the working tree": 1}\n')
    (repo / "images" / "extra.yaml").write_text("name: extra\n")  # never committed
    steps = CatalogSteps(repo, archs=("amd64",))
    spec = steps.stage("static", tmp_path / "work")
    assert spec.read_text() == "name: static\n"
    assert spec.with_name("static.lock.json").read_text() == '{"committed": true}\n'
    with pytest.raises(InputError, match=r"branch main has no images/extra\.yaml"):
        steps.stage("extra", tmp_path / "work")


@pytest.mark.parametrize("image", ["../static", "static/../../etc", "", "Static"])
def test_stage_refuses_a_name_that_is_not_an_image(tmp_path: Path, image: str) -> None:
    steps = CatalogSteps(_repo(tmp_path / "catalog"), archs=("amd64",))
    with pytest.raises(InputError, match="is not an image name"):
        steps.stage(image, tmp_path / "work")


def test_stage_without_the_base_branch_is_an_input_error(tmp_path: Path) -> None:
    steps = CatalogSteps(_repo(tmp_path / "catalog"), archs=("amd64",), base="release")
    with pytest.raises(InputError, match="no branch 'release'"):
        steps.stage("static", tmp_path / "work")


def test_the_observed_scan_covers_every_variant_of_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CVE only the -dev image carries (lz4 through apt in base-dev) is the image's
    # too: the scan the reconcile plans from reads what every variant installs.
    from kiln.factory import catalog
    from kiln.resolve.lockfile import read_lock

    lock = read_lock(Path(__file__).parents[2] / "images" / "static.lock.json")
    seen: list[str] = []

    def scan(_target: str, _distro: str, packages: object, _db: object) -> None:
        seen.extend(p.name for p in packages)  # type: ignore[attr-defined]

    monkeypatch.setattr(catalog, "scan_packages", scan)
    CatalogSteps(tmp_path, archs=("amd64",))._scan_lock(lock, "static")
    runtime = {p.name for p in lock.packages("runtime", "amd64")}
    dev = {p.name for p in lock.packages("dev", "amd64")}
    assert dev - runtime  # the fixture has dev-only packages (apt, its libraries)
    assert set(seen) == runtime | dev
    assert len(seen) == len(set(seen))  # a package both variants install is scanned once


def test_remedy_lists_split_the_findings_by_what_can_remedy_them() -> None:
    # fixed (bump), fixed only in unstable (vex/backport/research), fixed nowhere (status
    # open: research alone, Debian packages only); won't-fix and not_affected plan nothing
    from kiln.factory.catalog import remedy_lists
    from kiln.vuln import FindingStatus
    from kiln.vuln.model import Finding, Severity

    def finding(
        cve: str, status: FindingStatus, fixed: str | None = None, ecosystem: str = "deb"
    ) -> Finding:
        return Finding(
            id=cve, aliases=(), package_ecosystem=ecosystem, package_name="libx1",
            package_version="1.1-2", package_purl="pkg:deb/debian/libx1@1.1-2",
            source_name="libx", source_version="1.1-2", locations=(), status=status,
            fixed_version=fixed, severity=Severity.HIGH, severity_source="none",
            cvss_vector=None, cvss_score=None, kev=False, epss=None, title="", urls=(),
            matches=(),
        )  # fmt: skip

    active = [
        finding("CVE-2026-0001", FindingStatus.FIXED, "1.1-3"),
        finding("CVE-2026-0002", FindingStatus.FIX_IN_UNSTABLE),
        finding("CVE-2026-0003", FindingStatus.OPEN),
        finding("CVE-2026-0003", FindingStatus.OPEN),  # a second binary of the source
        finding("CVE-2026-0004", FindingStatus.WONT_FIX),
        finding("CVE-2026-0005", FindingStatus.NOT_AFFECTED),
        # an npm package's open advisory: no Debian source for research to patch
        finding("CVE-2026-0006", FindingStatus.OPEN, ecosystem="npm"),
    ]
    assert remedy_lists(active) == (
        ["CVE-2026-0001"],
        ["libx CVE-2026-0002"],
        ["libx CVE-2026-0003"],
    )
