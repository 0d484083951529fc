"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .apply import apply_vex, product_matches
from .cyclonedx import CycloneDxVexReader
from .interface import VexFormatError, VexReader
from .load import READERS, load_vex
from .model import JUSTIFICATIONS, VEX_STATUSES, VexStatement
from .openvex import OpenVexReader, write_openvex

__all__ = [
    "JUSTIFICATIONS",
    "READERS",
    "VEX_STATUSES",
    "CycloneDxVexReader",
    "OpenVexReader",
    "VexFormatError",
    "VexReader",
    "VexStatement",
    "apply_vex",
    "load_vex",
    "product_matches",
    "write_openvex",
]
