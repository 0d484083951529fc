"""The spec's npm field: exact name@version pins, per variant."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kiln.spec.model import ImageSpec, split_npm_ref


def _spec(**fields: object) -> ImageSpec:
    return ImageSpec.model_validate({"name": "demo", "packages": ["base-files"], **fields})


def test_variants_add_to_and_override_the_runtime_pins() -> None:
    spec = _spec(
        npm=["left-pad@1.3.0"],
        variants={"dev": {"npm": ["npm@10.9.2", "@yarnpkg/cli@4.0.0", "left-pad@1.3.1"]}},
    )
    assert spec.npm_for("runtime") == (("left-pad", "1.3.0"),)
    assert spec.npm_for("dev") == (
        ("@yarnpkg/cli", "4.0.0"),
        ("left-pad", "1.3.1"),
        ("npm", "10.9.2"),
    )


def test_split_keeps_the_scope() -> None:
    assert split_npm_ref("@scope/pkg@1.0.0-rc.1") == ("@scope/pkg", "1.0.0-rc.1")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("npm", "is not name@version"),
        ("@scope/pkg", "is not name@version"),
        ("npm@^10", "is not an exact version"),
        ("npm@latest", "is not an exact version"),
        ("npm@10", "is not an exact version"),
        ("NPM@1.0.0", "not a valid npm package name"),
        ("../evil@1.0.0", "not a valid npm package name"),
        ("a/b@1.0.0", "not a valid npm package name"),
        ("@1.0.0", "is not name@version"),
    ],
)
def test_bad_pins_are_refused_naming_the_value(ref: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(npm=[ref])


def test_a_package_pinned_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="npm package listed more than once: npm"):
        _spec(variants={"dev": {"npm": ["npm@10.9.2", "npm@10.9.3"]}})
