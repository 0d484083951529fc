"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .cyclonedx import CycloneDxFormatter
from .formats import FORMATTERS
from .interface import Formatter
from .json_format import SCHEMA, JsonFormatter, result_json
from .openvex import OpenVexFormatter
from .sarif import SarifFormatter
from .table import TableFormatter

__all__ = [
    "FORMATTERS",
    "SCHEMA",
    "CycloneDxFormatter",
    "Formatter",
    "JsonFormatter",
    "OpenVexFormatter",
    "SarifFormatter",
    "TableFormatter",
    "result_json",
]
