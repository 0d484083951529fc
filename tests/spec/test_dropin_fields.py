"""Spec fields for drop-in images: wheels and path-exclude, their mapping and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.debian.sources import Mirrors
from kiln.pipeline.build import apt_sources_for, assembly_input
from kiln.spec import ImageSpec, SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]

BASE = "name: x\npackages: [python3.13-minimal]\n"


def _parse(text: str) -> ImageSpec:
    return parse_spec(text.encode(), Path("images/x.yaml")).spec


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        _parse(text)
    return info.value


def test_wheels_and_path_exclude_merge_runtime_then_variant() -> None:
    spec = _parse(
        BASE
        + "path-exclude: [/usr/lib/python3*/EXTERNALLY-MANAGED]\n"
        + "variants:\n  dev:\n"
        + "    path-exclude: [/usr/share/doc/*]\n"
        + "    wheels:\n"
        + "      - wheel: /usr/share/python-wheels/pip-*.whl\n"
        + "        interpreter: /usr/local/bin/python3.13\n"
    )
    assert spec.path_exclude_for("runtime") == ("/usr/lib/python3*/EXTERNALLY-MANAGED",)
    assert spec.path_exclude_for("dev") == (
        "/usr/lib/python3*/EXTERNALLY-MANAGED",
        "/usr/share/doc/*",
    )
    assert spec.wheels_for("runtime") == ()
    (wheel,) = spec.wheels_for("dev")
    assert wheel.prefix == "/usr/local"


def test_assembly_input_carries_wheels_excludes_and_apt_sources() -> None:
    spec = load_spec(ROOT / "images/python.yaml").spec
    mirrors = Mirrors(debian="http://mirror.invalid/debian", security="http://mirror.invalid/sec")
    dev = assembly_input(
        spec, variant="dev", arch="amd64", packages=(), source_date_epoch=1, mirrors=mirrors
    )
    assert [w.interpreter for w in dev.wheels] == ["/usr/local/bin/python3.13"]
    assert "/usr/lib/python3*/EXTERNALLY-MANAGED" in dev.path_excludes
    assert [(s.uri, s.suites) for s in dev.apt_sources] == [
        ("http://mirror.invalid/debian", ("trixie", "trixie-updates")),
        ("http://mirror.invalid/sec", ("trixie-security",)),
    ]
    runtime = assembly_input(
        spec, variant="runtime", arch="amd64", packages=(), source_date_epoch=1
    )
    assert runtime.wheels == ()
    assert runtime.apt_sources == ()  # no mirrors given: no sources
    assert apt_sources_for(spec, None) == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("path-exclude: [usr/lib/x]\n", "must be absolute"),
        ("path-exclude: ['/*']\n", "must start with a fixed directory"),
        ("path-exclude: ['/u*/lib']\n", "must start with a fixed directory"),
        ("path-exclude: [/usr/../etc/shadow]\n", "must not contain '..'"),
        ("path-exclude: ['/usr/a b']\n", "whitespace or control characters"),
        ('path-exclude: ["/usr/a\\nb"]\n', "whitespace or control characters"),
        (
            "wheels: [{wheel: /x/pip.tar.gz, interpreter: /usr/bin/python3.13}]\n",
            "must name a .whl",
        ),
        ("wheels: [{wheel: pip.whl, interpreter: /usr/bin/python3.13}]\n", "must be absolute"),
        ("wheels: [{wheel: /x/pip.whl, interpreter: python3}]\n", "must be absolute"),
        ("wheels: [{wheel: /x/pip.whl, interpreter: '/usr/bin/py*'}]\n", "not a glob"),
        ("wheels: [{wheel: /x/pip.whl, interpreter: '/usr/bin/python -I'}]\n", "whitespace"),
        ("wheels: [{wheel: /x/pip.whl, interpreter: /usr/bin/python3, prefix: /a/../b}]\n", "'..'"),
        ("wheels: [{wheel: /x/pip.whl}]\n", "interpreter"),
        ("wheels: [{wheel: /x/pip.whl, interpreter: /usr/bin/python3, target: /x}]\n", "target"),
    ],
)
def test_bad_drop_in_fields(text: str, expected: str) -> None:
    err = _error(BASE + text)
    assert expected in str(err)
    assert err.location is not None
