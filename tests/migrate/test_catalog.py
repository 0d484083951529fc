"""The catalog loader: specs' compatibility sections, versions from their locks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.migrate import SourceReference, catalog_from_specs, load_catalog, migrate
from kiln.spec import load_spec
from migrate.conftest import PREFIX, write_fixture_catalog


def test_loads_specs_and_versions_from_locks(tmp_path: Path) -> None:
    catalog = load_catalog(write_fixture_catalog(tmp_path / "images"))
    (python,) = catalog.images
    assert (python.name, python.version, python.series) == ("python", "3.13.5", "3.13")
    assert python.variants == ("runtime", "dev")
    assert python.replaces == ("python:3.13*", "python:3")
    assert python.runtime_entrypoint == ("/usr/bin/python3.13",)
    assert {"root", "nonroot", "nobody"} <= python.runtime_accounts
    found = catalog.match(SourceReference.parse("python:3.13-slim"))
    assert found is not None
    assert found.pattern == "python:3.13*"


def test_without_a_lock_the_tag_is_latest(tmp_path: Path) -> None:
    directory = write_fixture_catalog(tmp_path / "images")
    (directory / "python.lock.json").unlink()
    catalog = load_catalog(directory)
    assert catalog.images[0].version is None
    result = migrate("FROM python:3.13\nRUN x\n", catalog, PREFIX)
    assert result.migrated == f"FROM {PREFIX}/python:latest-dev\nRUN x\n"
    assert "no version series" in result.rewrites[0].remarks[0]


def test_a_broken_lock_is_an_error(tmp_path: Path) -> None:
    directory = write_fixture_catalog(tmp_path / "images")
    (directory / "python.lock.json").write_text("{not json")
    with pytest.raises(InputError, match=r"python.lock.json:1:2: the lock is not JSON"):
        load_catalog(directory)


def test_two_versions_of_the_version_package_is_an_error(tmp_path: Path) -> None:
    directory = write_fixture_catalog(tmp_path / "images")
    lock_path = directory / "python.lock.json"
    data = json.loads(lock_path.read_text())
    data["variants"]["dev"]["arm64"]["packages"][1]["version"] = "3.13.6-1"
    lock_path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"in several versions: 1:3\.13\.5-2"):
        load_catalog(directory)


def test_spec_notes_without_locks(tmp_path: Path) -> None:
    directory = write_fixture_catalog(tmp_path / "images")
    (directory / "python.lock.json").write_text("{not json")  # not read at all
    catalog = catalog_from_specs([load_spec(directory / "python.yaml")], with_locks=False)
    assert catalog.images[0].notes == ("runtime runs as nonroot (65532)", "a | pipe")


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_catalog_directory_problems(tmp_path: Path, make: str) -> None:
    directory = tmp_path / "images"
    if make == "empty":
        directory.mkdir()
    with pytest.raises(
        InputError, match="does not exist" if make == "missing" else "no image specs"
    ):
        load_catalog(directory)


def test_a_bad_spec_names_its_line(tmp_path: Path) -> None:
    directory = write_fixture_catalog(tmp_path / "images")
    (directory / "bad.yaml").write_text(
        "name: bad\npackages: [x1]\ncompatibility:\n  replaces: ['a b']\n"
    )
    with pytest.raises(InputError) as caught:
        load_catalog(directory)
    assert caught.value.location is not None
    assert caught.value.location.line == 4
