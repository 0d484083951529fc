"""Independent rebuild verification: compare rebuilt .debs with the distro's, by sha256.

A reproducible package (https://reproducible-builds.org/docs/definition/) rebuilt
from the same source in an equivalent environment gives .debs whose sha256 equals the
archive's. When one differs, the comparison says what differs: with ``diffoscope``
when it is installed, else member by member (control fields, each data member's
metadata and content digest) with kiln's own .deb reader.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.debian.deb import read_deb

_DIFFOSCOPE_TIMEOUT = 900.0
_MAX_DIFFERENCES = 50


@dataclass(frozen=True)
class DebComparison:
    """One binary package: ours vs the distro's."""

    package: str
    ours: str  # sha256, "" when we did not build it
    theirs: str  # sha256, "" when the distro has no such .deb
    differences: tuple[str, ...] = ()
    diffoscope: str | None = None  # diffoscope's text output, when it ran

    @property
    def identical(self) -> bool:
        return bool(self.ours) and self.ours == self.theirs


@dataclass(frozen=True)
class RebuildComparison:
    source: str
    version: str
    packages: tuple[DebComparison, ...]
    diffoscope_available: bool
    skipped: tuple[str, ...] = ()  # built but not comparable (e.g. -dbgsym packages)

    @property
    def identical(self) -> bool:
        return bool(self.packages) and all(p.identical for p in self.packages)

    @property
    def rate(self) -> float:
        if not self.packages:
            return 0.0
        return sum(p.identical for p in self.packages) / len(self.packages)


def compare_debs(
    source: str,
    version: str,
    ours: Mapping[str, Path],
    theirs: Mapping[str, Path],
    *,
    use_diffoscope: bool = True,
    skipped: tuple[str, ...] = (),
) -> RebuildComparison:
    """Compare ``ours`` and ``theirs`` (binary package name -> .deb path)."""
    diffoscope = shutil.which("diffoscope") if use_diffoscope else None
    results = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        ours_sha = _sha256(a) if a else ""
        theirs_sha = _sha256(b) if b else ""
        if a is None or b is None or ours_sha == theirs_sha:
            missing = () if a and b else (("not rebuilt",) if a is None else ("not in the distro",))
            results.append(DebComparison(name, ours_sha, theirs_sha, missing))
            continue
        report = _run_diffoscope(diffoscope, b, a) if diffoscope else None
        results.append(DebComparison(name, ours_sha, theirs_sha, member_differences(b, a), report))
    return RebuildComparison(source, version, tuple(results), diffoscope is not None, skipped)


def member_differences(theirs: Path, ours: Path) -> tuple[str, ...]:
    """What differs between two .debs, member by member (control, then data)."""
    a = read_deb(theirs, name=theirs.name)
    b = read_deb(ours, name=ours.name)
    found: list[str] = []
    fields_a, fields_b = dict(a.control.stanza()), dict(b.control.stanza())
    for key in sorted(set(fields_a) | set(fields_b)):
        if fields_a.get(key) != fields_b.get(key):
            found.append(f"control {key}: {fields_a.get(key)!r} != {fields_b.get(key)!r}")
    members_a = {m.path: m for m in a.members}
    members_b = {m.path: m for m in b.members}
    for path in sorted(set(members_a) | set(members_b)):
        ma, mb = members_a.get(path), members_b.get(path)
        if ma is None or mb is None:
            found.append(f"{path}: only in {'ours' if ma is None else 'theirs'}")
            continue
        meta_a = (ma.type, ma.mode, ma.uid, ma.gid, ma.mtime, ma.link_target, ma.size)
        meta_b = (mb.type, mb.mode, mb.uid, mb.gid, mb.mtime, mb.link_target, mb.size)
        if meta_a != meta_b:
            found.append(f"{path}: metadata {meta_a} != {meta_b}")
        elif ma.is_file and a.contents.get(path) != b.contents.get(path):
            found.append(f"{path}: content differs")
    if not found:
        found.append("same members and contents; the archive encoding differs")
    return tuple(found[:_MAX_DIFFERENCES])


def _run_diffoscope(diffoscope: str, theirs: Path, ours: Path) -> str:
    try:
        proc = subprocess.run(
            [diffoscope, "--text", "-", str(theirs), str(ours)],
            capture_output=True,
            timeout=_DIFFOSCOPE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"diffoscope failed: {exc}"
    return proc.stdout.decode("utf-8", "replace")[-200_000:]


def debs_by_package(paths: Sequence[Path]) -> dict[str, Path]:
    """``name_version_arch.deb`` files keyed by package name."""
    return {p.name.split("_", 1)[0]: p for p in paths if p.suffix == ".deb"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
