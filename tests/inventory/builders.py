"""Small, real fixtures for inventory tests: rootfs trees, layer tars, OCI layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12000
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: bash
Essential: yes
Status: install ok installed
Priority: required
Section: shells
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell

Package: openssl
Status: hold ok installed
Priority: optional
Architecture: amd64
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit

Package: zlib1g
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Description: removed, only its conffiles remain
"""

OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""

SITE = "usr/local/lib/python3.11/site-packages"


def metadata(name: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: x\n\nbody\n"


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def make_rootfs(root: Path) -> Path:
    """A small Debian-like root: dpkg status, os-release behind a symlink, Python, npm."""
    write(root, "var/lib/dpkg/status", STATUS)
    write(root, "usr/lib/os-release", OS_RELEASE)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    write(root, f"{SITE}/requests-2.19.0.dist-info/METADATA", metadata("requests", "2.19.0"))
    write(root, f"{SITE}/PyYAML-6.0.1.dist-info/METADATA", metadata("PyYAML", "6.0.1"))
    write(root, f"{SITE}/zope.interface-6.0.egg-info/PKG-INFO", metadata("zope.interface", "6.0"))
    write(root, "usr/lib/python3/dist-packages/six-1.16.0.egg-info", metadata("six", "1.16.0"))
    write(root, "app/node_modules/lodash/package.json", '{"name":"lodash","version":"4.17.15"}')
    write(
        root,
        "app/node_modules/@babel/core/package.json",
        '{"name":"@babel/core","version":"7.20.0"}',
    )
    write(
        root,
        "app/node_modules/@babel/core/node_modules/semver/package.json",
        '{"name":"semver","version":"6.3.0"}',
    )
    return root


# -- layers and images ---------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tar member: a file (data), directory, symlink or hard link."""

    name: str
    data: bytes | str | None = None
    kind: str = "file"  # file | dir | symlink | hardlink
    target: str = ""


def layer_tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = 0
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif entry.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = entry.target
                tar.addfile(info)
            else:
                data = entry.data.encode() if isinstance(entry.data, str) else entry.data or b""
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def image_manifest(
    layout: Path, layers: list[bytes], compression: str = "gzip", arch: str = "amd64"
) -> dict[str, object]:
    """Write config, layer and manifest blobs; return the manifest's descriptor."""
    blobs = [compress(layer, compression) for layer in layers]
    config = {
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
        "config": {},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **put_blob(layout, json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": LAYER_TYPES[compression], **put_blob(layout, blob)} for blob in blobs
        ],
    }
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **put_blob(layout, json.dumps(manifest).encode()),
        "platform": {"os": "linux", "architecture": arch},
    }


def write_layout(layout: Path, manifests: list[dict[str, object]], nested: bool = False) -> Path:
    """Write oci-layout and index.json; ``nested`` puts the manifests in an image index."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    if nested:
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }
        manifests = [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                **put_blob(layout, json.dumps(index).encode()),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ]
    top = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }
    (layout / "index.json").write_text(json.dumps(top))
    return layout


def single_image_layout(layout: Path, layers: list[bytes], compression: str = "gzip") -> Path:
    return write_layout(layout, [image_manifest(layout, layers, compression)])


def tar_directory(source: Path, target: Path) -> Path:
    """Tar a directory's contents (an OCI layout becomes an OCI archive)."""
    with tarfile.open(target, "w") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    return target


def docker_archive(target: Path, layers: list[bytes], diff_ids: list[str] | None = None) -> Path:
    """The classic ``docker save`` layout: <id>/layer.tar, <config-hex>.json, manifest.json."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids or [sha256(layer) for layer in layers],
        },
    }
    config_bytes = json.dumps(config).encode()
    config_name = sha256(config_bytes).split(":")[1] + ".json"
    names = [f"{sha256(layer).split(':')[1]}/layer.tar" for layer in layers]
    manifest = [{"Config": config_name, "RepoTags": ["example:latest"], "Layers": names}]
    members = [(config_name, config_bytes), ("manifest.json", json.dumps(manifest).encode())]
    members += list(zip(names, layers, strict=True))
    with tarfile.open(target, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


BASE_LAYER = [
    Entry("etc", kind="dir"),
    Entry("etc/os-release", kind="symlink", target="../usr/lib/os-release"),
    Entry("usr/lib/os-release", OS_RELEASE),
    Entry("var/lib/dpkg/status", STATUS),
    Entry(f"{SITE}/requests-2.19.0.dist-info/METADATA", metadata("requests", "2.19.0")),
    Entry("usr/bin/python3", b"\x7fELF not really"),
]
