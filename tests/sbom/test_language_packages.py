"""Packages installed outside dpkg (pip from a wheel, npm from the registry) are in the SBOM.

kiln's -dev images carry pip (python-dev) and npm/corepack (node-dev) that no dpkg
database lists; the SBOM reader finds them from their own metadata (dist-info
``METADATA``, ``package.json``) the way the scanner does, and the documents list them
as the image's components (not the OS's), with their purls.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.inventory.npm import declared_by_package_json
from kiln.inventory.python import declared_by_core_metadata
from kiln.sbom import generate_cyclonedx, generate_spdx, read_sbom_input
from kiln.sbom.licenses import license_from_declared, parse_expression
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


def _json_children(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "name", "email", "url"]), children, max_size=3
    )


def _dist_info(root: Path, name: str, version: str, headers: str) -> None:
    info = root / f"usr/lib/python3/dist-packages/{name}-{version}.dist-info"
    info.mkdir(parents=True)
    text = f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{headers}"
    (info / "METADATA").write_text(text)


def _package_json(root: Path, directory: str, document: dict[str, object]) -> None:
    (root / directory).mkdir(parents=True)
    (root / directory / "package.json").write_text(json.dumps(document))


def _declaring_rootfs(root: Path) -> Path:
    _rootfs(root)
    (root / "etc/debian_version").write_text("13.2\n")  # not core metadata: no warning
    _dist_info(root, "expr", "1", "License-Expression: MIT OR Apache-2.0\nAuthor: A <a@x.org>\n")
    _dist_info(root, "named", "2", "License: MIT License\nAuthor-email: The Named team <t@x.org>\n")
    _dist_info(
        root,
        "trove",
        "3",
        "Classifier: Programming Language :: Python\n"
        "Classifier: License :: OSI Approved :: BSD License\n"
        "Maintainer: M\nMaintainer-email: m@x.org\n",
    )
    _dist_info(root, "bare", "4", "License: see the file LICENSE\n")
    base = "usr/local/lib/node_modules"
    _package_json(
        root,
        f"{base}/a",
        {
            "name": "a",
            "version": "1.0.0",
            "license": "ISC",
            "author": "Ann <ann@x.org> (https://x)",
        },
    )
    _package_json(
        root,
        f"{base}/@s/b",
        {
            "name": "@s/b",
            "version": "2.0.0",
            "license": {"type": "MIT"},
            "repository": {"type": "git", "url": "git+https://forge.invalid/owner-b/b.git"},
        },
    )
    _package_json(
        root,
        f"{base}/c",
        {"name": "c", "version": "3.0.0", "licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]},
    )
    # shipped by a Debian package (its md5sums list it), and naming no author
    _package_json(root, "usr/share/nodejs/d", {"name": "d", "version": "4.0.0", "license": "MIT"})
    status_d = root / "var/lib/dpkg/info"
    status_d.mkdir(parents=True)
    (status_d / "libc6:amd64.md5sums").write_text(
        "0123456789abcdef0123456789abcdef  usr/share/nodejs/d/package.json\n"
    )
    return root


def test_licences_and_suppliers_come_from_the_packages_metadata(tmp_path: Path) -> None:
    layout = make_layout(_declaring_rootfs(tmp_path / "rootfs"), tmp_path / "layout")
    inp = read_sbom_input(layout, source_date_epoch=1767225600)
    found = {
        p.name: (p.license, p.supplier and (p.supplier.kind, p.supplier.name, p.supplier.email))
        for p in inp.packages
        if p.ecosystem != "deb"
    }
    libc = ("organization", "GNU Libc Maintainers", "debian-glibc@lists.debian.org")
    assert found == {
        "expr": ("Apache-2.0 OR MIT", ("person", "A", "a@x.org")),
        "named": ("MIT", ("organization", "The Named team", "t@x.org")),
        "trove": ("BSD-3-Clause", ("person", "M", "m@x.org")),
        "bare": (None, None),
        "a": ("ISC", ("person", "Ann", "ann@x.org")),
        "@s/b": ("MIT", ("organization", "owner-b", None)),
        "c": ("Apache-2.0 OR MIT", None),
        "d": ("MIT", libc),
        "npm": (None, None),
        "pip": (None, None),
    }
    site = "/usr/local/lib/python3.13/site-packages/pip-25.1.1.dist-info/METADATA"
    assert sorted(inp.warnings) == [
        f"{inp.image.name}: npm package npm 10.9.9 (/usr/local/lib/node_modules/npm/"
        "package.json): no SPDX licence (declares none), NOASSERTION",
        f"{inp.image.name}: pypi package bare 4 (/usr/lib/python3/dist-packages/bare-4.dist-info/"
        "METADATA): no SPDX licence (declares 'see the file LICENSE'), NOASSERTION",
        f"{inp.image.name}: pypi package pip 25.1.1 ({site}): no SPDX licence (declares none), "
        "NOASSERTION",
    ]
    spdx = json.loads(generate_spdx(inp))  # spdx-tools validated it
    declared = {p["name"]: p["licenseDeclared"] for p in spdx["packages"]}
    assert (declared["expr"], declared["bare"]) == ("Apache-2.0 OR MIT", "NOASSERTION")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), _json_children))
def test_any_package_json_gives_a_declaration_or_nothing(value: object) -> None:
    document = {"name": "x", "version": "1.0.0", "license": value, "licenses": value}
    document |= {"author": value, "maintainers": value, "repository": value}
    declared = declared_by_package_json(json.dumps(document).encode(), "/p/package.json")
    found = license_from_declared(declared.licenses)
    assert found is None or parse_expression(found) is not None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_any_core_metadata_gives_a_declaration_or_nothing(license_: str, author: str) -> None:
    text = f"Name: x\nVersion: 1\nLicense-Expression: {license_}\nAuthor: {author}\n"
    declared = declared_by_core_metadata(text.encode())
    found = license_from_declared((*declared.licenses, license_ * 100))
    assert found is None or parse_expression(found) is not None
