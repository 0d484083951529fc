"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .build import HARDENING_REPORT, ArchImage, AssembledRootfs, BuiltImage, assemble, build_image
from .debs import package_input
from .fs import Entry, Plan
from .harden import ElfAudit, HardeningReport
from .layers import Compression
from .model import (
    NONROOT_GID,
    NONROOT_UID,
    AptSource,
    AssemblyInput,
    DataMember,
    Diversion,
    Group,
    ImageFacts,
    ImageTest,
    PackageInput,
    PathSpec,
    Probe,
    User,
    WheelInstall,
)

__all__ = [
    "HARDENING_REPORT",
    "NONROOT_GID",
    "NONROOT_UID",
    "AptSource",
    "ArchImage",
    "AssembledRootfs",
    "AssemblyInput",
    "BuiltImage",
    "Compression",
    "DataMember",
    "Diversion",
    "ElfAudit",
    "Entry",
    "Group",
    "HardeningReport",
    "ImageFacts",
    "ImageTest",
    "PackageInput",
    "PathSpec",
    "Plan",
    "Probe",
    "User",
    "WheelInstall",
    "assemble",
    "build_image",
    "package_input",
]
