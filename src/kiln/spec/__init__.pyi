"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .load import LoadedSpec, SpecError, load_spec, lock_path_for, parse_spec
from .model import (
    SUPPORTED_ARCHS,
    Accounts,
    Group,
    ImageSpec,
    ImageTest,
    PathSpec,
    Probe,
    User,
    Variant,
)

__all__ = [
    "SUPPORTED_ARCHS",
    "Accounts",
    "Group",
    "ImageSpec",
    "ImageTest",
    "LoadedSpec",
    "PathSpec",
    "Probe",
    "SpecError",
    "User",
    "Variant",
    "load_spec",
    "lock_path_for",
    "parse_spec",
]
