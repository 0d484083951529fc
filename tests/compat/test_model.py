"""The suite's declarations: the shipped ones parse, and bad ones fail naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.compat.model import load_app, load_apps, load_standins
from kiln.errors import InputError

COMPAT = Path(__file__).resolve().parents[2] / "compat"
SERVER = "description: an app\nport: 8000\nrequests:\n  - path: /\n"


def _app(
    tmp_path: Path, declaration: str | None, *, name: str = "demo", dockerfile: bool = True
) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    if dockerfile:
        (directory / "Dockerfile").write_text("FROM python:3.13-slim\n")
    if declaration is not None:
        (directory / "compat.yaml").write_text(declaration)
    return directory


def test_the_shipped_suite_has_the_apps_of_issues_6_and_12() -> None:
    apps = {app.name: app for app in load_apps(COMPAT)}
    assert set(apps) == {
        "debian-slim-tools",
        "django-check",
        "express-npm-ci",
        "fastapi-distroless",
        "flask-gunicorn",
        "java-jar",
        "nginx-port80",
        "nginx-static",
        "node-native-addon",
    }
    assert apps["nginx-port80"].declaration.after is None  # port 80 on both sides
    assert apps["django-check"].declaration.output is not None
    assert apps["nginx-static"].declaration.after is not None
    assert apps["nginx-static"].declaration.after.port == 8080
    assert all(app.dockerfile.is_file() for app in apps.values())


def test_every_official_image_the_apps_name_has_a_stand_in() -> None:
    from kiln.compat.swap import official_refs

    catalog = load_standins(COMPAT / "standins.yaml")
    for app in load_apps(COMPAT):
        for ref in official_refs(app.dockerfile.read_text(), str(app.dockerfile)):
            assert catalog.for_ref(ref) is not None, (app.name, ref)


def test_a_server_declaration_parses_with_defaults(tmp_path: Path) -> None:
    app = load_app(_app(tmp_path, SERVER + "    headers: [Content-Type]\n"))
    (request,) = app.declaration.requests
    assert (request.method, request.status, request.headers) == ("GET", 200, ("content-type",))
    assert app.declaration.timeout == 60


def test_an_app_directory_without_a_dockerfile_is_refused(tmp_path: Path) -> None:
    directory = _app(tmp_path, SERVER, dockerfile=False)
    with pytest.raises(InputError, match="app demo has no Dockerfile") as caught:
        load_app(directory)
    assert caught.value.location is not None
    assert caught.value.location.file.endswith("demo/Dockerfile")


def test_load_apps_finds_an_app_missing_its_dockerfile_and_says_so(tmp_path: Path) -> None:
    _app(tmp_path, SERVER, name="broken", dockerfile=False)
    with pytest.raises(InputError, match="broken has no Dockerfile"):
        load_apps(tmp_path)


def test_a_missing_declaration_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"compat\.yaml does not exist"):
        load_app(_app(tmp_path, None))


@pytest.mark.parametrize(
    ("text", "message", "line", "field"),
    [
        (
            "description: x\nport: 80\nrequests:\n  - path: /\n    colour: red\n",
            "unknown field 'colour'",
            5,
            "requests[0].colour",
        ),
        (
            "description: x\nport: 80\nrequests:\n  - path: relative\n",
            "should match pattern",
            4,
            "requests[0].path",
        ),
        (
            "description: x\nport: 99999\nrequests:\n  - path: /\n",
            "less than or equal to 65535",
            2,
            "port",
        ),
        ("description: x\nport: 80\n", "at least one entry in 'requests'", 1, None),
        (
            "description: x\noutput: {exit-code: 0}\nport: 80\nrequests: [{path: /}]\n",
            "not both",
            1,
            None,
        ),
        (
            "description: x\noutput: {output: '(unclosed'}\n",
            "not a valid regular expression",
            2,
            "output.output",
        ),
        (
            "port: 80\nrequests: [{path: /}]\n",
            "required field 'description' is missing",
            1,
            "description",
        ),
        (
            "description: x\nport: 80\nrequests: [{path: /, headers: ['bad header']}]\n",
            "not an HTTP header name",
            3,
            "requests[0].headers",
        ),
    ],
)
def test_a_malformed_declaration_names_line_and_field(
    tmp_path: Path, text: str, message: str, line: int, field: str | None
) -> None:
    with pytest.raises(InputError, match=message) as caught:
        load_app(_app(tmp_path, text))
    location = caught.value.location
    assert location is not None
    assert location.file.endswith("compat.yaml")
    assert location.line == line
    assert location.field == field


def test_invalid_yaml_is_reported_with_its_position(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid YAML") as caught:
        load_app(_app(tmp_path, "description: x\nport: [80\n"))
    assert caught.value.location is not None
    assert caught.value.location.line is not None


def test_a_declaration_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must be a YAML mapping of fields"):
        load_app(_app(tmp_path, "- just\n- a list\n"))


def test_an_app_directory_name_must_be_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must be lower-case"):
        load_app(_app(tmp_path, SERVER, name="Bad Name"))


def test_asking_for_an_unknown_app_lists_the_known_ones(tmp_path: Path) -> None:
    _app(tmp_path, SERVER, name="one")
    with pytest.raises(InputError, match="no app named two") as caught:
        load_apps(tmp_path, ["two"])
    assert caught.value.hint is not None
    assert "one" in caught.value.hint


def test_standins_refuse_a_registry_host_and_duplicate_refs(tmp_path: Path) -> None:
    base = (
        "standins:\n"
        "  - {name: a, refs: [%s], kiln: python-dev, variant: minbase, packages: [python3]}\n"
    )
    path = tmp_path / "standins.yaml"
    path.write_text(base % "'host.invalid/python:3'")
    with pytest.raises(InputError, match="no registry host") as caught:
        load_standins(path)
    assert caught.value.location is not None
    assert caught.value.location.field == "standins[0].refs"
    path.write_text(
        base % "'python:3'"
        + "  - {name: b, refs: ['python:3'], kiln: python, variant: minbase, packages: [python3]}\n"
    )
    with pytest.raises(InputError, match="claimed by both a and b"):
        load_standins(path)


def test_for_ref_treats_a_missing_tag_as_latest(tmp_path: Path) -> None:
    path = tmp_path / "standins.yaml"
    path.write_text(
        "standins:\n  - {name: n, refs: ['nginx:latest'], kiln: nginx, variant: minbase,"
        " packages: [nginx]}\n"
    )
    catalog = load_standins(path)
    assert catalog.for_ref("nginx") is not None
    assert catalog.for_ref("nginx:1.0") is None
