"""Scan report formats: table, JSON (docs/scan-json.md), SARIF 2.1.0, CycloneDX 1.6, OpenVEX."""

from kiln.vuln.report.cyclonedx import CycloneDxFormatter
from kiln.vuln.report.interface import Formatter
from kiln.vuln.report.json_format import SCHEMA, JsonFormatter, result_json
from kiln.vuln.report.openvex import OpenVexFormatter
from kiln.vuln.report.sarif import SarifFormatter
from kiln.vuln.report.table import TableFormatter

FORMATTERS: dict[str, Formatter] = {
    f.name: f
    for f in (
        TableFormatter(),
        JsonFormatter(),
        SarifFormatter(),
        OpenVexFormatter(),
        CycloneDxFormatter(),
    )
}

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
