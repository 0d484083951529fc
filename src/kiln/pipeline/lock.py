"""Lock a spec: resolve every variant and architecture against one verified snapshot.

Pure given the snapshot: the same spec and the same indexes give the same lock bytes.
A spec naming npm packages is also locked against the npm registry (``NpmRegistry``,
from npm's config unless one is given): each pinned version's tarball is fetched once
into kiln's cache and recorded with its sha512 integrity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiln.debian import BinaryPackage, RepoSnapshot, get_distro
from kiln.resolve.lockfile import (
    ArchLock,
    CutEdge,
    Lock,
    LockedNpmPackage,
    LockedPackage,
    LockedRelease,
)
from kiln.resolve.solver import Resolution, UnknownPackageError, resolve
from kiln.spec import LoadedSpec

if TYPE_CHECKING:
    from kiln.upstream import NpmRegistry


@dataclass(frozen=True)
class LockResult:
    """A fresh lock and the resolutions behind it (for ``--why`` and reports)."""

    lock: Lock
    resolutions: dict[tuple[str, str], Resolution]  # (variant, arch) -> resolution


def lock_npm(
    loaded: LoadedSpec, registry: NpmRegistry | None = None
) -> dict[str, tuple[LockedNpmPackage, ...]]:
    """Each variant's pinned npm packages, locked against the registry (none: no I/O)."""
    spec = loaded.spec
    wanted = {v: spec.npm_for(v) for v in spec.variant_names()}
    if not any(wanted.values()):
        return {}
    if registry is None:
        from kiln.upstream import NpmRegistry  # noqa: PLC0415 (only specs with npm need it)

        registry = NpmRegistry.from_environment()
    locked: dict[tuple[str, str], LockedNpmPackage] = {}
    result = {}
    for variant, refs in wanted.items():
        if refs:
            for ref in refs:
                if ref not in locked:
                    locked[ref] = registry.lock(*ref)
            result[variant] = tuple(locked[ref] for ref in refs)
    return result


def lock_spec(
    loaded: LoadedSpec, snapshot: RepoSnapshot, *, npm_registry: NpmRegistry | None = None
) -> LockResult:
    """Resolve each variant of ``loaded`` on each of its architectures (+ its npm pins)."""
    spec = loaded.spec
    distro = get_distro(spec.distro)
    resolutions: dict[tuple[str, str], Resolution] = {}
    variants: dict[str, dict[str, ArchLock]] = {}
    for variant in spec.variant_names():
        requested = spec.packages_for(variant)
        for arch in spec.archs:
            try:
                resolution = resolve(
                    requested,
                    snapshot.universe(arch),
                    exclude=spec.exclude_for(variant),
                    # -dev keeps maintainer-script dependencies: its dpkg database must
                    # stay consistent for apt-get install on top of it.
                    drop_install_time_only=variant == "runtime",
                    distro=distro,
                )
            except UnknownPackageError as exc:
                raise _locate_unknown(exc, loaded, variant) from exc
            resolutions[(variant, arch)] = resolution
            variants.setdefault(variant, {})[arch] = ArchLock(
                packages=tuple(_locked(p) for p in resolution.packages),
                cut_edges=tuple(
                    CutEdge(from_package=e.from_package, relation=e.relation, reason=e.reason)
                    for e in resolution.cut_edges
                ),
            )
    lock = Lock(
        image=spec.name,
        distro=spec.distro,
        spec_sha256=loaded.sha256,
        releases=tuple(
            LockedRelease(
                suite=r.suite, codename=r.codename, date=r.date, inrelease_sha256=r.inrelease_sha256
            )
            for r in snapshot.releases
        ),
        variants=variants,
        npm=lock_npm(loaded, npm_registry),
    )
    return LockResult(lock, resolutions)


def _locked(p: BinaryPackage) -> LockedPackage:
    return LockedPackage(
        name=p.name,
        version=p.version,
        arch=p.architecture,
        source=p.source,
        source_version=p.source_version,
        filename=p.filename,
        size=p.size,
        sha256=p.sha256,
        suite=p.suite,
    )


def locked_to_binary(p: LockedPackage) -> BinaryPackage:
    """The fields of a locked package that fetching and assembly need."""
    return BinaryPackage(
        name=p.name,
        version=p.version,
        architecture=p.arch,
        source=p.source,
        source_version=p.source_version,
        filename=p.filename,
        size=p.size,
        sha256=p.sha256,
        suite=p.suite,
    )


def _locate_unknown(
    exc: UnknownPackageError, loaded: LoadedSpec, variant: str
) -> UnknownPackageError:
    """Point an unknown-package error at the spec line that asked for the package."""
    quoted = set(re.findall(r"'([^']+)'", exc.message))
    candidates: Sequence[tuple[tuple[str | int, ...], str]] = [
        (("packages", i), name) for i, name in enumerate(loaded.spec.packages)
    ]
    if variant != "runtime":
        candidates = [
            *candidates,
            *(
                (("variants", variant, "packages", i), name)
                for i, name in enumerate(loaded.spec.variant(variant).packages)
            ),
        ]
    for field_path, name in candidates:
        if name in quoted:
            return UnknownPackageError(
                exc.message, loaded.locate(field_path), exc.hint, list(exc.details)
            )
    return exc
