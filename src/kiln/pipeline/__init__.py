"""Stages that join the pure cores to their I/O edges: lock a spec, fetch its packages."""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
