"""Image assembly: locked packages -> filesystem plan -> steps -> hardening -> OCI layout.

Public interface (the lead maps an image spec + lock onto ``AssemblyInput``):

* ``assemble(inp) -> AssembledRootfs`` — the final plan and hardening report (pure);
* ``build_image(inputs, out, ...) -> BuiltImage`` — a multi-arch OCI layout, written
  atomically, with ``hardening.json`` inside and optional oci-/docker-archives;
* ``package_input(deb)`` — adapt a verified ``kiln.debian.deb.DebPackage``.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
