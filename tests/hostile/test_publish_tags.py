"""Tags from Debian versions: every catalog image gets valid OCI tags (issue 12.1).

``20.19.2+dfsg`` (node) used to become the tag ``20.19.2+dfsg``, which no registry
accepts, and publishing stopped there. The full version stays in the annotations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kiln.errors import InputError, KilnError, Location
from kiln.pipeline.build import upstream_version
from kiln.pipeline.tags import image_tag, tags_for
from kiln.registry import Reference
from kiln.registry._reference import validate_tag

CATALOG = Path(__file__).parents[2] / "images"
WHERE = Location("images/x.yaml", field="version-package")


def _catalog_versions() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(image, version-package, its locked Debian version, variants) for every spec."""
    found = []
    for path in sorted(CATALOG.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        package = spec.get("version-package")
        if not package:
            continue
        lock = json.loads(path.with_name(f"{path.stem}.lock.json").read_text())
        versions = set(_versions_of(lock, package))
        assert len(versions) == 1, (path, versions)
        variants = ("runtime", *sorted(spec.get("variants") or {}))
        found.append((spec["name"], package, versions.pop(), variants))
    return found


def _versions_of(document: object, package: str) -> list[str]:
    if isinstance(document, dict):
        own = [str(document["version"])] if document.get("name") == package else []
        return own + [v for value in document.values() for v in _versions_of(value, package)]
    if isinstance(document, list):
        return [v for value in document for v in _versions_of(value, package)]
    return []


def test_the_catalog_has_the_versions_that_broke_publishing() -> None:
    versions = {name: version for name, _, version, _ in _catalog_versions()}
    assert "+" in upstream_version(versions["node"])  # 20.19.2+dfsg
    assert "+" in upstream_version(versions["java"])  # 21.0.13.1+2


@pytest.mark.parametrize(
    ("image", "package", "version", "variants"),
    _catalog_versions(),
    ids=[row[0] for row in _catalog_versions()],
)
def test_every_catalog_image_gets_valid_tags(
    image: str, package: str, version: str, variants: tuple[str, ...]
) -> None:
    upstream = upstream_version(version)
    for variant in variants:
        tag = image_tag(upstream, variant, where=WHERE)
        for one in tags_for(tag, variant):
            validate_tag(one)
            assert Reference.parse(f"127.0.0.1:5000/kiln/{image}:{one}").tag == one
        published = tags_for(tag, variant)
        suffix = "" if variant == "runtime" else f"-{variant}"
        assert published[-1] == f"latest{suffix}"
        # the major.minor series migrate maps to (README: node:20.19-dev)
        major_minor = ".".join(upstream.split(".")[:2])
        if major_minor.replace(".", "").isdigit():
            assert f"{major_minor}{suffix}" in published


@pytest.mark.parametrize(
    ("debian_version", "variant", "expected"),
    [
        ("20.19.2+dfsg-1+deb13u3", "runtime", "20.19.2_dfsg"),
        ("20.19.2+dfsg-1+deb13u3", "dev", "20.19.2_dfsg-dev"),
        ("21.0.13.1+2-1~deb13u1", "runtime", "21.0.13.1_2"),
        ("1:2.3~rc1+dfsg-4", "runtime", "2.3-rc1_dfsg"),
        ("1:2.3~rc1+dfsg-4", "dev", "2.3-rc1_dfsg-dev"),
        ("5:8.0.2-3+deb13u3", "runtime", "8.0.2"),
        ("2.41-12+deb13u5", "runtime", "2.41"),
        ("3.13.5-2+deb13u5", "dev", "3.13.5-dev"),
        ("14.2.0-19", "runtime", "14.2.0"),
        ("1.0", "runtime", "1.0"),
        ("", "runtime", "latest"),
        ("", "dev", "latest-dev"),
    ],
)
def test_debian_version_forms(debian_version: str, variant: str, expected: str) -> None:
    upstream = upstream_version(debian_version) if debian_version else ""
    assert image_tag(upstream, variant, where=WHERE) == expected


def test_series_of_a_version_with_plus() -> None:
    assert tags_for("20.19.2_dfsg-dev", "dev") == ("20.19.2_dfsg-dev", "20.19-dev", "latest-dev")
    assert tags_for("2.3-rc1_dfsg", "runtime") == ("2.3-rc1_dfsg", "2.3", "latest")


@pytest.mark.parametrize(
    "version",
    [".1", "-1", "1" * 130, "1.0/../x", "1.0:2", "1 0", "1.0\n"],
    ids=["dot", "dash", "too-long", "slash", "colon", "space", "newline"],
)
def test_a_version_that_cannot_be_a_tag_names_spec_and_field(version: str) -> None:
    with pytest.raises(InputError) as caught:
        image_tag(version, "runtime", where=WHERE)
    assert str(caught.value).startswith("images/x.yaml: version-package: version ")
    assert repr(version) in str(caught.value)


@given(st.text(max_size=140), st.sampled_from(["runtime", "dev"]))
def test_any_version_gives_a_valid_tag_or_a_kiln_error(version: str, variant: str) -> None:
    try:
        tag = image_tag(version, variant, where=WHERE)
    except KilnError:
        return
    validate_tag(tag)
    for one in tags_for(tag, variant):
        validate_tag(one)
