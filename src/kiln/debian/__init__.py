"""Debian repository access: mirrors, signed indexes, packages, versions, .deb files."""

from kiln.debian.distro import DISTROS, Distro, get_distro
from kiln.debian.model import BinaryPackage, ReleaseIdentity
from kiln.debian.version import compare_versions, parse_version, satisfies, version_key

__all__ = [
    "DISTROS",
    "BinaryPackage",
    "Distro",
    "ReleaseIdentity",
    "compare_versions",
    "get_distro",
    "parse_version",
    "satisfies",
    "version_key",
]
