"""Lock a spec: resolve every variant and architecture against one verified snapshot.

Pure given the snapshot: the same spec and the same indexes give the same lock bytes.
A spec naming npm packages is also locked against the npm registry (``NpmIndex``,
from npm's config unless one is given): each pinned version's tarball is fetched once
into kiln's cache and recorded with its sha512 integrity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kiln.debian import BinaryPackage, RepoSnapshot, get_distro
from kiln.errors import PolicyError, TransportError
from kiln.resolve.lockfile import (
    ArchLock,
    CutEdge,
    Lock,
    LockDrift,
    LockedNpmPackage,
    LockedPackage,
    LockedRelease,
    LockError,
    diff_locks,
    lock_drift,
    read_lock,
    write_lock,
)
from kiln.resolve.solver import Resolution, UnknownPackageError, resolve
from kiln.spec import LoadedSpec

if TYPE_CHECKING:
    from kiln.pipeline.archive import ArchiveAccess
    from kiln.upstream import NpmIndex


@dataclass(frozen=True)
class LockResult:
    """A fresh lock and the resolutions behind it (for ``--why`` and reports)."""

    lock: Lock
    resolutions: dict[tuple[str, str], Resolution]  # (variant, arch) -> resolution


def lock_npm(
    loaded: LoadedSpec, index: NpmIndex | None = None
) -> dict[str, tuple[LockedNpmPackage, ...]]:
    """Each variant's pinned npm packages, locked against the registry (none: no I/O)."""
    spec = loaded.spec
    wanted = {v: spec.npm_for(v) for v in spec.variant_names()}
    if not any(wanted.values()):
        return {}
    if index is None:
        from kiln.upstream import NpmIndex  # noqa: PLC0415 (only specs with npm need it)

        index = NpmIndex.from_environment()
    locked: dict[tuple[str, str], LockedNpmPackage] = {}
    result = {}
    for variant, refs in wanted.items():
        if refs:
            for ref in refs:
                if ref not in locked:
                    locked[ref] = index.lock(*ref)
            result[variant] = tuple(locked[ref] for ref in refs)
    return result


def lock_spec(
    loaded: LoadedSpec,
    snapshot: RepoSnapshot,
    *,
    npm_index: NpmIndex | None = None,
    npm: dict[str, tuple[LockedNpmPackage, ...]] | None = None,
) -> LockResult:
    """Resolve each variant of ``loaded`` on each of its architectures (+ its npm pins).

    ``npm`` reuses already locked npm pins instead of asking the registry again.
    """
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
        npm=npm if npm is not None else lock_npm(loaded, npm_index),
    )
    return LockResult(lock, resolutions)


LockPolicy = Literal["keep", "frozen", "refresh"]


@dataclass(frozen=True)
class CurrentLock:
    """The lock a build uses, and what was learnt about it on the way.

    ``written`` says why the lock file was (re)written (``None``: used as found);
    ``drift`` how far a lock used as found is behind today's archive; ``unchecked``
    why that could not be told (the archive was unreachable).
    """

    lock: Lock
    written: str | None = None
    drift: LockDrift | None = None
    unchecked: str | None = None


def current_lock(
    loaded: LoadedSpec, archive: ArchiveAccess, policy: LockPolicy = "keep"
) -> CurrentLock:
    """The lock to build ``loaded`` from, under ``policy``.

    - ``keep``: the checked-in lock when it belongs to the spec as it is (else lock
      anew), compared with the archive so the caller can say how far behind it is;
    - ``frozen``: the checked-in lock only if the archive still resolves to it exactly
      (``PolicyError`` naming every change otherwise; a missing lock is an input error);
    - ``refresh``: lock against the archive first, rewriting the file when it changed.
    """
    path = loaded.lock_path
    if policy == "frozen":
        existing = read_lock(path)
        fresh = lock_spec(
            loaded, archive.snapshot_for(loaded.spec), npm=_npm_pins(existing, loaded)
        )
        changes = diff_locks(existing, fresh.lock)
        if changes:
            raise PolicyError(
                f"{path} is stale; --frozen refuses to build from it",
                details=changes,
                hint=f"run `kiln lock {loaded.path}` (or build with --refresh) and review it",
            )
        return CurrentLock(existing)
    found: Lock | None = None
    try:
        found = read_lock(path)
    except LockError:
        if path.exists():
            raise
    belongs = found is not None and found.spec_sha256 == loaded.sha256
    if found is not None and belongs and policy == "keep":
        try:
            fresh = lock_spec(loaded, archive.snapshot_for(loaded.spec), npm=found.npm)
        except TransportError as exc:
            return CurrentLock(found, unchecked=f"could not compare with the archive: {exc}")
        return CurrentLock(found, drift=lock_drift(found, fresh.lock, path=str(path)))
    pins = _npm_pins(found, loaded) if belongs else None
    relocked = lock_spec(loaded, archive.snapshot_for(loaded.spec), npm=pins).lock
    if found is None:
        why = "no lock yet"
    elif not belongs:
        why = "spec changed"
    elif diff_locks(found, relocked):
        drift = lock_drift(found, relocked, path=str(path))
        why = f"refreshed: {drift.summary() if drift else 'resolution changed'}"
    else:
        return CurrentLock(found)  # the archive resolves to it exactly: nothing to write
    write_lock(relocked, path)
    return CurrentLock(relocked, written=why)


def _npm_pins(
    lock: Lock | None, loaded: LoadedSpec
) -> dict[str, tuple[LockedNpmPackage, ...]] | None:
    """A lock's npm pins when they belong to the spec as it is (npm pins only move with it)."""
    if lock is None or lock.spec_sha256 != loaded.sha256:
        return None
    return lock.npm


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
