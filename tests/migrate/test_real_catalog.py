"""kiln migrate against the real catalog in images/: every declared replacement maps to
its own image, and a small two-stage Dockerfile migrates to the right tags."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from kiln.migrate import (
    Catalog,
    CatalogImage,
    ReferenceSyntaxError,
    Rewrite,
    SourceReference,
    load_catalog,
    migrate,
)

IMAGES = Path(__file__).resolve().parents[2] / "images"
PREFIX = "registry.example/kiln"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(IMAGES)


def _example(image: CatalogImage) -> str | None:
    """A concrete reference one of the image's patterns matches (stars filled in)."""
    for pattern in image.replaces:
        if "[" in pattern:
            continue
        repository, _, tag = pattern.partition(":")
        text = repository.replace("*", "-x").replace("?", "x")
        if tag:
            text += ":" + tag.replace("*", "").replace("?", "0").rstrip(".-") or "latest"
        try:
            ref = SourceReference.parse(text)
        except ReferenceSyntaxError:
            continue
        if image.matches(ref):
            return text
    return None


def test_the_catalog_declares_replacements(catalog: Catalog) -> None:
    declaring = [i.name for i in catalog.images if i.replaces]
    assert {"base", "cc", "redis", "static"} <= set(declaring)
    for image in catalog.images:
        for pattern in image.replaces:
            repository, _, tag = pattern.partition(":")
            assert repository == repository.lower(), pattern
            assert fnmatch.translate(tag)  # a usable pattern


def test_every_image_wins_for_its_own_examples(catalog: Catalog) -> None:
    for image in catalog.images:
        if not image.replaces:
            continue
        example = _example(image)
        assert example is not None, f"{image.name}: no pattern yields a usable example"
        found = catalog.match(SourceReference.parse(example))
        assert found is not None
        assert found.image.name == image.name, f"{example} maps to {found.image.name}"


def test_two_stage_dockerfile_for_each_image(catalog: Catalog) -> None:
    for image in catalog.images:
        example = _example(image)
        if example is None:
            continue
        text = (
            f"FROM {example} AS build\nRUN true\n"
            f'FROM {example}\nCOPY --from=build /out /out\nENTRYPOINT ["/out/app"]\n'
        )
        result = migrate(text, catalog, PREFIX)
        build, final = result.outcomes
        assert isinstance(build, Rewrite)
        assert isinstance(final, Rewrite)
        ref = SourceReference.parse(example)
        series = image.series if ref.tag and ref.tag[0].isdigit() and image.series else None
        tag = series or "latest"
        assert build.replacement == f"{PREFIX}/{image.name}:{tag}-dev", example
        assert final.replacement == f"{PREFIX}/{image.name}:{tag}", example
        assert (build.variant, final.variant) == ("dev", "runtime")
