"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .bwrap import RunResult, bwrap_argv, parse_user, run_in_rootfs
from .runner import (
    TestOutcome,
    ctrf_report,
    failure_text,
    run_layout_tests,
    run_test,
    run_tests,
    tests_of,
    write_ctrf,
)
from .unpack import ImageConfig, ImageRef, UnpackedImage, remove_rootfs, resolve_image, unpack_image

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
