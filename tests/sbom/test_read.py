"""``read_sbom_input`` reads what the image installed: identity, packages, licences, files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.resolve.lockfile import ArchLock
from kiln.sbom import SbomInput, Supplier, read_sbom_input
from kiln.sbom.read import supplier_of
from sbom.conftest import Image, build_test_image


@pytest.fixture(scope="module")
def sbom_input(image: Image) -> SbomInput:
    return read_sbom_input(image.layout, lock=image.lock)


def test_image_identity_comes_from_the_layout(image: Image, sbom_input: SbomInput) -> None:
    index = json.loads((image.layout / "index.json").read_bytes())
    named = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    ident = sbom_input.image
    assert ident.name == "tiny"
    assert ident.version == "1.2.3"
    # one platform: index.json names its manifest, the digest users pull by
    assert list(named) == ["latest"]
    assert ident.index_digest == ident.manifest_digest == named["latest"]["digest"]
    assert ident.platform == "linux/amd64"
    assert ident.created.isoformat() == "2023-11-14T22:13:20+00:00"  # the build's epoch
    assert ident.supplier == "kiln tests"  # the vendor annotation
    assert ident.lock_digest == image.lock.digest
    assert sbom_input.distro.purl_qualifier == "debian-13"
    assert sbom_input.warnings == ()


def test_every_installed_package_with_source_purl_and_lock_checksum(
    image: Image, sbom_input: SbomInput
) -> None:
    facts = {
        (p.name, p.version, p.arch, p.source_name, p.source_version) for p in sbom_input.packages
    }
    assert facts == {
        ("base-files", "13.8", "amd64", "base-files", "13.8"),
        ("ca-certificates", "20250419", "all", "ca-certificates", "20250419"),
        ("libc6", "2.41-12", "amd64", "glibc", "2.41-12"),
        ("libexpat1", "2.7.1-2", "amd64", "expat", "2.7.1-2"),
        ("libssl3t64", "3.5.1-1+deb13u1", "amd64", "openssl", "3.5.1-1+deb13u1"),
        ("zlib1g", "1:1.3.dfsg+really1.3.1-1+b1", "amd64", "zlib", "1:1.3.dfsg+really1.3.1-1"),
    }
    assert [p.name for p in sbom_input.packages] == sorted(p.name for p in sbom_input.packages)
    pkgs = {p.name: p for p in sbom_input.packages}
    assert pkgs["libssl3t64"].purl == (
        "pkg:deb/debian/libssl3t64@3.5.1-1%2Bdeb13u1?arch=amd64&distro=debian-13&upstream=openssl"
    )
    assert pkgs["base-files"].purl == "pkg:deb/debian/base-files@13.8?arch=amd64&distro=debian-13"
    locked = {p.name: p for p in image.lock.all_packages()}
    for package in sbom_input.packages:
        assert package.deb_sha256 == locked[package.name].sha256
        assert package.location == f"/var/lib/dpkg/status.d/{package.name}"
    assert pkgs["libssl3t64"].deb_filename == "libssl3t64_3.5.1-1+deb13u1_amd64.deb"


def test_licences_from_machine_readable_copyright_files(sbom_input: SbomInput) -> None:
    pkgs = {p.name: p for p in sbom_input.packages}
    assert pkgs["base-files"].license == "GPL-2.0-or-later"
    assert pkgs["libssl3t64"].license == "Apache-2.0"
    assert pkgs["libexpat1"].license == "BSD-3-Clause OR MIT"
    assert pkgs["ca-certificates"].license == "GPL-2.0-or-later AND MPL-2.0"
    libc = pkgs["libc6"]
    assert libc.license == "LGPL-2.1-or-later AND LicenseRef-public-domain"
    assert [(r.id, r.name, r.text) for r in libc.license_refs] == [
        (
            "LicenseRef-public-domain",
            "public-domain",
            "The tz database is in the public domain.",
        )
    ]
    assert pkgs["zlib1g"].license is None  # free-form copyright file: NOASSERTION


def test_supplier_homepage_and_dependencies(sbom_input: SbomInput) -> None:
    pkgs = {p.name: p for p in sbom_input.packages}
    assert pkgs["libc6"].supplier == Supplier("person", "kiln tests", "tests@example.invalid")
    assert pkgs["libexpat1"].homepage == "https://libexpat.github.io/"
    # "libzstd1 | zlib1g": the installed alternative is the edge
    assert pkgs["libssl3t64"].depends == (pkgs["libc6"].purl, pkgs["zlib1g"].purl)
    assert pkgs["zlib1g"].depends == (pkgs["libc6"].purl,)
    assert pkgs["base-files"].depends == ()


@pytest.mark.parametrize(
    ("maintainer", "expected"),
    [
        (
            "Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>",
            Supplier(
                "organization", "Debian OpenSSL Team", "pkg-openssl-devel@alioth-lists.debian.net"
            ),
        ),
        (
            "GNU Libc Maintainers <debian-glibc@lists.debian.org>",
            Supplier("organization", "GNU Libc Maintainers", "debian-glibc@lists.debian.org"),
        ),
        (
            "Santiago Vila <sanvila@debian.org>",
            Supplier("person", "Santiago Vila", "sanvila@debian.org"),
        ),
        ("", None),
    ],
)
def test_supplier_of_maintainer(maintainer: str, expected: Supplier | None) -> None:
    assert supplier_of(maintainer) == expected


def test_generated_files_with_their_digests(image: Image, sbom_input: SbomInput) -> None:
    paths = [f.path for f in sbom_input.files]
    assert paths == [
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/passwd",
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/lib/kiln/image.json",
    ]
    bundle = next(f for f in sbom_input.files if f.path.endswith("ca-certificates.crt"))
    pem = b"-----BEGIN CERTIFICATE-----\nTest_Root\n-----END CERTIFICATE-----\n"
    assert bundle.sha256 == hashlib.sha256(pem).hexdigest()
    assert bundle.size == len(pem)


def test_without_a_lock_the_package_checksum_is_omitted(image: Image) -> None:
    inp = read_sbom_input(image.layout)
    assert all(p.deb_sha256 is None and p.deb_filename is None for p in inp.packages)
    assert inp.image.lock_digest == image.lock.digest  # still recorded from image.json


def test_a_lock_for_another_build_is_refused(image: Image) -> None:
    other = image.lock.model_copy(update={"spec_sha256": "1" * 64})
    with pytest.raises(InputError, match="not the one this image was built from"):
        read_sbom_input(image.layout, lock=other)


def test_a_package_missing_from_the_lock_is_refused(tmp_path: Path) -> None:
    image = build_test_image(tmp_path, record_lock=False)
    packages = tuple(p for p in image.lock.all_packages() if p.name != "zlib1g")
    short = image.lock.model_copy(
        update={"variants": {"runtime": {"amd64": ArchLock(packages=packages)}}}
    )
    with pytest.raises(
        InputError, match=r"zlib1g .* is installed in the image but not in the lock"
    ):
        read_sbom_input(image.layout, lock=short)


def test_platform_of_a_two_arch_image(tmp_path: Path) -> None:
    image = build_test_image(tmp_path, arches=("amd64", "arm64"))
    arm = read_sbom_input(image.layout, platform="linux/arm64", lock=image.lock)
    amd = read_sbom_input(image.layout, lock=image.lock)  # default linux/amd64
    assert arm.image.platform == "linux/arm64/v8"
    assert arm.image.index_digest == amd.image.index_digest
    assert arm.image.manifest_digest != amd.image.manifest_digest
    assert {p.arch for p in arm.packages} == {"arm64", "all"}
    assert "arch=arm64" in next(p.purl for p in arm.packages if p.name == "libc6")
    with pytest.raises(InputError, match="no image for platform linux/s390x"):
        read_sbom_input(image.layout, platform="linux/s390x")


def test_a_dev_image_is_read_from_the_full_status_file(
    tmp_path: Path, sbom_input: SbomInput
) -> None:
    dev = build_test_image(tmp_path, variant="dev")
    inp = read_sbom_input(dev.layout, lock=dev.lock)
    assert {p.location for p in inp.packages} == {"/var/lib/dpkg/status"}
    assert [replace(p, location="") for p in inp.packages] == [
        replace(p, location="") for p in sbom_input.packages
    ]


def test_reading_is_deterministic(image: Image, sbom_input: SbomInput) -> None:
    assert read_sbom_input(image.layout, lock=image.lock) == sbom_input
    assert replace(sbom_input, warnings=()) == sbom_input
