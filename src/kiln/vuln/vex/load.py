"""Read a VEX document of either supported format (OpenVEX, CycloneDX VEX)."""

from __future__ import annotations

from pathlib import Path

from kiln.errors import Location
from kiln.jsonlimits import read_json_file
from kiln.vuln.vex.cyclonedx import CycloneDxVexReader
from kiln.vuln.vex.interface import VexFormatError, VexReader
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import OpenVexReader

READERS: tuple[VexReader, ...] = (OpenVexReader(), CycloneDxVexReader())
#: a VEX document from outside, read whole (a large CycloneDX VEX is a few MB)
MAX_VEX_BYTES = 64 * 1024 * 1024


def load_vex(path: Path) -> list[VexStatement]:
    """Read a VEX document of any supported format."""
    document = read_json_file(
        path, max_bytes=MAX_VEX_BYTES, what="the VEX document", error=VexFormatError
    )
    if not isinstance(document, dict):
        raise VexFormatError("a VEX document must be a JSON object", Location(str(path), field="$"))
    for reader in READERS:
        if reader.accepts(document):
            return reader.read(document, str(path))
    raise VexFormatError(
        "neither OpenVEX (@context https://openvex.dev/ns/...) nor CycloneDX (bomFormat)",
        Location(str(path), field="$"),
    )
