"""The entry point imports only the invoked command's module, and its map stays complete."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kiln.cli.app import app
from kiln.cli.main import ALL_MODULES, COMMAND_MODULES, _register, main


def _registered() -> dict[str, str]:
    """Every top-level command and group on ``app``, with the module that defines it."""
    _register()  # no command named: every module
    found: dict[str, str] = {}
    for command in app.registered_commands:
        assert command.callback is not None
        found[command.name or command.callback.__name__] = command.callback.__module__
    for group in app.registered_groups:
        assert group.typer_instance is not None
        modules = {
            c.callback.__module__ for c in group.typer_instance.registered_commands if c.callback
        }
        assert len(modules) == 1, (group.name, modules)
        assert group.name is not None
        found[group.name] = modules.pop()
    return found


def test_command_map_names_every_command_and_its_module() -> None:
    assert _registered() == COMMAND_MODULES
    assert set(ALL_MODULES) == set(COMMAND_MODULES.values())


def _modules_loaded_by(*argv: str) -> tuple[int, set[str], str]:
    script = (
        "import sys\nfrom kiln.cli.main import main\ncode = main(sys.argv[1:])\n"
        "print(' '.join(m for m in sys.modules if m.startswith('kiln.cli.')))\nsys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=False
    )
    return done.returncode, set(done.stdout.split("\n")[-2].split()), done.stdout + done.stderr


def test_a_named_command_loads_only_its_module() -> None:
    code, loaded, _ = _modules_loaded_by("verify", "--help")
    assert code == 0
    assert loaded & set(ALL_MODULES) == {"kiln.cli.attest"}


def test_help_and_unknown_names_load_every_module() -> None:
    code, loaded, _ = _modules_loaded_by("--help")
    assert code == 0
    assert set(ALL_MODULES) <= loaded
    code, loaded, out = _modules_loaded_by("no-such-command")
    assert code == 2
    assert "No such command" in out
    assert set(ALL_MODULES) <= loaded


def test_httpx_loads_without_its_command_line_client() -> None:
    script = (
        "import sys\nfrom kiln.cli.main import main\nimport httpx\n"
        "print('click' in sys.modules, 'pygments' in sys.modules, callable(httpx.main))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False", "True"]


def test_pydantic_plugins_are_off_unless_the_user_chose() -> None:
    script = "import os\nimport kiln.cli.main\nprint(os.environ['PYDANTIC_DISABLE_PLUGINS'])"
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "__all__"
    chosen = {**env, "PYDANTIC_DISABLE_PLUGINS": "logfire"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=chosen
    )
    assert done.stdout.strip() == "logfire"


@pytest.mark.parametrize(("argv", "code", "shown"), [
    (["verify", "--help"], 0, "Usage: kiln verify"),
    (["no-such-command"], 2, "No such command"),
    (["verify", "no-such-dir", "--key", "no-such.pub"], 2, "no-such.pub"),
])  # fmt: skip
def test_the_program_exits_with_mains_code_and_flushed_output(
    argv: list[str], code: int, shown: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == code
    assert shown in done.stdout + done.stderr


def _break_schema(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    from kiln.spec import ImageSpec

    def broken(*args: object, **kwargs: object) -> object:
        raise exc

    monkeypatch.setattr(ImageSpec, "model_json_schema", broken)


def test_a_bug_exits_70_with_one_line_and_the_traceback_in_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception exited 1 (the policy-failure code) with a traceback."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    _break_schema(monkeypatch, ZeroDivisionError("division by zero"))
    assert main(["schema"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("internal error: ZeroDivisionError: division by zero\n")
    assert "Traceback" not in err
    (report,) = (tmp_path / "kiln-crash").glob("traceback-*.txt")
    assert report.name in err
    assert "ZeroDivisionError" in report.read_text()
    assert "model_json_schema" in report.read_text() or "broken" in report.read_text()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PermissionError(13, "Permission denied", "/srv/out.json"), 2),
        (FileNotFoundError(2, "No such file or directory", "/nope/x"), 2),
        (OSError(28, "No space left on device", "/srv/out.json"), 3),
    ],
)
def test_an_os_error_is_an_input_or_environment_error_naming_the_path(
    error: OSError, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _break_schema(monkeypatch, error)
    assert main(["schema"]) == code
    err = capsys.readouterr().err
    assert f"error: {error.filename}: {error.strerror}" in err
    assert "Traceback" not in err
