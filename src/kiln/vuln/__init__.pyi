"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .model import Finding, FindingStatus, MatchDetail, Severity, Snapshot, VexVerdict
from .scan import ScanResult, gate, only_fixed, scan_inventory

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
