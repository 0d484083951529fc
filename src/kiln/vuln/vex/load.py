"""Read a VEX document of either supported format (OpenVEX, CycloneDX VEX)."""

from __future__ import annotations

import json
from pathlib import Path

from kiln.errors import InputError, Location
from kiln.vuln.vex.cyclonedx import CycloneDxVexReader
from kiln.vuln.vex.interface import VexFormatError, VexReader
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import OpenVexReader

READERS: tuple[VexReader, ...] = (OpenVexReader(), CycloneDxVexReader())


def load_vex(path: Path) -> list[VexStatement]:
    """Read a VEX document of any supported format."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the VEX document: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VexFormatError(
            f"not JSON: {exc}", Location(str(path), line=getattr(exc, "lineno", None))
        ) from exc
    if not isinstance(document, dict):
        raise VexFormatError("a VEX document must be a JSON object", Location(str(path), field="$"))
    for reader in READERS:
        if reader.accepts(document):
            return reader.read(document, str(path))
    raise VexFormatError(
        "neither OpenVEX (@context https://openvex.dev/ns/...) nor CycloneDX (bomFormat)",
        Location(str(path), field="$"),
    )
