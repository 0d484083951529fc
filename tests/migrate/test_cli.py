"""`kiln migrate` and `kiln spec notes` end to end: streams, exit codes, --write."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.migrate import README_BEGIN, README_END
from migrate.conftest import PREFIX, write_fixture_catalog

MIGRATABLE = (
    "FROM python:3.13-slim AS build\n"
    "RUN pip install x\n"
    "FROM python:3\n"
    "COPY --from=build /usr/local /usr/local\n"
    'ENTRYPOINT ["python3", "app.py"]\n'
)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return write_fixture_catalog(tmp_path / "images")


def _run(args: list[str], catalog_dir: Path) -> int:
    return main(["migrate", *args, "--catalog", str(catalog_dir)])


def test_dry_run_prints_a_diff_and_leaves_the_file(
    tmp_path: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(MIGRATABLE)
    assert _run([str(path), "--registry", PREFIX], catalog_dir) == 0
    out, err = capsys.readouterr()
    assert path.read_text() == MIGRATABLE
    assert f"-FROM python:3.13-slim AS build\n+FROM {PREFIX}/python:3.13-dev AS build\n" in out
    assert f"-FROM python:3\n+FROM {PREFIX}/python:3.13\n" in out
    assert f"{path}:1: python:3.13-slim -> {PREFIX}/python:3.13-dev\n" in err
    assert f"{path}:3: python:3 -> {PREFIX}/python:3.13\n" in err
    assert "  - runtime runs as nonroot (65532)\n" in err


def test_write_rewrites_in_place(
    tmp_path: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(MIGRATABLE)
    assert _run([str(path), "--registry", PREFIX, "--write"], catalog_dir) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"wrote {path}" in err
    assert path.read_text().startswith(f"FROM {PREFIX}/python:3.13-dev AS build\n")
    assert _run([str(path), "--registry", PREFIX, "--write"], catalog_dir) == 0
    assert f"{path} unchanged" in capsys.readouterr().err


def test_registry_from_the_environment(
    tmp_path: Path,
    catalog_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KILN_REGISTRY", "localhost:5000/k")
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3\nRUN x\n")
    assert _run([str(path)], catalog_dir) == 0
    assert "+FROM localhost:5000/k/python:3.13-dev\n" in capsys.readouterr().out


def test_unmapped_lines_exit_1_and_are_written_around(
    tmp_path: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("ARG B=x\nFROM ${B} AS a\nFROM python:2.7 AS b\nFROM python:3\nRUN x\n")
    assert _run([str(path), "--registry", PREFIX, "--write"], catalog_dir) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: left untouched ${{B}}: the image comes from ARG B (line 1)" in err
    assert f"{path}:3: left untouched python:2.7: no kiln image for python:2.7" in err
    assert "error: 2 of 3 FROM lines left untouched (line 2, 3)" in err
    assert path.read_text().endswith(f"FROM {PREFIX}/python:3.13-dev\nRUN x\n")


def test_nothing_to_change(
    tmp_path: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM scratch\nCOPY app /\n")
    assert _run([str(path), "--registry", PREFIX], catalog_dir) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}: nothing to change" in err
    assert f"{path}:1: kept scratch" in err


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"RUN echo\n", ["--registry", PREFIX], "{path}:1: no FROM instruction"),
        (b"FROM a\n\x00\x01", ["--registry", PREFIX], "{path}:2: is a binary file"),
        (b"FROM python:3\n", [], "say where kiln's images are published"),
        (b"FROM python:3\n", ["--registry", "kiln"], "does not start with a registry host"),
    ],
)
def test_bad_input_exits_2(  # noqa: PLR0917 (pytest fixtures and parameters)
    tmp_path: Path,
    catalog_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: bytes,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("KILN_REGISTRY", raising=False)
    path = tmp_path / "Dockerfile"
    path.write_bytes(content)
    assert _run([str(path), *args], catalog_dir) == 2
    assert message.format(path=path) in capsys.readouterr().err
    assert path.read_bytes() == content


def test_spec_notes(catalog_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "notes", "--catalog", str(catalog_dir)]) == 0
    assert capsys.readouterr().out == (
        f"python ({catalog_dir}/python.yaml)\n"
        "  replaces: python:3.13*, python:3\n"
        "  - runtime runs as nonroot (65532)\n"
        "  - a | pipe\n"
    )
    assert main(["spec", "notes", str(catalog_dir / "python.yaml"), "--markdown"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        "| python | `python:3.13*`<br>`python:3` | runtime runs as nonroot (65532)<br>a \\| pipe |"
    )


def test_spec_notes_updates_a_readme(
    tmp_path: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nstale\n{README_END}\noutro\n")
    args = ["spec", "notes", "--catalog", str(catalog_dir), "--readme", str(readme)]
    assert main(args) == 0
    text = readme.read_text()
    assert "stale" not in text
    assert "| python | `python:3.13*`" in text
    assert text.startswith("intro\n")
    assert text.endswith(f"{README_END}\noutro\n")
    assert main(args) == 0
    assert "already up to date" in capsys.readouterr().err
    readme.write_text("no markers\n")
    assert main(args) == 2
    assert "has no notes block" in capsys.readouterr().err


def test_outside_the_checkout_the_installed_catalog_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no images/ here
    monkeypatch.delenv("KILN_CATALOG", raising=False)
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.13-slim\nRUN x\n")
    assert main(["migrate", "Dockerfile", "--registry", PREFIX]) == 0
    out, err = capsys.readouterr()
    assert f"+FROM {PREFIX}/python:3.13-dev\n" in out
    assert "Dockerfile:1: python:3.13-slim -> " in err


def test_catalog_from_the_environment_and_the_option_over_it(
    tmp_path: Path,
    catalog_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3\nRUN x\n")
    monkeypatch.setenv("KILN_CATALOG", str(tmp_path / "missing"))
    assert main(["migrate", "Dockerfile", "--registry", PREFIX]) == 2
    err = capsys.readouterr().err
    assert f"catalog directory {tmp_path / 'missing'} does not exist" in err
    assert "KILN_CATALOG" in err
    assert main(["migrate", "Dockerfile", "--registry", PREFIX, "--catalog", str(catalog_dir)]) == 0
    monkeypatch.setenv("KILN_CATALOG", str(catalog_dir))
    assert main(["migrate", "Dockerfile", "--registry", PREFIX]) == 0
    assert f"+FROM {PREFIX}/python:3.13-dev\n" in capsys.readouterr().out
