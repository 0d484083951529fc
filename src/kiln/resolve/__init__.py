"""Dependency resolution: requested packages + signed indexes -> the exact closure and its lock."""

from kiln.debian.index import PackageUniverse
from kiln.resolve.apt_order import apt_cache_order
from kiln.resolve.install_time import INSTALL_TIME_ONLY
from kiln.resolve.solver import (
    EXCLUDED_BY_SPEC,
    ConflictError,
    Pull,
    Resolution,
    ResolutionError,
    UnknownPackageError,
    UnsatisfiableError,
    resolve,
)

__all__ = [
    "EXCLUDED_BY_SPEC",
    "INSTALL_TIME_ONLY",
    "ConflictError",
    "PackageUniverse",
    "Pull",
    "Resolution",
    "ResolutionError",
    "UnknownPackageError",
    "UnsatisfiableError",
    "apt_cache_order",
    "resolve",
]
