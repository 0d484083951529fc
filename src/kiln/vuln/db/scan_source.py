"""The database a scan reads: the fast read-only ``SqliteReader`` or a ``VulnDB``.

Apart from ``read`` (the one query path) and ``store`` (the SQLAlchemy store that
imports it), so that neither of the two imports the other.
"""

# The SQLAlchemy-backed store is imported only when the fast path does not apply.
# ruff: noqa: PLC0415

from __future__ import annotations

from kiln.vuln.db.read import SqliteReader, VulnSource, as_db_url, default_db_url


def open_for_scan(url: str | None = None) -> VulnSource:
    """The database to scan against: read directly when it is an SQLite file at the
    newest schema, else opened (created, migrated) as a ``VulnDB``."""
    url = as_db_url(url) if url else default_db_url()
    reader = SqliteReader.open_current(url)
    if reader is not None:
        return reader
    from kiln.vuln.db.store import VulnDB

    db: VulnDB = VulnDB.open(url)
    return db
