"""Images built by kiln's own assembler are read back completely and without warnings.

Runtime variants carry ``/var/lib/dpkg/status.d/<pkg>`` (+ ``.md5sums``), the layout is
a two-arch OCI index, and the OCI and docker archives hold the same image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assemble.helpers import build_deb, make_input
from kiln.assemble import build_image, package_input
from kiln.debian.deb import read_deb
from kiln.inventory import OsRelease, load_target

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n'


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed (make apt)")
    work = tmp_path_factory.mktemp("kiln-image")
    inputs = []
    for arch in ("amd64", "arm64"):
        (work / arch).mkdir()
        base = build_deb(
            work / arch,
            "base-files",
            {"usr/lib/os-release": OS_RELEASE, "etc/os-release": "->../usr/lib/os-release"},
            version="13.8",
            arch=arch,
        )
        libssl = build_deb(
            work / arch,
            "libssl3t64",
            {"usr/lib/libssl.so.3": b"not really a library\n"},
            version="3.5.1-1+deb13u1",
            arch=arch,
            fields={"Source": "openssl", "Multi-Arch": "same"},
        )
        python = build_deb(
            work / arch,
            "python3-six",
            {
                "usr/lib/python3/dist-packages/six-1.17.0.dist-info/METADATA": (
                    b"Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n"
                ),
            },
            version="1.17.0-1",
            arch=arch,
            fields={"Source": "six (1.17.0-1)"},
        )
        packages = tuple(package_input(read_deb(d)) for d in (base, libssl, python))
        inputs.append(make_input(packages, arch=arch))
    out = work / "out" / "tiny"
    build_image(
        inputs,
        out,
        oci_archive=work / "tiny.oci.tar",
        docker_archive=work / "tiny.docker.tar",
        docker_archive_arch="amd64",
    )
    return out


def test_kiln_runtime_image_layout(image: Path) -> None:
    inventory = load_target(image)
    assert inventory.warnings == ()
    assert inventory.distro == OsRelease("debian", "13", "trixie", "Debian GNU/Linux 13 (trixie)")
    facts = {(p.ecosystem, p.name, p.version, p.source_name, p.arch) for p in inventory.packages}
    assert facts == {
        ("deb", "base-files", "13.8", "base-files", "amd64"),
        ("deb", "libssl3t64", "3.5.1-1+deb13u1", "openssl", "amd64"),
        ("deb", "python3-six", "1.17.0-1", "six", "amd64"),
        ("pypi", "six", "1.17.0", None, None),
    }
    libssl = next(p for p in inventory.packages if p.name == "libssl3t64")
    assert libssl.purl == (
        "pkg:deb/debian/libssl3t64@3.5.1-1%2Bdeb13u1?arch=amd64&distro=debian-13&upstream=openssl"
    )
    assert libssl.locations == ("/var/lib/dpkg/status.d/libssl3t64",)
    arm = load_target(image, platform="linux/arm64")
    assert {p.arch for p in arm.packages if p.ecosystem == "deb"} == {"arm64"}


@pytest.mark.parametrize("archive", ["tiny.oci.tar", "tiny.docker.tar"])
def test_kiln_archives_match_the_layout(image: Path, archive: str) -> None:
    layout = load_target(image)
    packed = load_target(image.parent.parent / archive)
    assert packed.warnings == ()
    assert [p.purl for p in packed.packages] == [p.purl for p in layout.packages]
    assert packed.distro == layout.distro
