"""Entry point: registers the command modules and maps ``KilnError`` to exit codes.

``kiln NAME ...`` imports only the module that defines NAME, so typer builds one
command, not all of them (``kiln verify`` starts about 0.1 s sooner). ``kiln``,
``kiln --help`` and any name not in ``COMMAND_MODULES`` import every module, so a
missing entry costs time, never a command; tests/cli/test_main.py keeps the map complete.
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

from kiln.cli.app import app, err_console
from kiln.errors import EnvironmentProblem, InputError, KilnError

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
    "advisories": "kiln.cli.advisories",
    "attest": "kiln.cli.attest",
    "build": "kiln.cli.build",
    "catalog": "kiln.cli.catalog",
    "compat": "kiln.cli.compat",
    "db": "kiln.cli.vuln",
    "factory": "kiln.cli.factory",
    "fetch": "kiln.cli.lock",
    "keygen": "kiln.cli.attest",
    "lock": "kiln.cli.lock",
    "migrate": "kiln.cli.migrate",
    "package": "kiln.cli.source",
    "publish": "kiln.cli.publish",
    "rebuild": "kiln.cli.source",
    "registry": "kiln.cli.registry",
    "repo": "kiln.cli.source",
    "research": "kiln.cli.research",
    "sbom": "kiln.cli.sbom",
    "serve": "kiln.cli.source",
    "scan": "kiln.cli.vuln",
    "schema": "kiln.cli.spec",
    "sign": "kiln.cli.attest",
    "site": "kiln.cli.site",
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
        return _report(exc)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        err_console.print(str(exc.code), markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False, highlight=False)
        return INTERRUPTED
    except OSError as exc:
        return _report(_os_error(exc))
    except Exception as exc:  # noqa: BLE001 - the one place a bug becomes exit 70, not a traceback
        return _internal_error(exc)
    return 0


#: sysexits(3) EX_SOFTWARE: kiln itself failed (a bug), not the input or the machine
INTERNAL_ERROR = 70
#: 128 + SIGINT, as a shell reports it
INTERRUPTED = 130
_INPUT_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
                           errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS})  # fmt: skip


def _report(exc: KilnError) -> int:
    err_console.print("[bold red]error:[/]", end=" ")
    err_console.print(exc.diagnostics(), markup=False, highlight=False)
    return exc.exit_code


def _os_error(exc: OSError) -> KilnError:
    """An OSError no command turned into its own error: a path the user gave cannot be
    used (input, exit 2), or the machine failed (disk full, I/O error: exit 3)."""
    where = f"{exc.filename}: " if exc.filename is not None else ""
    message = f"{where}{exc.strerror or exc}"
    if exc.errno in _INPUT_ERRNOS:
        return InputError(message, hint="check the path and its permissions")
    return EnvironmentProblem(message)


def _internal_error(exc: BaseException) -> int:
    """One line for the user; the traceback goes to a file they can attach to a report."""
    text = "".join(traceback.format_exception(exc))
    path: Path | None = None
    try:
        directory = Path(tempfile.gettempdir()) / "kiln-crash"
        directory.mkdir(mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="traceback-", suffix=".txt", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        path = Path(name)
    except OSError:
        path = None
    where = f"the traceback is in {path}" if path else f"traceback:\n{text}"
    err_console.print(
        f"internal error: {type(exc).__name__}: {exc}\n"
        f"  this is a bug in kiln, not in your input; {where}",
        markup=False,
        highlight=False,
    )
    return INTERNAL_ERROR


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
    if _TEMPORAL_BRIDGE in sys.modules:
        # The Temporal SDK's Rust threads outlive a command that talked to Temporal
        # (kiln factory, kiln catalog) and can abort the interpreter's teardown with
        # "PyGILState_Release: thread state ... must be current" (SIGABRT, exit 134;
        # temporalio/sdk-python#300): such a command leaves without the teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


_TEMPORAL_BRIDGE = "temporalio.bridge.temporal_sdk_bridge"


if __name__ == "__main__":
    run()
