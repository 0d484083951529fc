"""Image assembly: locked packages -> filesystem plan -> steps -> hardening -> OCI layout.

Public interface (the lead maps an image spec + lock onto ``AssemblyInput``):

* ``assemble(inp) -> AssembledRootfs`` — the final plan and hardening report (pure);
* ``build_image(inputs, out, ...) -> BuiltImage`` — a multi-arch OCI layout, written
  atomically, with ``hardening.json`` inside and optional oci-/docker-archives;
* ``package_input(deb)`` — adapt a verified ``kiln.debian.deb.DebPackage``.
"""

from kiln.assemble.build import (
    HARDENING_REPORT,
    ArchImage,
    AssembledRootfs,
    BuiltImage,
    assemble,
    build_image,
)
from kiln.assemble.debs import package_input
from kiln.assemble.fs import Entry, Plan
from kiln.assemble.harden import ElfAudit, HardeningReport
from kiln.assemble.layers import Compression
from kiln.assemble.model import (
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
