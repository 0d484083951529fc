"""``load_target``: what is installed in an image, a root filesystem or an SBOM.

Detects the kind of target from what is on disk, reads only package metadata, and
returns an ``Inventory``. Kinds: an OCI image layout directory (``oci-layout`` +
``index.json``), an OCI archive or docker-archive tar, a plain rootfs tar, a rootfs
directory, an SBOM (SPDX 2.3 / CycloneDX JSON), a dpkg ``status`` file, a ``status.d/``
directory, or dpkg's admin directory holding them. A registry reference
(``HOST[:PORT]/REPO[:TAG][@DIGEST]``, optionally ``docker://``-prefixed) that names no
local path is pulled, every blob digest-verified, into a temporary OCI layout and read
from there.
"""

# Image, SBOM and registry readers are imported by the branch that needs them: a scan
# of a root filesystem or a dpkg database loads none of them.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import InputError
from kiln.inventory.dpkg import parse_status, read_status_file
from kiln.inventory.model import InstalledPackage, Inventory, OsRelease, build_inventory
from kiln.inventory.npm import parse_package_json, parse_package_lock
from kiln.inventory.osrelease import distro_from_tree
from kiln.inventory.python import parse_core_metadata
from kiln.inventory.tree import DEBIAN_VERSION, STATUS, STATUS_D, DirTree, FileTree

if TYPE_CHECKING:
    from kiln.registry import Reference, RegistryClient

RegistryClientFactory = Callable[["Reference"], "RegistryClient"]

# HOST[:PORT]/...: the first path component names a registry host (dot, port, localhost)
_REFERENCE = re.compile(r"^(?:docker://)?(?:[^/.~][^/]*[.:][^/]*|localhost)/.")


def load_target(
    target: str | Path,
    platform: str | None = None,
    *,
    registry_client: RegistryClientFactory | None = None,
) -> Inventory:
    """Read everything installed in ``target``; see the module docstring for the kinds.

    ``platform`` (``os/arch[/variant]``) picks the image of a multi-platform index;
    the default is the only image, else ``linux/amd64``. ``registry_client`` makes
    the client for a registry reference (default: ``RegistryClient.for_host`` with
    the user's credentials).
    """
    text = os.fspath(target)
    path = Path(text)
    if not path.exists():
        if _REFERENCE.match(text):
            return _pull_and_load(text, platform, registry_client)
        raise InputError(f"{text}: no such file or directory")
    if path.is_dir():
        if (path / "oci-layout").is_file():
            from kiln.inventory.image import tree_from_layout

            return inventory_from_tree(text, tree_from_layout(text, platform))
        if path.name == "status.d":
            return _status_d(text, path)
        if (path / "status").is_file() and not (path / "etc").exists():
            return _dpkg_admin_dir(text, path)  # /var/lib/dpkg itself
        return inventory_from_tree(text, DirTree(path))
    if not path.is_file():
        raise InputError(f"{text}: not a regular file or directory")
    if tarfile.is_tarfile(path):
        from kiln.inventory.image import tree_from_image_tar

        return inventory_from_tree(text, tree_from_image_tar(text, platform))
    warnings: list[str] = []
    if _first_byte(path) == b"{":
        from kiln.inventory.sbom import read_sbom_file

        distro, packages = read_sbom_file(path, text, warnings)
        return build_inventory(text, distro, packages, warnings)
    packages = read_status_file(path, text, None, warnings)
    if not packages and warnings:
        raise InputError(
            f"{text}: not an image, SBOM or dpkg status file",
            details=warnings[:5],
        )
    return build_inventory(text, None, packages, warnings)


def _pull_and_load(
    text: str, platform: str | None, registry_client: RegistryClientFactory | None
) -> Inventory:
    from kiln.inventory.image import tree_from_layout
    from kiln.registry import Reference, RegistryClient, pull_layout

    try:
        reference = Reference.parse(text.removeprefix("docker://"))
    except InputError as exc:
        raise InputError(
            f"{text}: no such file or directory, nor a valid registry reference: {exc.message}",
            hint=exc.hint,
        ) from exc
    factory = registry_client or (lambda ref: RegistryClient.for_host(ref.registry))
    with tempfile.TemporaryDirectory(prefix="kiln-scan-") as scratch:
        layout = Path(scratch) / "layout"
        with factory(reference) as client:
            pull_layout(client, reference, layout)
        tree = tree_from_layout(str(layout), platform)
    return inventory_from_tree(text, tree)


def _first_byte(path: Path) -> bytes:
    """The first byte that is not JSON whitespace (an SBOM starts with ``{``)."""
    with path.open("rb") as handle:
        while chunk := handle.read(65536):
            stripped = chunk.lstrip(b" \t\r\n")
            if stripped:
                return stripped[:1]
    return b""


def _status_d(text: str, path: Path) -> Inventory:
    warnings: list[str] = []
    packages: list[InstalledPackage] = []
    for entry in sorted(path.iterdir()):
        if entry.name.endswith((".md5sums", ".list", ".conffiles")) or not entry.is_file():
            continue
        packages += read_status_file(entry, str(entry), None, warnings, require_status=False)
    return build_inventory(text, None, packages, warnings)


def _dpkg_admin_dir(text: str, path: Path) -> Inventory:
    warnings: list[str] = []
    status = path / "status"
    packages = read_status_file(status, str(status), None, warnings)
    if (path / "status.d").is_dir():
        extra = _status_d(str(path / "status.d"), path / "status.d")
        packages += extra.packages
        warnings += extra.warnings
    return build_inventory(text, None, packages, warnings)


def inventory_from_tree(target: str, tree: FileTree) -> Inventory:
    """Catalog a root filesystem view: distro, dpkg, Python and npm packages."""
    warnings: list[str] = []
    distro: OsRelease | None = distro_from_tree(tree, warnings)
    packages: list[InstalledPackage] = []
    status = tree.read(STATUS)
    if status is not None:
        packages += parse_status(status, f"/{STATUS}", distro, warnings)
    for path in tree.files():
        location = f"/{path}"
        parent, _, name = path.rpartition("/")
        if parent == STATUS_D:
            data = tree.read(path)
            if data is not None:
                packages += parse_status(data, location, distro, warnings, require_status=False)
            continue
        if path in (STATUS, DEBIAN_VERSION) or name == "os-release":
            continue
        data = tree.read(path)
        if data is None:
            continue
        if name == "package.json":
            package = parse_package_json(data, location, warnings)
            if package is not None:
                packages.append(package)
        elif name == "package-lock.json":
            packages += parse_package_lock(data, location, warnings)
        else:  # METADATA, PKG-INFO, or a *.egg-info file
            package = parse_core_metadata(data, location, warnings)
            if package is not None:
                packages.append(package)
    warnings += tree.warnings
    return build_inventory(target, distro, packages, warnings)
