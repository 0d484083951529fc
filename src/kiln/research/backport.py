"""Before a backport: is the release's own source affected by the fix the finder chose?

``release_verdict`` fetches the release's source through kiln's signed source path
(``SourceBuilder.fetch``: signed Sources, checksums), unpacks it with its Debian patches
applied (``dpkg-source -x`` in the sandbox) and runs ``kiln.research.affected.decide``
against the fix's diff. ``kiln research --backport`` stops on ``not_affected`` (issue #17:
record ``vulnerable_code_not_present`` with the hunks as evidence instead of a patch).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kiln.debian.distro import DISTROS
from kiln.errors import InputError
from kiln.pipeline.source import SourceBuilder
from kiln.recipes.build import unpack_source
from kiln.research.affected import AffectedVerdict, decide


def release_verdict(
    source: str,
    version: str,
    diff: bytes,
    *,
    work: Path,
    release: str = "trixie",
    builder: SourceBuilder | None = None,
) -> AffectedVerdict:
    """``decide`` for ``source`` ``version`` of ``release``, unpacked under ``work``.

    The tree is removed afterwards; the fetched files stay in kiln's source cache (the
    backport's own fetch reuses them).
    """
    distro = next((d for d in DISTROS.values() if release in (d.codename, d.id)), None)
    if distro is None:
        raise InputError(f"unknown release {release!r}")
    fetcher = builder if builder is not None else SourceBuilder.from_environment()
    fetched, _ = fetcher.fetch(distro, source, version=version)
    scratch = work / "affected"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        tree = unpack_source(fetched, Path("/"), scratch, log=work / "affected.log")
        return decide(diff.decode("utf-8", "replace"), tree)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
