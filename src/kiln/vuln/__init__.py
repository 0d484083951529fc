"""Vulnerability intelligence: feeds -> database -> pure matcher (+ VEX) -> reports.

Folders: ``feeds/`` (one module per source), ``db/`` (SQLAlchemy models, Alembic
migrations, import/query), ``match/`` (pure matchers), ``vex/`` (OpenVEX and CycloneDX
VEX), ``report/`` (output formats). ``scan.py`` wires them for ``kiln scan``.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
