"""Entry point: registers the command modules and maps ``KilnError`` to exit codes.

``kiln NAME ...`` imports only the module that defines NAME, so typer builds one
command, not all of them (``kiln verify`` starts about 0.1 s sooner). ``kiln``,
``kiln --help`` and any name not in ``COMMAND_MODULES`` import every module, so a
missing entry costs time, never a command; tests/cli/test_main.py keeps the map complete.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import NoReturn

from kiln.cli.app import app, err_console
from kiln.errors import KilnError

# httpx 0.28 imports its own command-line client (click, rich.progress, pygments) on
# every `import httpx` when those happen to be installed; kiln never runs it. A None
# entry in sys.modules makes that one import fail, and httpx then defines a stub `main`
# instead (its own fallback; httpx2 made the import lazy upstream). This saves about
# 60 ms in each command that talks HTTP, and touches only the kiln process.
# (typeshed types the values as modules; None is the documented import blocker)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
# pydantic looks for plugins by reading the entry points of every installed
# distribution the first time a model validates (about 60 ms). Plugins are
# observability hooks for applications; kiln validates untrusted input and wants no
# third-party code inside that, so it switches them off unless the user set the
# variable (pydantic's documented switch).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# Every top-level command and command group, and the module that adds it to ``app``.
COMMAND_MODULES: dict[str, str] = {
    "attest": "kiln.cli.attest",
    "build": "kiln.cli.build",
    "compat": "kiln.cli.compat",
    "db": "kiln.cli.vuln",
    "fetch": "kiln.cli.lock",
    "keygen": "kiln.cli.attest",
    "lock": "kiln.cli.lock",
    "migrate": "kiln.cli.migrate",
    "package": "kiln.cli.source",
    "publish": "kiln.cli.publish",
    "rebuild": "kiln.cli.source",
    "registry": "kiln.cli.registry",
    "repo": "kiln.cli.source",
    "sbom": "kiln.cli.sbom",
    "serve": "kiln.cli.source",
    "scan": "kiln.cli.vuln",
    "schema": "kiln.cli.spec",
    "sign": "kiln.cli.attest",
    "source": "kiln.cli.source",
    "spec": "kiln.cli.spec",
    "test": "kiln.cli.build",
    "verify": "kiln.cli.attest",
    "vex": "kiln.cli.vuln",
}
ALL_MODULES = tuple(sorted(set(COMMAND_MODULES.values())))


def _register(argv: list[str] | None = None) -> None:
    """Import the module of the command ``argv`` names, or every module."""
    # the root takes no options besides --help: argv[0] is the command, if any
    module = COMMAND_MODULES.get(argv[0]) if argv else None
    for each in (module,) if module else ALL_MODULES:
        importlib.import_module(each)  # each module adds its commands to ``app``


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _register(args)
    try:
        # standalone mode: usage errors are printed by typer and raise SystemExit(2)
        app(args=args, prog_name="kiln")
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


def run() -> NoReturn:
    """The ``kiln`` program: ``main`` with the interpreter's exit made cheap.

    When a command returns, CPython unloads the ~400 modules it imported and collects
    garbage several times over all their objects (pydantic schemas, typing objects):
    0.2-0.4 s on this machine, longer than ``kiln verify``'s own work. ``gc.freeze()``
    moves every live object out of the collector's view first, so those collections
    find nothing to walk; atexit handlers and file flushing still run as usual. Only
    the program does this: tests call ``main`` in one process many times.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
