"""Build the "after" images: kiln's own, copied from their OCI layouts into the store.

The stand-ins are made from today's archive, so kiln's side is too: the catalog's specs
and locks are copied into the suite's work directory (``stage_specs``) and built there
with ``--refresh``, which relocks a copy that fell behind the archive. The repository's
own locks are never rewritten, and a suite run does not fail because Debian published a
security update since they were checked in. ``kiln build DIR/<name>.yaml --output OUT``
writes ``OUT/<name>`` and ``OUT/<name>-dev``; skopeo copies a layout into the suite's
store under the name the swapped FROM line uses (``localhost/kiln/python:3.13-dev``).
skopeo picks the host's platform out of the multi-arch index.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kiln.compat.containers import Store, run
from kiln.oci.layout import ImageLayout, LayoutError
from kiln.spec.load import lock_path_for

BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class KilnImport:
    """A kiln layout copied into the store (or why it could not be)."""

    layout: str
    ref: str
    ok: bool
    log_tail: str = ""


def stage_specs(images_dir: Path, names: list[str], dest: Path) -> list[Path]:
    """Copies of the catalog specs ``names`` (and their locks, when present) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    staged = []
    for name in names:
        spec = images_dir / f"{name}.yaml"
        shutil.copyfile(spec, dest / spec.name)
        lock = lock_path_for(spec)
        if lock.is_file():
            shutil.copyfile(lock, lock_path_for(dest / spec.name))
        staged.append(dest / spec.name)
    return staged


def kiln_build_argv(specs: list[Path], output: Path, arch: str) -> list[str]:
    """``kiln build`` of (staged copies of) ``specs`` for one arch, into ``output``."""
    return [
        sys.executable,
        "-m",
        "kiln.cli.main",
        "build",
        *map(str, specs),
        "--output",
        str(output),
        "--arch",
        arch,
        "--refresh",  # the staged copies are relocked when the archive moved on
    ]


def layout_tag(layout: Path) -> str | None:
    """The first tag (``org.opencontainers.image.ref.name``) of an OCI layout's index.

    Raises ``LayoutError`` when ``layout`` is not a readable OCI image layout.
    """
    return ImageLayout.open(layout).first_tag()


def import_layout(layout: Path, ref: str, store: Store, *, log: Path) -> KilnImport:
    """Copy the OCI layout at ``layout`` into ``store`` as ``ref``."""
    try:
        tag = layout_tag(layout)
    except LayoutError as exc:
        return KilnImport(layout.name, ref, False, exc.message)
    if tag is None:
        return KilnImport(layout.name, ref, False, f"{layout}/index.json names no tagged image")
    result = run(
        ["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", f"{store.transport}{ref}"],
        timeout=600,
        log=log,
    )
    return KilnImport(layout.name, ref, result.ok, "" if result.ok else result.tail())
