"""Packages installed outside dpkg (pip from a wheel, npm from the registry) are in the SBOM.

kiln's -dev images carry pip (python-dev) and npm/corepack (node-dev) that no dpkg
database lists; the SBOM reader finds them from their own metadata (dist-info
``METADATA``, ``package.json``) the way the scanner does, and the documents list them
as the image's components (not the OS's), with their purls.
"""

from __future__ import annotations

import json
from pathlib import Path

from kiln.sbom import generate_cyclonedx, generate_spdx, read_sbom_input
from vuln.conftest import make_layout

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.41-12
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
"""


def _rootfs(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n')
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    pip = root / "usr/local/lib/python3.13/site-packages/pip-25.1.1.dist-info"
    pip.mkdir(parents=True)
    (pip / "METADATA").write_text("Metadata-Version: 2.1\nName: pip\nVersion: 25.1.1\n")
    npm = root / "usr/local/lib/node_modules/npm"
    npm.mkdir(parents=True)
    (npm / "package.json").write_text(json.dumps({"name": "npm", "version": "10.9.9"}))
    return root


def test_pip_and_npm_are_components_of_the_image(tmp_path: Path) -> None:
    layout = make_layout(_rootfs(tmp_path / "rootfs"), tmp_path / "layout")
    inp = read_sbom_input(layout, source_date_epoch=1767225600)
    by_purl = {p.purl: p for p in inp.packages}
    assert by_purl["pkg:pypi/pip@25.1.1"].ecosystem == "pypi"
    assert by_purl["pkg:npm/npm@10.9.9"].ecosystem == "npm"
    assert any(p.ecosystem == "deb" and p.name == "libc6" for p in inp.packages)

    spdx = json.loads(generate_spdx(inp))  # spdx-tools validated it
    ids = {p["name"]: p["SPDXID"] for p in spdx["packages"]}
    contains = {
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in spdx["relationships"]
        if r["relationshipType"] == "CONTAINS"
    }
    assert ("SPDXRef-Image", ids["pip"]) in contains
    assert ("SPDXRef-Image", ids["npm"]) in contains
    assert ("SPDXRef-OperatingSystem", ids["libc6"]) in contains
    pip = next(p for p in spdx["packages"] if p["name"] == "pip")
    assert "sourceInfo" not in pip  # "built package from" is for Debian packages only

    cdx = json.loads(generate_cyclonedx(inp))
    purls = {c.get("purl") for c in cdx["components"]}
    assert {"pkg:pypi/pip@25.1.1", "pkg:npm/npm@10.9.9"} <= purls
