"""Read the files an SBOM needs from one platform of an OCI image layout, digests verified.

Navigation (``index.json`` -> image index -> platform manifest -> config) goes through
``kiln.oci.layout.ImageLayout``, which checks every blob against its descriptor. Layers
are streamed, hashed against their descriptors, and applied in order in memory per the
image spec's changeset rules (https://github.com/opencontainers/image-spec/blob/v1.1.0/layer.md):
``.wh.<name>`` deletes a lower path, ``.wh..wh..opq`` hides a directory's lower contents.
Only the data of a few metadata paths is kept (dpkg database, ``os-release``, copyright
files, the files kiln generates); symlinks resolve inside the root, as in a chroot.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import InputError
from kiln.inventory.image import LAYER_ERRORS, layer_tar_stream
from kiln.inventory.tree import LayerTree, is_metadata_path
from kiln.oci.layout import HashingReader, ImageLayout
from kiln.oci.model import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    choose_platform,
    parse_platform,
    platform_matches,
)

#: The SBOM reader's view of an image's files: the inventory's in-memory layer tree.
RootFS = LayerTree
STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d"
DPKG_INFO = "var/lib/dpkg/info"
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
IMAGE_JSON = "usr/lib/kiln/image.json"
#: Files kiln's assembler writes itself (see kiln.assemble.steps); listed only in kiln images.
GENERATED_PATHS = (
    "etc/group",
    "etc/nsswitch.conf",
    "etc/passwd",
    "etc/ssl/certs/ca-certificates.crt",
    IMAGE_JSON,
)
_NESTING = 4


def is_kept(path: str) -> bool:
    """Whether the SBOM reader keeps this root-relative file's bytes."""
    parent, _, name = path.rpartition("/")
    if parent == STATUS_D:
        return not name.endswith((".list", ".conffiles"))  # md5sums: who ships a file
    if parent == DPKG_INFO:
        return name.endswith(".md5sums")
    if path == STATUS or path in OS_RELEASE_PATHS or path in GENERATED_PATHS:
        return True
    parts = path.split("/")
    return len(parts) == 5 and parts[:3] == ["usr", "share", "doc"] and parts[4] == "copyright"


def new_rootfs() -> RootFS:
    """An empty root filesystem that keeps the SBOM's files and refuses what escapes it."""
    return LayerTree(keep=lambda path: is_kept(path) or is_metadata_path(path), strict=True)


@dataclass(frozen=True)
class ImageFiles:
    """One platform of a layout: its descriptors, annotations, config and root filesystem."""

    layout: Path
    index_digest: str
    manifest_digest: str
    platform: str
    annotations: dict[str, str]  # index annotations overlaid by the manifest's
    ref_name: str | None
    config: dict[str, Any]
    rootfs: RootFS


def _apply(layout: ImageLayout, descriptor: Descriptor, number: int, rootfs: RootFS) -> None:
    label = f"{layout.path}: layer {descriptor.digest}"
    with layout.open_blob(descriptor) as raw:
        hashing = HashingReader(raw, descriptor.digest.algorithm)
        try:
            with tarfile.open(fileobj=layer_tar_stream(hashing), mode="r|") as tar:
                rootfs.apply_layer(tar, number, label)
        except LAYER_ERRORS as exc:
            hashing.verify(descriptor, label)  # a damaged blob says so first
            raise InputError(f"{label} is not a readable tar: {exc}") from exc
        hashing.verify(descriptor, label)


def _manifests(
    layout: ImageLayout, top: Descriptor, platform: str | None
) -> Iterator[tuple[Descriptor, ImageIndex | ImageManifest, dict[str, str]]]:
    descriptor = top
    annotations: dict[str, str] = {}
    for _ in range(_NESTING):
        manifest = layout.manifest(descriptor)
        parsed = manifest.parsed
        annotations.update(parsed.annotations or {})
        yield descriptor, parsed, dict(annotations)
        if isinstance(parsed, ImageManifest):
            return
        where = f"{layout.path}: index {descriptor.digest}"
        descriptor = choose_platform(parsed, platform, where)
    raise InputError(f"{layout.path}: image indexes nest deeper than {_NESTING} levels")


def read_image_files(path: Path, platform: str | None = None) -> ImageFiles:
    """Verify and read one platform of the OCI image layout at ``path``."""
    layout = ImageLayout.open(path)
    top = layout.select()
    chain = list(_manifests(layout, top, platform))
    descriptor, manifest, annotations = chain[-1]
    if not isinstance(manifest, ImageManifest):  # _manifests ends on one or raises
        raise InputError(f"{layout.path}: no image manifest found")
    config = layout.config(manifest.config)
    rootfs = new_rootfs()
    for number, layer in enumerate(manifest.layers):
        _apply(layout, layer, number, rootfs)
    arch = str(config.get("architecture") or "")
    os_name = str(config.get("os") or "")
    if not arch or not os_name:
        raise InputError(f"{layout.path}: config {manifest.config.digest} names no os/architecture")
    variant = config.get("variant")
    plat = f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"
    found = Platform(os=os_name, architecture=arch, variant=str(variant) if variant else None)
    if platform is not None and not platform_matches(found, parse_platform(platform)):
        # index.json of a single-platform layout names its manifest, with no index to choose in
        raise InputError(
            f"{layout.path}: no image for platform {platform}",
            hint=f"available: {plat}; pass --platform",
        )
    ref_name = (top.annotations or {}).get("org.opencontainers.image.ref.name")
    return ImageFiles(
        layout=path,
        index_digest=str(top.digest),
        manifest_digest=str(descriptor.digest),
        platform=plat,
        annotations=annotations,
        ref_name=ref_name,
        config=config,
        rootfs=rootfs,
    )
