"""The unified diff (which patch applies), the notes table and the README block."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.migrate import (
    README_BEGIN,
    README_END,
    Catalog,
    migrate,
    notes_markdown,
    notes_text,
    splice_readme,
    unified_diff,
)
from migrate.conftest import PREFIX, PYTHON, image

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(
    "source",
    [
        (GOLDEN / "multi-stage.Dockerfile").read_text(),
        "FROM python:3.13-slim\r\nRUN x\r\n",
        "FROM python:3.13-slim\nRUN a\fb\x0bc\nCOPY x y",  # no final newline, odd whitespace
    ],
)
def test_patch_applies_the_diff(tmp_path: Path, catalog: Catalog, source: str) -> None:
    (tmp_path / "Dockerfile").write_bytes(source.encode())
    result = migrate(source, catalog, PREFIX, path="Dockerfile")
    diff = unified_diff(result)
    assert diff.startswith("--- a/Dockerfile\n+++ b/Dockerfile\n@@ ")
    subprocess.run(
        ["patch", "-p1", "--quiet", "--binary"],
        input=diff.encode(),
        cwd=tmp_path,
        check=True,
    )
    assert (tmp_path / "Dockerfile").read_bytes() == result.migrated.encode()


def test_no_diff_when_nothing_changes(catalog: Catalog) -> None:
    assert unified_diff(migrate("FROM ubuntu:24.04\n", catalog, PREFIX)) == ""


def test_absolute_paths_are_not_prefixed(catalog: Catalog) -> None:
    result = migrate("FROM python:3\nRUN x\n", catalog, PREFIX, path="/src/Dockerfile")
    assert unified_diff(result).startswith("--- /src/Dockerfile\n+++ /src/Dockerfile\n")


def test_notes_text_and_markdown() -> None:
    piped = image("odd", None, ("odd:1|2",), notes=("a | b", "line\nbreak"))
    bare = image("bare", None, ())
    assert list(notes_text((PYTHON, bare))) == [
        "python (images/python.yaml)",
        "  replaces: python:3.13*, python:3, python:latest, distroless/python3*",
        "  - runtime runs as nonroot (65532), has no shell: RUN steps need the -dev variant",
        "bare (images/bare.yaml)",
        "  replaces: (nothing declared)",
    ]
    assert notes_markdown((piped, bare)).splitlines() == [
        "| kiln image | replaces | differences from the images it replaces |",
        "| --- | --- | --- |",
        "| odd | `odd:1\\|2` | a \\| b<br>line break |",
        "| bare | – | – |",
    ]


def test_splice_readme() -> None:
    readme = f"# x\n\n{README_BEGIN}\nold table\n{README_END}\nrest\n"
    assert (
        splice_readme(readme, "| new |\n")
        == f"# x\n\n{README_BEGIN}\n| new |\n{README_END}\nrest\n"
    )
    with pytest.raises(InputError, match="has no notes block"):
        splice_readme("# no markers\n", "| new |\n", path="docs/README.md")
