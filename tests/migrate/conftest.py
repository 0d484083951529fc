"""A fixture catalog standing in for images/: python, node, nginx and static as the
compatibility sections declare them (versions as their locks would give)."""

from __future__ import annotations

import pytest

from kiln.migrate import Catalog, CatalogImage

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
