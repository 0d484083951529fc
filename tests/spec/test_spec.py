"""Image spec parsing: good specs, and every kind of bad spec with its position."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from kiln.cli.main import main
from kiln.spec import SpecError, load_spec, lock_path_for, parse_spec

ROOT = Path(__file__).resolve().parents[2]


def _parse(text: str) -> object:
    return parse_spec(text.encode(), Path("images/x.yaml"))


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        _parse(text)
    return info.value


def test_catalog_specs_parse() -> None:
    specs = sorted((ROOT / "images").glob("*.yaml"))
    assert specs, "the catalog has no specs"
    for path in specs:
        loaded = load_spec(path)
        assert loaded.spec.name == path.stem
        assert len(loaded.sha256) == 64


def test_python_spec_defaults() -> None:
    spec = load_spec(ROOT / "images/python.yaml").spec
    assert spec.distro == "debian-13"
    assert spec.archs == ("amd64", "arm64")
    assert spec.accounts.run_as == "nonroot"
    assert "python3.13-minimal" in spec.packages
    assert spec.variant_names() == ("runtime", "dev")
    assert spec.variant("dev").run_as == "root"
    # dev keeps a consistent dpkg database: it does not inherit the runtime's excludes
    assert spec.exclude_for("runtime") == ("openssl",)
    assert spec.exclude_for("dev") == ()
    assert set(spec.packages) < set(spec.packages_for("dev"))


def test_unknown_field_points_at_line_and_suggests() -> None:
    err = _error("name: x\npackages: [a1]\npakages: [b]\n")
    assert err.location is not None
    assert (err.location.line, err.location.column) == (3, 1)
    assert "unknown field 'pakages' (did you mean packages?)" in err.message


def test_bad_package_name_points_at_item() -> None:
    err = _error("name: x\npackages:\n  - good\n  - Bad_Name\n")
    assert err.location is not None
    assert (err.location.line, err.location.column, err.location.field) == (4, 5, "packages[1]")
    assert "'Bad_Name' is not a valid Debian package name" in err.message


def test_nested_unknown_field_suggests_nested_name() -> None:
    err = _error(
        "name: x\npackages: [aa]\naccounts:\n  users:\n    - {name: app, uid: 1000, hom: /x}\n"
    )
    assert err.location is not None
    assert err.location.line == 5
    assert "did you mean home?" in err.message


def test_missing_required_field() -> None:
    err = _error("name: x\n")
    assert "required field 'packages' is missing" in err.message


def test_invalid_yaml_has_position() -> None:
    err = _error("name: x\npackages: [a, b\n")
    assert err.location is not None
    assert err.location.line is not None
    assert "invalid YAML" in err.message


def test_duplicate_key_is_refused() -> None:
    err = _error("name: x\npackages: [aa]\nname: y\n")
    assert "invalid YAML" in err.message
    assert err.location is not None
    assert err.location.line == 3


def test_not_a_mapping() -> None:
    assert "must be a YAML mapping" in _error("- a\n- b\n").message


def test_not_utf8() -> None:
    with pytest.raises(SpecError, match="not UTF-8"):
        parse_spec(b"name: \xff\n", Path("x.yaml"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\npackages: [aa, aa]\n", "listed more than once: aa"),
        ("name: x\npackages: [aa]\nexclude: [aa]\n", "both listed and excluded: aa"),
        ("name: x\npackages: [aa]\naccounts: {run-as: ghost}\n", "user 'ghost' is not defined"),
        ("name: x\npackages: [aa]\narchs: [amd64, amd64]\n", "more than once"),
        ("name: x\npackages: [aa]\narchs: [s390x]\n", "amd64"),
        ("name: X!\npackages: [aa]\n", "not a valid image name"),
        ("name: x\npackages: [aa]\nworkdir: rel\n", "must be absolute"),
        ("name: x\npackages: [aa]\npaths: [{path: /a/../b, type: directory}]\n", "'..'"),
        ("name: x\npackages: [aa]\npaths: [{path: /a, type: symlink}]\n", "needs a target"),
        ("name: x\npackages: [aa]\npaths: [{path: /a, type: file, mode: '999'}]\n", "octal"),
        ("name: x\npackages: [aa]\ntests: [{name: t, command: 'echo hi'}]\n", "without a shell"),
        ("name: x\npackages: [aa]\ntests: [{name: t, command: [a], stdout: '(['}]\n", "regular"),
        ("name: x\npackages: [aa]\nversion-package: bb\n", "not in packages"),
    ],
)
def test_invalid_specs(text: str, expected: str) -> None:
    err = _error(text)
    assert expected in err.diagnostics()


def test_modes_are_octal() -> None:
    loaded = parse_spec(
        b"name: x\npackages: [aa]\npaths: [{path: /a, type: file, mode: '0640', content: hi}]\n",
        Path("x.yaml"),
    )
    assert loaded.spec.paths[0].mode == 0o640


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec("/nonexistent/spec.yaml")


def test_lock_path() -> None:
    assert lock_path_for(Path("images/python.yaml")) == Path("images/python.lock.json")


def test_schema_command_validates_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    from ruamel.yaml import YAML

    for path in sorted((ROOT / "images").glob("*.yaml")):
        jsonschema.validate(YAML(typ="safe").load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "packages": ["aa"], "bogus": 1}, schema)


def test_ports_and_stop_signal_are_normalised_and_variants_replace_them() -> None:
    spec = parse_spec(
        b"name: x\npackages: [aa]\nports: ['8080', 53/udp]\nstop-signal: quit\n"
        b"variants:\n  dev: {ports: ['80'], stop-signal: SIGTERM}\n",
        Path("images/x.yaml"),
    ).spec
    assert spec.ports == ("8080/tcp", "53/udp")
    assert spec.stop_signal == "SIGQUIT"
    dev = spec.variants["dev"]
    assert (dev.ports, dev.stop_signal) == (("80/tcp",), "SIGTERM")


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("ports: ['0']", 3, "'0' is not a port"),
        ("ports: [80/icmp]", 3, "'80/icmp' is not a port"),
        ("ports: ['70000']", 3, "'70000' is not a port"),
        ("stop-signal: SIGNOPE", 3, "'SIGNOPE' is not a signal name"),
        ("stop-signal: RTMIN", 3, "'RTMIN' is not a signal name"),
    ],
)
def test_bad_ports_and_signals_name_the_field(text: str, line: int, expected: str) -> None:
    message = _error(f"name: x\npackages: [aa]\n{text}\n").diagnostics()
    assert expected in message
    assert f"images/x.yaml:{line}:" in message
