"""What is inside a target: the installed set the vulnerability matcher works on.

``load_target`` reads an OCI image layout, an OCI or docker archive, a root
filesystem, an SBOM or a dpkg database and returns an ``Inventory`` of
``InstalledPackage`` values with the target's ``OsRelease`` (not to be confused with
``kiln.debian.distro.Distro``, a release kiln builds on).
"""

from kiln.inventory.load import inventory_from_tree, load_target
from kiln.inventory.model import (
    InstalledPackage,
    Inventory,
    OsRelease,
    normalize_pypi_name,
)

__all__ = [
    "InstalledPackage",
    "Inventory",
    "OsRelease",
    "inventory_from_tree",
    "load_target",
    "normalize_pypi_name",
]
