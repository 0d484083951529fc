"""The lock: the exact packages of every variant and architecture of one image spec.

``images/<name>.lock.json`` is checked in next to its spec. It is canonical JSON (sorted
keys, sorted packages, two-space indent, trailing newline) so diffs stay readable and
the same resolution always gives the same bytes. It names no mirror host: only pool
paths, which are the same on every Debian mirror.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiln.errors import InputError, Location
from kiln.fileio import atomic_write
from kiln.jsonlimits import parse_json

LOCK_VERSION: Literal[1] = 1
_HEX64 = r"^[0-9a-f]{64}$"
#: Catalog locks are ~100 KiB; a thousand times that is no lock kiln wrote.
MAX_LOCK_BYTES = 128 * 1024 * 1024


class LockError(InputError):
    """A lock file is missing, malformed, or does not belong to its spec."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class LockedPackage(_Frozen):
    """One .deb exactly: where it lives in the pool and what it must hash to."""

    name: str
    version: str
    arch: str
    source: str
    source_version: str
    filename: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_HEX64)
    suite: str

    @field_validator("filename")
    @classmethod
    def _pool_path(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or "://" in value:
            raise ValueError(f"{value!r} is not a relative pool path")
        return value


_SRI_SHA512 = r"^sha512-[A-Za-z0-9+/]{86}==$"


class LockedNpmPackage(_Frozen):
    """One npm registry tarball exactly: its path under the registry and its hashes.

    ``path`` is relative to the registry base URL (``npm/-/npm-10.9.2.tgz``), so the lock
    names no registry host; ``integrity`` is the registry's Subresource Integrity value
    (sha512), ``sha256`` and ``size`` what kiln measured when it fetched the tarball.
    """

    name: str
    version: str
    path: str
    integrity: str = Field(pattern=_SRI_SHA512)
    sha256: str = Field(pattern=_HEX64)
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if (
            not value
            or value.startswith("/")
            or ".." in value.split("/")
            or "://" in value
            or "?" in value
            or "#" in value
        ):
            raise ValueError(f"{value!r} is not a path relative to the registry")
        return value


class CutEdge(_Frozen):
    """A dependency edge the lock deliberately does not follow, and why."""

    from_package: str = Field(alias="from")
    relation: str
    reason: str


class ArchLock(_Frozen):
    """The resolved set of one variant on one architecture."""

    packages: tuple[LockedPackage, ...]
    cut_edges: tuple[CutEdge, ...] = ()


class LockedRelease(_Frozen):
    """The signed Release a lock was resolved from (identity, not location)."""

    suite: str
    codename: str
    date: str
    inrelease_sha256: str = Field(pattern=_HEX64)


class Lock(_Frozen):
    """Everything needed to fetch and verify the exact inputs of an image build."""

    lock_version: Literal[1] = LOCK_VERSION
    image: str
    distro: str
    spec_sha256: str = Field(pattern=_HEX64)
    releases: tuple[LockedRelease, ...]
    variants: dict[str, dict[str, ArchLock]]
    npm: dict[str, tuple[LockedNpmPackage, ...]] = Field(
        default_factory=dict, description="variant -> npm registry tarballs (all archs)"
    )

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys and entries, stable across runs and machines."""
        canonical = self.model_copy(
            update={
                "releases": tuple(sorted(self.releases, key=lambda r: r.suite)),
                "variants": {
                    v: {
                        a: ArchLock(
                            packages=tuple(sorted(al.packages, key=lambda p: (p.name, p.arch))),
                            cut_edges=tuple(
                                sorted(
                                    set(al.cut_edges),
                                    key=lambda e: (e.from_package, e.relation, e.reason),
                                )
                            ),
                        )
                        for a, al in arches.items()
                    }
                    for v, arches in self.variants.items()
                },
                "npm": {
                    v: tuple(sorted(pkgs, key=lambda p: p.name)) for v, pkgs in self.npm.items()
                },
            }
        )
        data = canonical.model_dump(mode="json", by_alias=True)
        if not self.npm:
            del data["npm"]  # locks without npm packages keep their bytes (and digests)
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical bytes: the lock's identity in provenance."""
        return "sha256:" + hashlib.sha256(self.to_json()).hexdigest()

    def packages(self, variant: str, arch: str) -> tuple[LockedPackage, ...]:
        try:
            return self.variants[variant][arch].packages
        except KeyError:
            raise LockError(f"the lock of {self.image} has no {variant}/{arch} entry") from None

    def npm_packages(self, variant: str) -> tuple[LockedNpmPackage, ...]:
        """The npm tarballs of a variant (none when the spec names no npm packages)."""
        return self.npm.get(variant, ())

    def all_packages(self) -> tuple[LockedPackage, ...]:
        """Every distinct .deb the lock names, across variants and architectures."""
        seen = {
            (p.name, p.version, p.arch): p
            for arches in self.variants.values()
            for al in arches.values()
            for p in al.packages
        }
        return tuple(seen[k] for k in sorted(seen))


def parse_lock(data: bytes, path: Path) -> Lock:
    """Parse lock bytes, naming the file and field path on any problem."""
    # bounded: json.loads alone raised RecursionError on a lock of nested brackets
    raw = parse_json(
        data, where=str(path), max_bytes=MAX_LOCK_BYTES, what="the lock", error=LockError, file=True
    )
    try:
        return Lock.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise LockError(
            str(err["msg"]),
            Location(str(path), field=where),
            hint="regenerate it with `kiln lock`",
        ) from exc


def read_lock(path: Path) -> Lock:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LockError(
            f"lock file {path} does not exist", hint="create it with `kiln lock`"
        ) from None
    return parse_lock(data, path)


def write_lock(lock: Lock, path: Path) -> bool:
    """Write atomically (temp file, fsync, rename). Returns False when already identical."""
    data = lock.to_json()
    if path.exists() and path.read_bytes() == data:
        return False
    atomic_write(path, data)
    return True


def diff_locks(old: Lock, new: Lock) -> list[str]:
    """What changed between two locks, one human line per change; empty when equivalent.

    Release identities are informational (a re-signed Release with the same packages
    does not make a lock stale); the spec digest and the package sets are what count.
    """
    changes: list[str] = []
    if old.spec_sha256 != new.spec_sha256:
        changes.append(f"spec changed (sha256 {old.spec_sha256[:12]} → {new.spec_sha256[:12]})")
    if old.distro != new.distro:
        changes.append(f"distro changed: {old.distro} → {new.distro}")
    for variant in sorted(set(old.variants) | set(new.variants)):
        o_arches, n_arches = old.variants.get(variant, {}), new.variants.get(variant, {})
        for arch in sorted(set(o_arches) | set(n_arches)):
            where = f"{variant}/{arch}"
            if arch not in o_arches or arch not in n_arches:
                changes.append(f"{where}: {'added' if arch in n_arches else 'removed'}")
                continue
            changes.extend(
                f"{where}: {line}"
                for line in _diff_packages(o_arches[arch].packages, n_arches[arch].packages)
            )
    for variant in sorted(set(old.npm) | set(new.npm)):
        o_npm = {p.name: p for p in old.npm.get(variant, ())}
        n_npm = {p.name: p for p in new.npm.get(variant, ())}
        for name in sorted(set(o_npm) | set(n_npm)):
            a, b = o_npm.get(name), n_npm.get(name)
            if a == b:
                continue
            if a is None and b is not None:
                changes.append(f"{variant}/npm: + {name} {b.version}")
            elif b is None and a is not None:
                changes.append(f"{variant}/npm: - {name} {a.version}")
            elif a is not None and b is not None:
                changes.append(f"{variant}/npm: ~ {name} {a.version} → {b.version} ({b.integrity})")
    return changes


@dataclass(frozen=True)
class PackageDrift:
    """One package whose locked .deb is not the one the archive offers today."""

    name: str
    locked: str | None  # None: the archive's resolution adds the package
    current: str | None  # None: the archive's resolution no longer has it
    suite: str | None  # where the current version comes from

    def __str__(self) -> str:
        if self.locked is None:
            return f"+{self.name} {self.current}"
        if self.current is None:
            return f"-{self.name} {self.locked}"
        if self.locked == self.current:
            return f"{self.name} {self.locked} (rebuilt: different file)"
        return f"{self.name} {self.locked} → {self.current}"


@dataclass(frozen=True)
class LockDrift:
    """How far a lock is behind a fresh resolution of the same spec (empty: current)."""

    path: str
    packages: tuple[PackageDrift, ...]

    def __bool__(self) -> bool:
        return bool(self.packages)

    def by_suite(self) -> dict[str, list[PackageDrift]]:
        """The drifted packages grouped by the suite their current version comes from."""
        groups: dict[str, list[PackageDrift]] = {}
        for p in self.packages:
            groups.setdefault(p.suite or "removed", []).append(p)
        return dict(sorted(groups.items()))

    def summary(self, *, limit: int = 4) -> str:
        """One line: how many packages are behind and which, security updates first."""
        if not self.packages:
            return f"{self.path} is current with the archive"
        groups = self.by_suite()
        order = sorted(groups, key=lambda s: (not s.endswith("-security"), s))
        parts = []
        for suite in order:
            names = groups[suite]
            shown = ", ".join(str(p) for p in names[:limit])
            more = f", +{len(names) - limit} more" if len(names) > limit else ""
            parts.append(f"{len(names)} from {suite}: {shown}{more}")
        count = len(self.packages)
        noun = "package" if count == 1 else "packages"
        return f"{self.path} is {count} {noun} behind the archive ({'; '.join(parts)})"


def lock_drift(old: Lock, new: Lock, *, path: str) -> LockDrift:
    """The packages whose .deb differs between ``old`` and a fresh ``new`` lock.

    Each package name counts once across variants and architectures (the first
    difference found, in sorted order); the spec digest and npm pins are not compared.
    """
    seen: dict[str, PackageDrift] = {}
    for variant in sorted(set(old.variants) | set(new.variants)):
        o_arches, n_arches = old.variants.get(variant, {}), new.variants.get(variant, {})
        for arch in sorted(set(o_arches) | set(n_arches)):
            o = {p.name: p for p in (o_arches[arch].packages if arch in o_arches else ())}
            n = {p.name: p for p in (n_arches[arch].packages if arch in n_arches else ())}
            for name in sorted(set(o) | set(n)):
                a, b = o.get(name), n.get(name)
                if name in seen or a == b:
                    continue
                seen[name] = PackageDrift(
                    name,
                    a.version if a else None,
                    b.version if b else None,
                    b.suite if b else None,
                )
    return LockDrift(path, tuple(seen[k] for k in sorted(seen)))


def _diff_packages(old: Iterable[LockedPackage], new: Iterable[LockedPackage]) -> list[str]:
    o = {p.name: p for p in old}
    n = {p.name: p for p in new}
    lines = []
    for name in sorted(set(o) | set(n)):
        a, b = o.get(name), n.get(name)
        if a is None and b is not None:
            lines.append(f"+ {name} {b.version} ({b.suite})")
        elif b is None and a is not None:
            lines.append(f"- {name} {a.version}")
        elif a is not None and b is not None and a != b:
            if a.version != b.version:
                lines.append(f"~ {name} {a.version} → {b.version} ({b.suite})")
            else:
                lines.append(f"~ {name} {a.version}: same version, different file (sha256)")
    return lines
