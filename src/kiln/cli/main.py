"""Entry point: registers the command modules and maps ``KilnError`` to exit codes."""

from __future__ import annotations

import sys

from kiln.cli.app import app, err_console
from kiln.errors import KilnError


def _register() -> None:
    # Each module adds its commands to ``app`` on import; keep this list sorted.
    import kiln.cli.attest  # noqa: F401
    import kiln.cli.build  # noqa: F401
    import kiln.cli.compat  # noqa: F401
    import kiln.cli.lock  # noqa: F401
    import kiln.cli.migrate  # noqa: F401
    import kiln.cli.publish  # noqa: F401
    import kiln.cli.registry  # noqa: F401
    import kiln.cli.sbom  # noqa: F401
    import kiln.cli.source  # noqa: F401
    import kiln.cli.spec  # noqa: F401
    import kiln.cli.vuln  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        # standalone mode: usage errors are printed by typer and raise SystemExit(2)
        app(args=argv, prog_name="kiln")
    except KilnError as exc:
        err_console.print("[bold red]error:[/]", end=" ")
        err_console.print(exc.diagnostics(), markup=False, highlight=False)
        return exc.exit_code
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        err_console.print(str(exc.code), markup=False, highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
