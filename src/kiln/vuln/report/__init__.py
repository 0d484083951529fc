"""Scan report formats: table, JSON (docs/scan-json.md), SARIF 2.1.0, CycloneDX 1.6, OpenVEX."""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported); ``FORMATTERS``
# imports one formatter's module when it is looked up.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
