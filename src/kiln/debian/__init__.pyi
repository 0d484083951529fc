"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .cache import Cache, default_cache_root
from .client import (
    NOT_FOUND,
    RepoSnapshot,
    fetch_debs,
    fetch_index,
    fetch_promised,
    load_packages_table,
    load_release,
    load_snapshot,
    suite_base_url,
)
from .deb import (
    DebChangelog,
    DebControl,
    DebFormatError,
    DebLimits,
    DebMember,
    DebPackage,
    MemberType,
    changelog_paths,
    iter_data,
    read_changelog,
    read_control,
    read_deb,
)
from .distro import DISTROS, Distro, get_distro
from .index import MergedUniverse, PackagesTable, PackageUniverse, parse_packages
from .model import BinaryPackage, ReleaseIdentity
from .release import Release, ReleaseEntry, VerifiedRelease, verify_release
from .sources import Mirrors, SourceEntry, default_config_path, discover_mirrors, read_host_sources
from .version import compare_versions, parse_version, satisfies, version_key

__all__ = [
    "DISTROS",
    "NOT_FOUND",
    "BinaryPackage",
    "Cache",
    "DebChangelog",
    "DebControl",
    "DebFormatError",
    "DebLimits",
    "DebMember",
    "DebPackage",
    "Distro",
    "MemberType",
    "MergedUniverse",
    "Mirrors",
    "PackageUniverse",
    "PackagesTable",
    "Release",
    "ReleaseEntry",
    "ReleaseIdentity",
    "RepoSnapshot",
    "SourceEntry",
    "VerifiedRelease",
    "changelog_paths",
    "compare_versions",
    "default_cache_root",
    "default_config_path",
    "discover_mirrors",
    "fetch_debs",
    "fetch_index",
    "fetch_promised",
    "get_distro",
    "iter_data",
    "load_packages_table",
    "load_release",
    "load_snapshot",
    "parse_packages",
    "parse_version",
    "read_changelog",
    "read_control",
    "read_deb",
    "read_host_sources",
    "satisfies",
    "suite_base_url",
    "verify_release",
    "version_key",
]
