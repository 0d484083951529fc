"""Entry point: registers the command modules and maps ``KilnError`` to exit codes."""

from __future__ import annotations

import sys

from kiln.cli.app import app, err_console
from kiln.errors import KilnError


def _register() -> None:
    # Each module adds its commands to ``app`` on import; keep this list sorted.
    import kiln.cli.lock  # noqa: F401
    import kiln.cli.spec  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except KilnError as exc:
        err_console.print("[bold red]error:[/]", end=" ")
        err_console.print(exc.diagnostics(), markup=False, highlight=False)
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
