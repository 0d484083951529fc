"""Both SBOM formats: validated by their official tools, NTIA-complete, byte-reproducible.

* SPDX: ``pyspdxtools -i`` (spdx-tools' CLI) and ``ntia-checker`` (NTIA minimum elements;
  the checker reads SPDX only, so CycloneDX's minimum elements are asserted here field
  by field: supplier, name, version, unique id, dependencies, author, timestamp);
* CycloneDX: cyclonedx-python-lib's ``JsonStrictValidator`` against the 1.6 schema;
* kiln's own SBOM reader (``kiln.inventory``) gets back the installed set from both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from kiln.inventory import load_target
from kiln.sbom import SbomInput, generate_cyclonedx, generate_spdx, read_sbom_input
from sbom.conftest import Image, build_test_image

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def sbom_input(image: Image) -> SbomInput:
    return read_sbom_input(image.layout, lock=image.lock)


@pytest.fixture(scope="module")
def documents(sbom_input: SbomInput, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sboms")
    spdx, cdx = out / "tiny.spdx.json", out / "tiny.cdx.json"
    spdx.write_bytes(generate_spdx(sbom_input))
    cdx.write_bytes(generate_cyclonedx(sbom_input))
    return {"spdx": spdx, "cyclonedx": cdx}


def _tool(name: str) -> str:
    path = BIN / name
    if not path.is_file():
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return str(path)


def test_pyspdxtools_validates_the_spdx_document(documents: dict[str, Path]) -> None:
    result = subprocess.run(
        [_tool("pyspdxtools"), "-i", str(documents["spdx"])],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_spdx_meets_the_ntia_minimum_elements(documents: dict[str, Path]) -> None:
    result = subprocess.run(
        [_tool("ntia-checker"), "--comply", "ntia", "--output", "json", str(documents["spdx"])],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["isNtiaConformant"] is True, result.stdout
    assert report["totalNumberComponents"] == 8  # image, OS, six packages
    assert report["graphValidation"]["floatingComponents"]["floatingComponentCount"] == 0
    assert result.returncode == 0


def test_cyclonedx_passes_the_strict_1_6_schema(documents: dict[str, Path]) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(documents["cyclonedx"].read_text())
    assert error is None, str(error)


def test_cyclonedx_has_the_ntia_minimum_elements(documents: dict[str, Path]) -> None:
    bom = json.loads(documents["cyclonedx"].read_bytes())
    metadata = bom["metadata"]
    assert metadata["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert metadata["authors"] == [{"name": "kiln tests"}]
    root = metadata["component"]
    components = [root, *bom["components"]]
    for component in components:
        assert component["name"], component
        assert component["version"], component
        assert component["supplier"]["name"], component
        assert component["bom-ref"], component
    refs = [c["bom-ref"] for c in components]
    assert len(set(refs)) == len(refs)
    dependencies = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert dependencies["kiln-image"] == ["kiln-os"]
    packages = [c for c in bom["components"] if c["type"] == "library"]
    assert sorted(dependencies["kiln-os"]) == sorted(c["bom-ref"] for c in packages)
    assert set(dependencies) == set(refs)  # every component is in the graph


def _spdx_packages(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in document["packages"]}


def test_spdx_content(documents: dict[str, Path], image: Image) -> None:
    doc = json.loads(documents["spdx"].read_bytes())
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert doc["creationInfo"]["creators"] == ["Tool: kiln-0.1.0", "Organization: kiln tests"]
    assert doc["documentNamespace"].startswith("https://spdx.org/spdxdocs/kiln-tiny-1.2.3-")
    packages = _spdx_packages(doc)
    root = packages["tiny"]
    assert root["primaryPackagePurpose"] == "CONTAINER"
    assert root["versionInfo"] == "1.2.3"
    purl = root["externalRefs"][0]["referenceLocator"]
    index = json.loads((image.layout / "index.json").read_bytes())["manifests"][0]["digest"]
    assert PackageURL.from_string(purl).to_dict() == {
        "type": "oci",
        "namespace": None,
        "name": "tiny",
        "version": index,
        "qualifiers": {"arch": "amd64", "tag": "1.2.3"},
        "subpath": None,
    }
    assert packages["debian"]["primaryPackagePurpose"] == "OPERATING_SYSTEM"  # JSON schema spelling
    assert packages["debian"]["versionInfo"] == "13"
    libssl = packages["libssl3t64"]
    assert libssl["sourceInfo"] == "built package from: openssl 3.5.1-1+deb13u1"
    assert libssl["licenseDeclared"] == "Apache-2.0"
    assert libssl["licenseConcluded"] == "NOASSERTION"
    assert libssl["supplier"] == "Person: kiln tests (tests@example.invalid)"
    assert libssl["packageFileName"] == "libssl3t64_3.5.1-1+deb13u1_amd64.deb"
    locked = {p.name: p.sha256 for p in image.lock.all_packages()}
    assert libssl["checksums"] == [{"algorithm": "SHA256", "checksumValue": locked["libssl3t64"]}]
    assert packages["zlib1g"]["licenseDeclared"] == "NOASSERTION"
    assert packages["libc6"]["licenseDeclared"] == "LGPL-2.1-or-later AND LicenseRef-public-domain"
    assert [e["licenseId"] for e in doc["hasExtractedLicensingInfos"]] == [
        "LicenseRef-public-domain"
    ]
    files = {f["fileName"]: f for f in doc["files"]}
    assert sorted(files) == [
        "./etc/group",
        "./etc/nsswitch.conf",
        "./etc/passwd",
        "./etc/ssl/certs/ca-certificates.crt",
        "./usr/lib/kiln/image.json",
    ]
    ids = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    ids |= {f["SPDXID"]: f["fileName"] for f in doc["files"]}
    edges = {
        (
            ids.get(r["spdxElementId"], r["spdxElementId"]),
            r["relationshipType"],
            ids[r["relatedSpdxElement"]],
        )
        for r in doc["relationships"]
    }
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "tiny") in edges
    assert ("tiny", "CONTAINS", "debian") in edges
    assert ("debian", "CONTAINS", "libssl3t64") in edges
    assert ("tiny", "CONTAINS", "./etc/passwd") in edges
    assert ("libssl3t64", "DEPENDS_ON", "libc6") in edges
    assert ("libssl3t64", "DEPENDS_ON", "zlib1g") in edges


def test_cyclonedx_content(documents: dict[str, Path], image: Image) -> None:
    bom = json.loads(documents["cyclonedx"].read_bytes())
    assert bom["specVersion"] == "1.6"
    root = bom["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == ("container", "tiny", "1.2.3")
    assert {c["name"] for c in root["components"]} >= {
        "/etc/passwd",
        "/etc/ssl/certs/ca-certificates.crt",
    }
    assert all({h["alg"] for h in c["hashes"]} == {"SHA-1", "SHA-256"} for c in root["components"])
    components = {c["name"]: c for c in bom["components"]}
    assert components["debian"]["type"] == "operating-system"
    zlib = components["zlib1g"]
    props = {p["name"]: p["value"] for p in zlib["properties"]}
    assert props["aquasecurity:trivy:SrcName"] == "zlib"
    assert props["aquasecurity:trivy:SrcEpoch"] == "1"
    assert props["aquasecurity:trivy:SrcVersion"] == "1.3.dfsg+really1.3.1"
    assert props["aquasecurity:trivy:SrcRelease"] == "1"
    assert "licenses" not in zlib  # free-form copyright: no assertion
    assert components["libexpat1"]["licenses"] == [
        {"expression": "BSD-3-Clause OR MIT", "acknowledgement": "declared"}
    ]
    assert components["libssl3t64"]["licenses"] == [
        {"license": {"id": "Apache-2.0", "acknowledgement": "declared"}}
    ]
    locked = {p.name: p.sha256 for p in image.lock.all_packages()}
    assert components["libc6"]["hashes"] == [{"alg": "SHA-256", "content": locked["libc6"]}]


@pytest.mark.parametrize("kind", ["spdx", "cyclonedx"])
def test_kiln_reads_back_the_installed_set(
    documents: dict[str, Path], image: Image, kind: str
) -> None:
    from_layout = load_target(image.layout)
    from_sbom = load_target(documents[kind])
    # kiln.inventory notes the image's own pkg:oci purl (the SPDX root package) as unscanned
    assert all(w.endswith("ignored (oci: 1)") for w in from_sbom.warnings), from_sbom.warnings
    facts = {
        (p.name, p.version, p.arch, p.source_name, p.source_version, p.purl)
        for p in from_sbom.packages
    }
    assert facts == {
        (p.name, p.version, p.arch, p.source_name, p.source_version, p.purl)
        for p in from_layout.packages
    }
    assert from_sbom.distro is not None
    assert (from_sbom.distro.id, from_sbom.distro.version_id) == ("debian", "13")


def test_equal_images_give_byte_identical_sboms(
    tmp_path: Path, image: Image, documents: dict[str, Path]
) -> None:
    again = build_test_image(tmp_path)  # a second, independent build of the same image
    inp = read_sbom_input(again.layout, lock=again.lock)
    assert generate_spdx(inp) == documents["spdx"].read_bytes()
    assert generate_cyclonedx(inp) == documents["cyclonedx"].read_bytes()


def test_other_content_gets_another_document_identity(image: Image, sbom_input: SbomInput) -> None:
    without_lock = read_sbom_input(image.layout)
    spdx_a = json.loads(generate_spdx(sbom_input))
    spdx_b = json.loads(generate_spdx(without_lock))
    assert spdx_a["documentNamespace"] != spdx_b["documentNamespace"]
    cdx_a = json.loads(generate_cyclonedx(sbom_input))
    cdx_b = json.loads(generate_cyclonedx(without_lock))
    assert cdx_a["serialNumber"] != cdx_b["serialNumber"]
    assert all("checksums" not in p for p in spdx_b["packages"][2:])
