"""Render an SBOM in one of kiln's formats (the spdx-tools and cyclonedx libraries load here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, assert_never

from kiln.sbom.model import SbomInput
from kiln.sbom.read import read_sbom_input

if TYPE_CHECKING:
    from kiln.resolve.lockfile import Lock

SbomFormat = Literal["spdx-json", "cyclonedx-json"]
FORMATS: tuple[SbomFormat, ...] = ("spdx-json", "cyclonedx-json")


def render_sbom(inp: SbomInput, fmt: SbomFormat) -> bytes:
    """``inp`` in one of the ``FORMATS``."""
    # The generator libraries are heavy to import: load only the one asked for.
    match fmt:
        case "spdx-json":
            from kiln.sbom.spdx import generate_spdx  # noqa: PLC0415

            return generate_spdx(inp)
        case "cyclonedx-json":
            from kiln.sbom.cyclonedx import generate_cyclonedx  # noqa: PLC0415

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
