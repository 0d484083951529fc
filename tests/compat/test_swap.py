"""Swapping FROM lines: migrate's rewrites, the stand-ins' fallback, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.compat.model import StandinCatalog, load_standins
from kiln.compat.swap import official_refs, swap_from_lines
from kiln.migrate import Catalog, catalog_from_specs
from kiln.spec import load_spec

PYTHON_SPEC = """\
name: python
description: test python
distro: debian-13
packages: [python3.13-minimal]
entrypoint: [/usr/bin/python3.13]
variants:
  dev:
    packages: [bash]
    run-as: root
compatibility:
  replaces: ["python:3.13*", "distroless/python3*"]
"""
STANDINS = """\
standins:
  - {name: py, refs: ['python:3.13-slim'], kiln: python-dev, variant: minbase, packages: [python3]}
  - {name: ng, refs: ['nginx:1.26'], kiln: nginx, variant: minbase, packages: [nginx]}
"""
DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM python:3.13-slim AS build
RUN pip install --prefix=/install flask
FROM build AS test
RUN python -c 'import flask'
FROM nginx:1.26
COPY --from=build /install /srv
"""


@pytest.fixture
def catalogs(tmp_path: Path) -> tuple[Catalog, StandinCatalog]:
    spec = tmp_path / "python.yaml"
    spec.write_text(PYTHON_SPEC)
    standins = tmp_path / "standins.yaml"
    standins.write_text(STANDINS)
    return catalog_from_specs([load_spec(spec)], with_locks=False), load_standins(standins)


def test_official_refs_leave_out_stage_names_and_repeats() -> None:
    text = DOCKERFILE + "FROM python:3.13-slim\nFROM scratch\n"
    assert official_refs(text) == ("python:3.13-slim", "nginx:1.26")


def test_only_the_from_lines_change(catalogs: tuple[Catalog, StandinCatalog]) -> None:
    catalog, standins = catalogs
    swapped = swap_from_lines(DOCKERFILE, catalog, standins, prefix="localhost/kiln")
    before = DOCKERFILE.splitlines()
    after = swapped.text.splitlines()
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert changed == [1, 5]
    assert after[1] == "FROM localhost/kiln/python:latest-dev AS build"


def test_migrate_decides_and_the_stand_in_fills_what_it_cannot_map(
    catalogs: tuple[Catalog, StandinCatalog],
) -> None:
    catalog, standins = catalogs
    swaps = swap_from_lines(DOCKERFILE, catalog, standins).swaps
    first, stage, nginx = swaps
    assert (first.how, first.layout) == ("migrate", "python-dev")
    assert (stage.replacement, stage.how) == (None, "stage")
    assert nginx.replacement == "localhost/kiln/nginx:latest"
    assert nginx.layout == "nginx"
    assert nginx.how.startswith("standins.yaml; migrate: ")
    assert "nginx:1.26 -> localhost/kiln/nginx:latest (standins.yaml" in nginx.describe()


def test_a_base_nobody_maps_is_reported_unmapped(catalogs: tuple[Catalog, StandinCatalog]) -> None:
    catalog, standins = catalogs
    swapped = swap_from_lines('FROM redis:7\nCMD ["redis-server"]\n', catalog, standins)
    (unmapped,) = swapped.unmapped
    assert unmapped.original == "redis:7"
    assert unmapped.replacement is None
    assert swapped.text.startswith("FROM redis:7\n")
    assert "kept" in unmapped.describe()


COMPAT = Path(__file__).resolve().parents[2] / "compat"


@pytest.mark.parametrize(
    ("app", "layouts"),
    [
        # the site's config listens on 80: migrate reads it from the build context
        ("nginx-port80", ["nginx-dev"]),
        # only static files: the runtime on 8080, as before
        ("nginx-static", ["nginx"]),
        ("node-native-addon", ["node-dev", "node-dev"]),
        ("debian-slim-tools", ["base-dev"]),
    ],
)
def test_the_shipped_apps_swap_to_what_they_need(app: str, layouts: list[str]) -> None:
    from kiln.compat.model import load_app
    from kiln.migrate import DirectoryContext, load_catalog

    loaded = load_app(COMPAT / app)
    swapped = swap_from_lines(
        loaded.dockerfile.read_text(),
        load_catalog(COMPAT.parent / "images"),
        load_standins(COMPAT / "standins.yaml"),
        path=str(loaded.dockerfile),
        context=DirectoryContext(loaded.directory),
    )
    assert [swap.layout for swap in swapped.swaps] == layouts
    assert all(swap.how == "migrate" for swap in swapped.swaps)
