"""SPDX and CycloneDX SBOMs: purls, source packages, distro, hostile documents."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from inventory.builders import write
from kiln.errors import InputError
from kiln.inventory import OsRelease, load_target

KILN_PURL = "pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=debian-13&upstream=glibc"


def _cyclonedx(components: Sequence[object]) -> str:
    return json.dumps(
        {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": components}
    )


def test_cyclonedx_with_bogus_purls_skips_only_those(tmp_path: Path) -> None:
    sbom = _cyclonedx(
        [
            {"type": "library", "bom-ref": "a", "name": "libc6", "purl": KILN_PURL},
            {"type": "library", "bom-ref": "b", "name": "nonsense", "purl": "not a purl"},
            {"type": "library", "bom-ref": "c", "name": "q", "purl": "pkg:pypi/x@1?a"},
            {"type": "library", "bom-ref": "d", "name": "n", "purl": 42},
            {"type": "library", "bom-ref": "e", "name": "bad", "purl": "pkg:deb/debian/Bad@1"},
            {"type": "library", "bom-ref": "f", "name": "v", "purl": "pkg:deb/debian/v@1%20x"},
            {"type": "library", "bom-ref": "g", "name": "nov", "purl": "pkg:deb/debian/nov"},
            {"type": "library", "bom-ref": "h", "name": "gomod", "purl": "pkg:golang/x/y@v1"},
            {"type": "file", "bom-ref": "i", "name": "/etc/passwd"},
            "not an object",
        ]
    )
    path = write(tmp_path, "bom.json", sbom)
    inventory = load_target(path)
    assert [p.purl for p in inventory.packages] == [KILN_PURL]
    assert inventory.distro == OsRelease("debian", "13", "trixie", None)
    warnings = "\n".join(inventory.warnings)
    assert f"{path}#b: b (nonsense): invalid purl 'not a purl'" in warnings
    assert "c (q): invalid purl 'pkg:pypi/x@1?a'" in warnings
    assert "d (n): purl is not a string, skipped" in warnings
    assert "'Bad' is not a Debian package name" in warnings
    assert "'1 x' is not a Debian version" in warnings
    assert "purl 'pkg:deb/debian/nov' has no version" in warnings
    assert "components[9] is not an object" in warnings
    assert "ecosystems kiln does not scan ignored (golang: 1)" in warnings
    assert len(inventory.warnings) == 8


def test_nested_components_and_in_toto_wrapper(tmp_path: Path) -> None:
    bom = json.loads(
        _cyclonedx(
            [
                {
                    "type": "application",
                    "name": "app",
                    "components": [
                        {"type": "library", "name": "x", "purl": "pkg:npm/%40s/x@1.0.0"},
                        {"type": "library", "name": "Y", "purl": "pkg:pypi/Zope.Interface@6"},
                    ],
                }
            ]
        )
    )
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [],
        "predicateType": "https://cyclonedx.org/bom",
        "predicate": bom,
    }
    inventory = load_target(write(tmp_path, "att.json", json.dumps(statement)))
    assert [(p.ecosystem, p.name, p.purl) for p in inventory.packages] == [
        ("npm", "@s/x", "pkg:npm/%40s/x@1.0.0"),
        ("pypi", "zope-interface", "pkg:pypi/zope-interface@6"),
    ]
    assert inventory.distro is None


def test_trivy_style_source_properties_and_epoch_qualifier(tmp_path: Path) -> None:
    component = {
        "type": "library",
        "name": "zlib1g",
        "version": "1:1.2.13.dfsg-1",
        "purl": "pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&distro=debian-12.11&epoch=1",
        "properties": [
            {"name": "aquasecurity:trivy:SrcEpoch", "value": "1"},
            {"name": "aquasecurity:trivy:SrcName", "value": "zlib"},
            {"name": "aquasecurity:trivy:SrcRelease", "value": "1"},
            {"name": "aquasecurity:trivy:SrcVersion", "value": "1.2.13.dfsg"},
        ],
    }
    os_component = {"type": "operating-system", "name": "debian", "version": "12.11"}
    inventory = load_target(write(tmp_path, "t.json", _cyclonedx([os_component, component])))
    (package,) = inventory.packages
    assert (package.version, package.source_name, package.source_version) == (
        "1:1.2.13.dfsg-1",
        "zlib",
        "1:1.2.13.dfsg-1",
    )
    assert package.purl == (
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib"
    )
    assert inventory.distro == OsRelease("debian", "12", "bookworm", None)


def test_spdx_source_info_and_os_package(tmp_path: Path) -> None:
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "packages": [
            {
                "SPDXID": "SPDXRef-os",
                "name": "debian",
                "versionInfo": "13",
                "primaryPackagePurpose": "OPERATING-SYSTEM",
            },
            {
                "SPDXID": "SPDXRef-bash",
                "name": "bash",
                "versionInfo": "5.2.37-2+b5",
                "sourceInfo": "built package from: bash 5.2.37-2",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": "pkg:deb/debian/bash@5.2.37-2%2Bb5?arch=amd64",
                    }
                ],
            },
            {"SPDXID": "SPDXRef-dir", "name": "rootfs"},
        ],
    }
    path = write(tmp_path, "s.spdx.json", json.dumps(spdx))
    inventory = load_target(path)
    (bash,) = inventory.packages
    assert (bash.source_name, bash.source_version) == ("bash", "5.2.37-2")
    assert bash.locations == (f"{path}#SPDXRef-bash",)
    assert inventory.distro == OsRelease("debian", "13", "trixie", None)


def test_the_image_an_sbom_describes_is_not_an_unscanned_package(tmp_path: Path) -> None:
    # kiln's and syft's SPDX name the image itself with a pkg:oci / pkg:docker purl
    def _purl(locator: str) -> list[dict[str, str]]:
        return [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": locator,
            }
        ]

    spdx = {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "packages": [
            {
                "SPDXID": "SPDXRef-image",
                "name": "python",
                "versionInfo": "3.13.5",
                "externalRefs": _purl("pkg:oci/python@sha256%3A" + "a" * 64 + "?arch=amd64"),
            },
            {"SPDXID": "SPDXRef-d", "name": "d", "externalRefs": _purl("pkg:docker/x/y@1")},
            {"SPDXID": "SPDXRef-libc6", "name": "libc6", "externalRefs": _purl(KILN_PURL)},
            {"SPDXID": "SPDXRef-go", "name": "go", "externalRefs": _purl("pkg:golang/x/y@v1")},
        ],
    }
    inventory = load_target(write(tmp_path, "s.spdx.json", json.dumps(spdx)))
    assert [p.purl for p in inventory.packages] == [KILN_PURL]
    (warning,) = inventory.warnings
    assert warning.endswith(": packages of ecosystems kiln does not scan ignored (golang: 1)")


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ('{\n  "bomFormat": "CycloneDX",\n  "components": [,]\n}', "is not JSON", 3, 18),
        ('{"spdxVersion": "SPDX-2.3", "packages": [', "is not JSON", 1, 42),
    ],
)
def test_malformed_json_names_file_and_position(
    tmp_path: Path, text: str, message: str, line: int, column: int
) -> None:
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(InputError, match=message) as caught:
        load_target(path)
    assert caught.value.location is not None
    assert (caught.value.location.file, caught.value.location.line) == (str(path), line)
    assert caught.value.location.column == column
    assert f"{path}:{line}:{column}: the file is not JSON" in str(caught.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"hello": "world"}, "neither SPDX"),
        ({"spdxVersion": "SPDX-3.0", "packages": []}, "unsupported SPDX-3.0"),
        ({"spdxVersion": "SPDX-2.3", "packages": {}}, "packages is not a list"),
    ],
)
def test_json_that_is_not_a_supported_sbom(
    tmp_path: Path, document: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        load_target(write(tmp_path, "x.json", json.dumps(document)))
