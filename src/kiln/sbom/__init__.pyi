"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .cyclonedx import generate_cyclonedx
from .licenses import PackageLicense, license_from_copyright
from .model import GeneratedFile, ImageIdentity, LicenseRef, SbomInput, SbomPackage, Supplier
from .read import read_sbom_input
from .render import FORMATS, SbomFormat, generate_sbom, render_sbom
from .spdx import SbomGenerationError, generate_spdx

__all__ = [
    "FORMATS",
    "GeneratedFile",
    "ImageIdentity",
    "LicenseRef",
    "PackageLicense",
    "SbomFormat",
    "SbomGenerationError",
    "SbomInput",
    "SbomPackage",
    "Supplier",
    "generate_cyclonedx",
    "generate_sbom",
    "generate_spdx",
    "license_from_copyright",
    "read_sbom_input",
    "render_sbom",
]
