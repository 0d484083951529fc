"""Debian repository access: mirrors, signed indexes, packages, versions, .deb files."""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
