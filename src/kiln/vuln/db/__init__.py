"""The vulnerability database: SQLAlchemy tables, Alembic migrations, import and query.

Submodules load on first use (see __init__.pyi for what is exported): a scan of an
SQLite database at the newest schema reads it through ``read`` without SQLAlchemy.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
