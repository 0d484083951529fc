"""What the dynamic loader will not find without an ``ld.so.cache``.

kiln writes no ``/etc/ld.so.cache``: running ``ldconfig`` is a maintainer-script job,
and Debian's loader already searches the multiarch directories (``/usr/lib/<triplet>``,
via merged /usr also ``/lib/<triplet>``) and ``/usr/lib`` without one. A package that
adds other directories through ``/etc/ld.so.conf.d/*.conf`` would then have libraries
the loader cannot see; this module finds those directories so the build report names
them (the spec can set ``LD_LIBRARY_PATH`` or a RUNPATH-using build). See ld.so(8),
ldconfig(8).
"""

from __future__ import annotations

import posixpath

from kiln.assemble.fs import Plan, normalise_path
from kiln.errors import InputError

TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def default_dirs(arch: str) -> frozenset[str]:
    triplet = TRIPLETS.get(arch, f"{arch}-linux-gnu")
    return frozenset({f"usr/lib/{triplet}", "usr/lib", "usr/lib64"})


def _conf_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    for entry in sorted(plan.children("etc/ld.so.conf.d"), key=lambda e: e.path):
        if not entry.path.endswith(".conf"):
            continue
        data = plan.read(entry.path) or b""
        lines.extend(data.decode("utf-8", "replace").splitlines())
    return lines


def uncached_library_dirs(plan: Plan, arch: str) -> tuple[str, ...]:
    """Directories from ld.so.conf.d holding shared objects the loader will not search."""
    defaults = default_dirs(arch)
    found = []
    for raw in _conf_lines(plan):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("include") or not line.startswith("/"):
            continue
        try:
            directory = normalise_path(line, where="ld.so.conf.d")
        except InputError:
            continue
        real = plan.resolve(directory)
        if real is None or real in defaults:
            continue
        has_libs = any(
            ".so" in posixpath.basename(e.path) and e.kind != "dir" for e in plan.children(real)
        )
        if has_libs and "/" + real not in found:
            found.append("/" + real)
    return tuple(found)
