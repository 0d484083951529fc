"""A rebuilt package's ``Kiln-Fixes`` field, read from the dpkg database and from SBOMs."""

from __future__ import annotations

from kiln.inventory.dpkg import parse_status
from kiln.inventory.model import MAX_KILN_FIXES, parse_kiln_fixes

_STATUS = """\
Package: liblz4-1
Status: install ok installed
Architecture: amd64
Source: lz4
Version: 1.10.0-4+kiln1
Kiln-Recipe: lz4
Kiln-Fixes: CVE-2025-62813 GHSA-jfh8-c2jp-5v3q ../../etc <script>

Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.3.dfsg+really1.3.1-1+b1
"""


def test_kiln_fixes_are_read_and_garbage_tokens_reported() -> None:
    warnings: list[str] = []
    packages = {
        p.name: p for p in parse_status(_STATUS.encode(), "var/lib/dpkg/status", None, warnings)
    }
    assert packages["liblz4-1"].kiln_fixes == ("CVE-2025-62813", "GHSA-jfh8-c2jp-5v3q")
    assert packages["zlib1g"].kiln_fixes == ()
    # a path and markup are not ids: both are named, neither trusted
    assert len(warnings) == 2
    assert all("var/lib/dpkg/status:1" in w and "Kiln-Fixes token" in w for w in warnings)


def test_a_field_naming_too_many_ids_is_not_trusted() -> None:
    warnings: list[str] = []
    field = " ".join(f"CVE-2024-{n:05d}" for n in range(MAX_KILN_FIXES + 1))
    assert parse_kiln_fixes(field, "status:3", warnings) == ()
    assert len(warnings) == 1
    assert "at most" in warnings[0]
    assert parse_kiln_fixes("CVE-2024-0002 CVE-2024-0001 CVE-2024-0002", "x", []) == (
        "CVE-2024-0001",
        "CVE-2024-0002",
    )


_PURL = "pkg:deb/debian/liblz4-1@1.10.0-4%2Bkiln1?arch=amd64&distro=debian-13&upstream=lz4"


def test_kiln_fixes_are_read_from_kiln_s_cyclonedx_and_spdx_sboms() -> None:
    from kiln.inventory.sbom import parse_sbom

    cyclonedx = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {
                "type": "library",
                "name": "liblz4-1",
                "version": "1.10.0-4+kiln1",
                "purl": _PURL,
                "properties": [{"name": "kiln:fixes", "value": "CVE-2025-62813"}],
            }
        ],
    }
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "packages": [
            {
                "SPDXID": "SPDXRef-lz4",
                "name": "liblz4-1",
                "versionInfo": "1.10.0-4+kiln1",
                "externalRefs": [{"referenceType": "purl", "referenceLocator": _PURL}],
                "comment": "rebuilt from source by kiln (Kiln-Recipe: lz4; "
                "Kiln-Patches: CVE-2025-62813.patch; Kiln-Fixes: CVE-2025-62813)",
            }
        ],
    }
    for document in (cyclonedx, spdx):
        warnings: list[str] = []
        _, packages = parse_sbom(document, "sbom.json", warnings)
        assert [p.kiln_fixes for p in packages] == [("CVE-2025-62813",)], document
        assert warnings == []
