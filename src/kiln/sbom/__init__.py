"""SBOMs of kiln images: SPDX 2.3 and CycloneDX 1.6 JSON, derived from what was installed.

``read_sbom_input(layout, platform=, lock=)`` reads one platform of an OCI image layout
into an ``SbomInput`` (image identity, installed Debian packages, files kiln generated);
``generate_spdx`` and ``generate_cyclonedx`` turn it into document bytes through
spdx-tools and cyclonedx-python-lib; ``generate_sbom`` does both steps for one format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, assert_never

from kiln.sbom.cyclonedx import generate_cyclonedx
from kiln.sbom.licenses import PackageLicense, license_from_copyright
from kiln.sbom.model import (
    GeneratedFile,
    ImageIdentity,
    LicenseRef,
    SbomInput,
    SbomPackage,
    Supplier,
)
from kiln.sbom.read import read_sbom_input
from kiln.sbom.spdx import SbomGenerationError, generate_spdx

if TYPE_CHECKING:
    from kiln.resolve.lockfile import Lock

SbomFormat = Literal["spdx-json", "cyclonedx-json"]
FORMATS: tuple[SbomFormat, ...] = ("spdx-json", "cyclonedx-json")


def render_sbom(inp: SbomInput, fmt: SbomFormat) -> bytes:
    """``inp`` in one of the ``FORMATS``."""
    match fmt:
        case "spdx-json":
            return generate_spdx(inp)
        case "cyclonedx-json":
            return generate_cyclonedx(inp)
        case _:
            assert_never(fmt)


def generate_sbom(
    layout: Path,
    *,
    fmt: SbomFormat,
    lock: Lock | None = None,
    platform: str | None = None,
    source_date_epoch: int | None = None,
) -> bytes:
    """The SBOM of one platform of the OCI image layout at ``layout``."""
    inp = read_sbom_input(layout, platform=platform, lock=lock, source_date_epoch=source_date_epoch)
    return render_sbom(inp, fmt)


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
