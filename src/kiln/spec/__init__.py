"""Image specs: the frozen models, the YAML loader with positions, the JSON Schema."""

from kiln.spec.load import LoadedSpec, SpecError, load_spec, lock_path_for, parse_spec
from kiln.spec.model import (
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
