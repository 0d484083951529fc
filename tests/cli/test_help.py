"""Every command's --help renders: help texts are rich markup, so a stray ``[/x]`` breaks them."""

from __future__ import annotations

import pytest
import typer

from kiln.cli.app import app
from kiln.cli.main import _register, main


def _commands() -> list[list[str]]:
    _register()
    found: list[list[str]] = [[]]

    # typer vendors click: groups are recognised by their ``commands`` mapping
    def walk(group: object, prefix: list[str]) -> None:
        for name, command in sorted(getattr(group, "commands", {}).items()):
            found.append([*prefix, name])
            walk(command, [*prefix, name])

    walk(typer.main.get_command(app), [])
    assert len(found) > 20, found
    return found


@pytest.mark.parametrize("argv", _commands(), ids=lambda argv: " ".join(argv) or "kiln")
def test_help_renders(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out
