"""The vulnerability database: SQLAlchemy models, Alembic migrations, import and query."""

from kiln.vuln.db.store import Held, ImportResult, VulnData, VulnDB, default_db_url

__all__ = ["Held", "ImportResult", "VulnDB", "VulnData", "default_db_url"]
