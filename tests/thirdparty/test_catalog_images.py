"""Every catalog image, runtime and -dev, as the tools users already run read it.

Each catalog spec is built once (this machine's architecture, with ``--tar``) from a
temporary copy relocked against today's archive (``--refresh``), so the test does not
depend on the checked-in locks standing still. Then, for each of the 16 images:

* ``syft oci-dir:`` and ``syft oci-archive:`` read the layout and the archive as kiln
  wrote them, and find exactly the Debian packages kiln's own SBOM lists;
* ``trivy image --input`` reads the layout and the archive, and finds the same;
* kiln's SPDX document passes ``ntia-conformance-checker -c ntia`` (NTIA minimum
  elements: every component has a name, version, identifier and supplier).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.catalog import staged_spec
from kiln.sandbox.unpack import host_arch
from thirdparty.tools import (
    ntia_checker_path,
    require,
    spdx_debs,
    syft_debs,
    syft_json,
    trivy_cyclonedx,
    trivy_debs,
)

pytestmark = [pytest.mark.network, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p.stem for p in (ROOT / "images").glob("*.yaml"))
IMAGES = [name + suffix for name in SPECS for suffix in ("", "-dev")]
BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class Built:
    out: Path  # holds <name>/, <name>-dev/ and their .oci.tar
    failures: dict[str, str]  # spec name -> the end of kiln build's stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Every catalog spec built once (each on its own: one failure fails its two images)."""
    work = tmp_path_factory.mktemp("catalog")
    specs = work / "images"
    out = work / "out"
    failures: dict[str, str] = {}
    for name in SPECS:
        spec = staged_spec(name, specs)
        argv = [sys.executable, "-m", "kiln.cli.main", "build", str(spec)]
        argv += ["--output", str(out), "--arch", host_arch(), "--tar", "--refresh"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
        if done.returncode != 0:
            failures[name] = done.stderr[-4000:]
    return Built(out, failures)


def _kiln_sbom(layout: Path, tmp_path: Path) -> tuple[Path, dict[str, Any], str]:
    path = tmp_path / "kiln.spdx.json"
    argv = [sys.executable, "-m", "kiln.cli.main", "sbom", str(layout), "--format", "spdx-json"]
    argv += ["--output", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return path, json.loads(path.read_text()), done.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_syft_trivy_and_ntia_read_the_image(built: Built, image: str, tmp_path: Path) -> None:
    spec = image.removesuffix("-dev")
    assert spec not in built.failures, built.failures.get(spec)
    layout, archive = built.out / image, built.out / f"{image}.oci.tar"
    assert layout.is_dir()
    assert archive.is_file()
    (entry,) = json.loads((layout / "index.json").read_bytes())["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    sbom_path, sbom, stderr = _kiln_sbom(layout, tmp_path)
    assert "debian_version" not in stderr  # warnings must mean something
    expected = spdx_debs(sbom)
    assert expected, "kiln's SBOM lists no Debian packages"

    for source in (f"oci-dir:{layout}", f"oci-archive:{archive}"):
        assert syft_debs(syft_json(source)) == expected, source
    for target in (layout, archive):
        assert trivy_debs(trivy_cyclonedx(target, tmp_path / "trivy-cache")) == expected, target

    checker = require(ntia_checker_path(), "ntia-conformance-checker")
    report = tmp_path / "ntia.json"
    argv = [checker, "-c", "ntia", str(sbom_path), "-r", "json", "-o", str(report)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    result = json.loads(report.read_text())
    assert result["isNtiaConformant"], (done.stdout[-3000:], result.get("conformanceMessages"))
