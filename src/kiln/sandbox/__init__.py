"""Run commands and tests inside image root filesystems, sandboxed with bubblewrap.

Public interface:

* ``resolve_image(layout, tag=, arch=) -> ImageRef`` and ``unpack_image(image, dest)``
  (rootless unpack of an OCI layout, whiteouts honoured, traversal refused);
* ``run_in_rootfs(rootfs, argv, uid=, gid=, env=, workdir=, network=, timeout=)``;
* ``run_layout_tests(layout, arch=)`` runs the tests stored in the image; ``ctrf_report``
  and ``write_ctrf`` produce the CTRF JSON report.
"""

from kiln.sandbox.bwrap import RunResult, bwrap_argv, parse_user, run_in_rootfs
from kiln.sandbox.runner import (
    TestOutcome,
    ctrf_report,
    failure_text,
    run_layout_tests,
    run_test,
    run_tests,
    tests_of,
    write_ctrf,
)
from kiln.sandbox.unpack import (
    ImageConfig,
    ImageRef,
    UnpackedImage,
    remove_rootfs,
    resolve_image,
    unpack_image,
)

__all__ = [
    "ImageConfig",
    "ImageRef",
    "RunResult",
    "TestOutcome",
    "UnpackedImage",
    "bwrap_argv",
    "ctrf_report",
    "failure_text",
    "parse_user",
    "remove_rootfs",
    "resolve_image",
    "run_in_rootfs",
    "run_layout_tests",
    "run_test",
    "run_tests",
    "tests_of",
    "unpack_image",
    "write_ctrf",
]
