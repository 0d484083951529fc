"""Run commands and tests inside image root filesystems, sandboxed with bubblewrap.

Public interface:

* ``resolve_image(layout, tag=, arch=) -> ImageRef`` and ``unpack_image(image, dest)``
  (rootless unpack of an OCI layout, whiteouts honoured, traversal refused);
* ``run_in_rootfs(rootfs, argv, uid=, gid=, env=, workdir=, network=, timeout=)``;
* ``run_layout_tests(layout, arch=)`` runs the tests stored in the image; ``ctrf_report``
  and ``write_ctrf`` produce the CTRF JSON report.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
