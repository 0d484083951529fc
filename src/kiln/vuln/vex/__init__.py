"""VEX: read OpenVEX and CycloneDX VEX, apply statements to findings, write OpenVEX."""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): applying VEX
# during a scan does not load the document readers and their pydantic models.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
