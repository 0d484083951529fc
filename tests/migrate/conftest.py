"""A fixture catalog standing in for images/: python, node, nginx and static as the
compatibility sections declare them (versions as their locks would give), and a spec
folder with a lock for the loader and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.migrate import Catalog, CatalogImage
from kiln.resolve.lockfile import ArchLock, Lock, LockedPackage
from kiln.spec import load_spec

PREFIX = "registry.example/kiln"


def image(
    name: str,
    version: str | None,
    replaces: tuple[str, ...],
    *,
    entrypoint: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
    variants: tuple[str, ...] = ("runtime", "dev"),
    accounts: frozenset[str] = frozenset({"root", "nobody", "nonroot", "nogroup"}),
) -> CatalogImage:
    return CatalogImage(
        name=name,
        source=f"images/{name}.yaml",
        version=version,
        variants=variants,
        replaces=replaces,
        notes=notes,
        runtime_entrypoint=entrypoint,
        runtime_accounts=accounts,
    )


PYTHON = image(
    "python",
    "3.13.5",
    ("python:3.13*", "python:3", "python:latest", "distroless/python3*"),
    entrypoint=("/usr/bin/python3.13",),
    notes=("runtime runs as nonroot (65532), has no shell: RUN steps need the -dev variant",),
)
NODE = image(
    "node",
    "20.19.2",
    ("node:20*", "node:lts*"),
    entrypoint=("/usr/bin/node",),
    accounts=frozenset({"root", "nobody", "nonroot", "nogroup", "node"}),
)
NGINX = image("nginx", "1.26.3", ("nginx",), entrypoint=("/usr/sbin/nginx",))
STATIC = image("static", None, ("distroless/static*",))


@pytest.fixture
def catalog() -> Catalog:
    return Catalog((NGINX, NODE, PYTHON, STATIC))


FIXTURE_SPEC = """\
name: {name}
version-package: {package}
packages: [base-files, {package}]
entrypoint: [{entrypoint}]
variants:
  dev:
    packages: [bash]
    run-as: root
    entrypoint: []
compatibility:
  replaces: [{replaces}]
  notes:
    - "runtime runs as nonroot (65532)"
    - "a | pipe"
"""


def write_fixture_catalog(directory: Path, *, version: str = "1:3.13.5-2+deb13u5") -> Path:
    """``directory`` with a python spec and its lock (``version`` of python3.13-minimal)."""
    directory.mkdir(parents=True, exist_ok=True)
    spec_path = directory / "python.yaml"
    spec_path.write_text(
        FIXTURE_SPEC.format(
            name="python",
            package="python3.13-minimal",
            entrypoint="/usr/bin/python3.13",
            replaces='"python:3.13*", "python:3"',
        )
    )
    loaded = load_spec(spec_path)

    def pkg(name: str, ver: str, arch: str) -> LockedPackage:
        return LockedPackage(
            name=name,
            version=ver,
            arch=arch,
            source=name,
            source_version=ver,
            filename=f"pool/main/x/{name}_{ver}_{arch}.deb",
            size=1,
            sha256="0" * 64,
            suite="trixie",
        )

    arches = {
        arch: ArchLock(
            packages=(pkg("base-files", "13.8", arch), pkg("python3.13-minimal", version, arch))
        )
        for arch in ("amd64", "arm64")
    }
    lock = Lock(
        image="python",
        distro="debian-13",
        spec_sha256=loaded.sha256,
        releases=(),
        variants={"runtime": arches, "dev": arches},
    )
    loaded.lock_path.write_bytes(lock.to_json())
    return directory
