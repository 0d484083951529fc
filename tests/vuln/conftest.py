"""Fixtures for the vulnerability tests: the shared real data and small targets.

The real feed data lives in ``shared/vulndata`` beside the repository (see its README);
``KILN_VULNDATA`` overrides the location.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.vuln.db import VulnDB
from kiln.vuln.feeds import FEEDS, from_path

VULNDATA = Path(
    os.environ.get("KILN_VULNDATA", Path(__file__).resolve().parents[3] / "shared" / "vulndata")
)
DATA = Path(__file__).parent / "data"


def vulndata(rel: str) -> Path:
    path = VULNDATA / rel
    if not path.exists():
        pytest.skip(f"shared vulnerability data not found at {path} (set KILN_VULNDATA)")
    return path


@dataclass(frozen=True)
class Pkg:
    """An installed package in the shape ``kiln.inventory.InstalledPackage`` has."""

    ecosystem: str
    name: str
    version: str
    source_name: str | None = None
    source_version: str | None = None
    arch: str | None = None
    purl: str = ""
    locations: tuple[str, ...] = ()
    kiln_fixes: tuple[str, ...] = ()


def deb(
    name: str, version: str, source: str | None = None, source_version: str | None = None
) -> Pkg:
    return Pkg(
        "deb",
        name,
        version,
        source or name,
        source_version or version,
        "amd64",
        f"pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12",
        ("var/lib/dpkg/status",),
    )


def pypi(name: str, version: str) -> Pkg:
    return Pkg(
        "pypi",
        name,
        version,
        purl=f"pkg:pypi/{name}@{version}",
        locations=(f"usr/lib/python3/dist-packages/{name}-{version}.dist-info/METADATA",),
    )


def npm(name: str, version: str) -> Pkg:
    return Pkg(
        "npm",
        name,
        version,
        purl=f"pkg:npm/{name}@{version}",
        locations=(f"app/node_modules/{name}/package.json",),
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[VulnDB]:
    store = VulnDB.open(f"sqlite:///{tmp_path / 'vuln.db'}")
    yield store
    store.close()


@pytest.fixture(scope="session")
def loaded_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with the shared tracker sample, changelogs, PyPI and npm OSV data."""
    base = tmp_path_factory.mktemp("vulndb")
    url = f"sqlite:///{base / 'vuln.db'}"
    # The PyPI advisories of the packages the tests install (the full 2,661-record
    # import is its own test in test_db.py; here it would only slow every worker).
    pypi = base / "pypi"
    for project in ("requests", "urllib3", "jinja2"):
        shutil.copytree(vulndata(f"osv-pypi-2024/vulns/{project}"), pypi / project)
    store = VulnDB.open(url)
    for name, path in (
        ("debian-tracker", vulndata("debian-tracker-json/debian.json")),
        ("debian-changelog", vulndata("debian-changelog-cves/changelogs")),
        ("osv", pypi),
        ("osv", vulndata("osv-npm-sample/osv")),
    ):
        store.import_feed(FEEDS[name](), from_path(path))
    store.close()
    return url


@pytest.fixture
def loaded_db(loaded_db_url: str) -> Iterator[VulnDB]:
    store = VulnDB.open(loaded_db_url)
    yield store
    store.close()


OS_RELEASE_BOOKWORM = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

# Older bookworm versions of real packages: their changelogs (shared data) name CVEs
# fixed after these versions.
OLD_STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit - shared libraries

Package: libexpat1
Status: install ok installed
Architecture: amd64
Source: expat
Version: 2.5.0-1
Description: XML parsing C library - runtime library

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime
"""


def make_rootfs(root: Path, *, status: str = OLD_STATUS) -> Path:
    """A small Debian 12 root filesystem: dpkg status, requests 2.19.0, lodash 4.17.15."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE_BOOKWORM)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status)
    dist = root / "usr/lib/python3/dist-packages/requests-2.19.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n")
    mod = root / "app/node_modules/lodash"
    mod.mkdir(parents=True)
    (mod / "package.json").write_text(json.dumps({"name": "lodash", "version": "4.17.15"}))
    return root


def make_layout(rootfs: Path, layout: Path) -> Path:
    """A one-layer OCI image layout holding ``rootfs`` (gzip layer, amd64)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False)
    raw = buf.getvalue()
    layer = gzip.compress(raw, mtime=0)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
            "config": {},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return layout
