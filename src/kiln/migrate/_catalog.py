"""The catalog as ``kiln migrate`` sees it: which official images each kiln image replaces.

Built from the image specs' ``compatibility`` sections (``replaces`` patterns and
``notes``) and, for tags, each spec's lock: the ``version-package``'s upstream version
gives the ``major.minor`` series that ``kiln publish`` tags (see
``kiln.pipeline.publish.tags_for``).

Which catalog: ``--catalog DIR``, else ``$KILN_CATALOG``, else the one kiln was
installed with (``kiln/catalog``: package data in a wheel, a link to the checkout's
``images/`` in a source tree), so ``kiln migrate`` works from any directory.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.debian.version import parse_version
from kiln.errors import InputError, Location
from kiln.migrate._reference import SourceReference, version_of
from kiln.resolve.lockfile import Lock, LockError, read_lock
from kiln.spec import ImageSpec, LoadedSpec, load_spec

#: Accounts every kiln image has (kiln.assemble.steps writes them into /etc/passwd, group).
_BUILTIN_ACCOUNTS = ("root", "nobody", "nonroot", "nogroup")


@dataclass(frozen=True)
class CatalogImage:
    """One kiln image as a replacement: its tags, variants, patterns and differences."""

    name: str
    source: str  # the spec file, for messages
    version: str | None  # upstream version of the version-package (``3.13.5``)
    variants: tuple[str, ...]  # ``runtime`` and the declared ones (``dev``)
    replaces: tuple[str, ...]
    notes: tuple[str, ...]
    runtime_entrypoint: tuple[str, ...]
    runtime_accounts: frozenset[str]  # user and group names the runtime variant knows
    version_package: str | None = None  # the package whose version tags the image

    @classmethod
    def from_spec(cls, spec: ImageSpec, *, source: str, lock: Lock | None) -> CatalogImage:
        accounts = set(_BUILTIN_ACCOUNTS) | {u.name for u in spec.accounts.users}
        accounts |= {g.name for g in spec.accounts.groups}
        return cls(
            name=spec.name,
            source=source,
            version=_locked_version(spec, lock),
            variants=spec.variant_names(),
            replaces=spec.compatibility.replaces,
            notes=spec.compatibility.notes,
            runtime_entrypoint=spec.entrypoint,
            runtime_accounts=frozenset(accounts),
            version_package=spec.version_package,
        )

    @property
    def series(self) -> str | None:
        """``major.minor`` of the version (the tag series users pin), if there is one."""
        numbers = version_of(self.version)
        if not numbers:
            return None
        return ".".join(str(n) for n in numbers[:2])

    def matches(self, ref: SourceReference) -> str | None:
        """The first ``replaces`` pattern that ``ref`` matches, if any."""
        for pattern in self.replaces:
            repository, _, tag = pattern.partition(":")
            if not fnmatch.fnmatchcase(ref.repository, repository):
                continue
            if not tag:
                return pattern
            if ref.tag is None and ref.digest is not None:
                continue  # a bare digest says nothing about the version a tag pattern wants
            if fnmatch.fnmatchcase(ref.tag or "latest", tag):
                return pattern
        return None

    def knows_repository(self, ref: SourceReference) -> bool:
        """Whether some pattern names ``ref``'s repository (whatever the tag)."""
        return any(fnmatch.fnmatchcase(ref.repository, p.partition(":")[0]) for p in self.replaces)


@dataclass(frozen=True)
class CatalogMatch:
    image: CatalogImage
    pattern: str


@dataclass(frozen=True)
class Catalog:
    """The kiln images ``kiln migrate`` may map to, in a fixed order (by name)."""

    images: tuple[CatalogImage, ...]

    def match(self, ref: SourceReference) -> CatalogMatch | None:
        """The image replacing ``ref``; patterns are tried image by image, in name order."""
        for image in self.images:
            pattern = image.matches(ref)
            if pattern is not None:
                return CatalogMatch(image, pattern)
        return None

    def same_repository(self, ref: SourceReference) -> tuple[CatalogImage, ...]:
        """Images that replace some tag of ``ref``'s repository (for "no image for tag")."""
        return tuple(i for i in self.images if i.knows_repository(ref))

    def get(self, name: str) -> CatalogImage:
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)


def catalog_from_specs(specs: Iterable[LoadedSpec], *, with_locks: bool = True) -> Catalog:
    """A catalog from loaded specs; their locks (if present) give the version tags."""
    images = []
    for loaded in specs:
        lock = None
        if with_locks and loaded.spec.version_package:
            try:
                lock = read_lock(loaded.lock_path)
            except LockError as exc:
                if loaded.lock_path.exists():
                    raise
                del exc  # no lock yet: the image is tagged "latest" only
        images.append(CatalogImage.from_spec(loaded.spec, source=str(loaded.path), lock=lock))
    return Catalog(tuple(sorted(images, key=lambda i: i.name)))


#: where the catalog comes from when ``--catalog`` is not given
CATALOG_ENV = "KILN_CATALOG"


def installed_catalog_dir() -> Path:
    """The catalog shipped with kiln: the ``catalog`` folder of the ``kiln`` package."""
    import kiln  # noqa: PLC0415 - the package itself, only for its location

    return Path(kiln.__file__).resolve().parent / "catalog"


def default_catalog_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$KILN_CATALOG`` if set, else the catalog kiln was installed with."""
    configured = environ.get(CATALOG_ENV, "").strip()
    return Path(configured) if configured else installed_catalog_dir()


def spec_paths(directory: Path) -> tuple[Path, ...]:
    """The spec files of a catalog directory (``*.yaml``), sorted."""
    if not directory.is_dir():
        raise InputError(
            f"catalog directory {directory} does not exist",
            hint=f"pass --catalog DIR or set {CATALOG_ENV}: the folder holding the image specs",
        )
    paths = tuple(sorted(directory.glob("*.yaml")))
    if not paths:
        raise InputError(f"catalog directory {directory} holds no image specs (*.yaml)")
    return paths


def load_catalog(directory: Path) -> Catalog:
    """Load every spec (and lock) of a catalog directory such as ``images/``."""
    return catalog_from_specs(load_spec(p) for p in spec_paths(directory))


def _locked_version(spec: ImageSpec, lock: Lock | None) -> str | None:
    if lock is None or not spec.version_package:
        return None
    versions = {p.version for p in lock.all_packages() if p.name == spec.version_package}
    if len(versions) > 1:
        raise InputError(
            f"the lock of {spec.name} holds {spec.version_package} in several versions: "
            + ", ".join(sorted(versions)),
            Location(spec.name),
            hint=f"relock it: kiln lock images/{spec.name}.yaml",
        )
    if not versions:
        return None
    return str(parse_version(versions.pop()).upstream_version)
