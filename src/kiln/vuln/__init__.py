"""Vulnerability intelligence: feeds -> database -> pure matcher (+ VEX) -> reports.

Folders: ``feeds/`` (one module per source), ``db/`` (SQLAlchemy models, Alembic
migrations, import/query), ``match/`` (pure matchers), ``vex/`` (OpenVEX and CycloneDX
VEX), ``report/`` (output formats). ``scan.py`` wires them for ``kiln scan``.
"""

from kiln.vuln.model import Finding, FindingStatus, MatchDetail, Severity, Snapshot, VexVerdict
from kiln.vuln.scan import ScanResult, gate, only_fixed, scan_inventory

__all__ = [
    "Finding",
    "FindingStatus",
    "MatchDetail",
    "ScanResult",
    "Severity",
    "Snapshot",
    "VexVerdict",
    "gate",
    "only_fixed",
    "scan_inventory",
]
