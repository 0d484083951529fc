"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .read import Held, SqliteReader, VulnData, VulnSource, default_db_url
from .scan_source import open_for_scan
from .store import ImportResult, VulnDB

__all__ = [
    "Held",
    "ImportResult",
    "SqliteReader",
    "VulnDB",
    "VulnData",
    "VulnSource",
    "default_db_url",
    "open_for_scan",
]
