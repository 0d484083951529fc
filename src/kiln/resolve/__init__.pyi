"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .apt_order import apt_cache_order
from .install_time import INSTALL_TIME_ONLY
from .solver import (
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
    "Pull",
    "Resolution",
    "ResolutionError",
    "UnknownPackageError",
    "UnsatisfiableError",
    "apt_cache_order",
    "resolve",
]
