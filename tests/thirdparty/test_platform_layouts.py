"""syft and trivy read every platform of a real multi-platform kiln build (issue 12 item 8).

The catalog's ``static`` image (runtime and -dev) is built for amd64 and arm64 with
``--tar`` from a copy of its spec relocked against today's archive. A multi-platform
layout's ``index.json`` names the image index and each platform manifest, which syft
1.18.1 cannot read (``unexpected number of OCI directory manifests``) and trivy cannot
read as a tar; so every build also writes ``out/<image>/<arch>/`` and, with ``--tar``,
``out/<image>.<arch>.oci.tar``, each naming one image manifest. For each image and
platform:

* ``syft oci-dir:`` and ``syft oci-archive:`` find Debian 13 and exactly the Debian
  packages of kiln's own SBOM of that platform;
* ``trivy image --input`` (layout and archive) finds the OS Debian 13 and the same
  packages;
* skopeo inspects the per-platform archive as that platform, and the whole layout
  still answers for both platforms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.catalog import staged_spec
from thirdparty.tools import spdx_debs, syft_debs, syft_json, trivy_cyclonedx, trivy_debs

pytestmark = [pytest.mark.network, pytest.mark.slow]

ARCHS = ("amd64", "arm64")
IMAGES = ("static", "static-dev")
PLATFORMS = {"amd64": "linux/amd64", "arm64": "linux/arm64/v8"}
BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class Built:
    out: Path  # static/, static-dev/, their .oci.tar and .<arch>.oci.tar


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("platforms")
    spec = staged_spec("static", work / "images")
    out = work / "out"
    argv = [sys.executable, "-m", "kiln.cli.main", "build", str(spec), "--output", str(out)]
    argv += ["--arch", ",".join(ARCHS), "--tar", "--refresh"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return Built(out)


def _kiln_debs(layout: Path, arch: str, tmp_path: Path) -> list[tuple[str, str]]:
    """The Debian packages of kiln's SPDX document of one platform of ``layout``."""
    path = tmp_path / f"kiln-{arch}.spdx.json"
    argv = [sys.executable, "-m", "kiln.cli.main", "sbom", str(layout), "--format", "spdx-json"]
    argv += ["--platform", PLATFORMS[arch], "--output", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return spdx_debs(json.loads(path.read_text()))


def _trivy_os(document: Any) -> tuple[str, str]:
    (os_component,) = [c for c in document["components"] if c["type"] == "operating-system"]
    return os_component["name"], os_component["version"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("image", IMAGES)
def test_syft_and_trivy_read_each_platform(
    built: Built, image: str, arch: str, tmp_path: Path
) -> None:
    layout = built.out / image
    platform_layout = layout / arch
    archive = built.out / f"{image}.{arch}.oci.tar"
    expected = _kiln_debs(layout, arch, tmp_path)
    assert len(expected) >= 4, expected  # base-files, netbase, tzdata, ca-certificates
    assert expected == _kiln_debs(platform_layout, arch, tmp_path)

    for source in (f"oci-dir:{platform_layout}", f"oci-archive:{archive}"):
        sbom = syft_json(source)
        assert (sbom["distro"]["id"], sbom["distro"]["versionID"]) == ("debian", "13"), source
        assert syft_debs(sbom) == expected, source
    for target in (platform_layout, archive):
        document = trivy_cyclonedx(target, tmp_path / "trivy-cache")
        assert _trivy_os(document)[0] == "debian", target
        assert _trivy_os(document)[1].startswith("13"), target
        assert trivy_debs(document) == expected, target


@pytest.mark.parametrize("image", IMAGES)
def test_skopeo_reads_the_whole_layout_and_each_platform_archive(built: Built, image: str) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed")

    def inspect(*argv: str) -> dict[str, Any]:
        done = subprocess.run([skopeo, *argv], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    tag = json.loads((built.out / image / "index.json").read_bytes())["manifests"][0]
    ref = tag["annotations"]["org.opencontainers.image.ref.name"]
    for arch in ARCHS:
        whole = inspect("--override-arch", arch, "inspect", f"oci:{built.out / image}:{ref}")
        alone = inspect("inspect", f"oci-archive:{built.out / f'{image}.{arch}.oci.tar'}")
        assert whole["Architecture"] == alone["Architecture"] == arch
        assert whole["Layers"] == alone["Layers"]  # the same image, not just the same arch
