"""The typer application that every command module registers on."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="kiln",
    help="Build minimal, hardened, signed container base images from Debian packages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never wrap paths in messages


@app.callback()
def _root() -> None:
    """Build minimal, hardened, signed container base images from Debian packages."""
