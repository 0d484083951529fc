"""``--source`` and ``--format`` come from the ``FEEDS`` and ``FORMATTERS`` registries.

Adding a source or a format touches only its folder (its module and one line of the
folder's registry): the CLI's help and its check of the value read the registry, and
the registry names its modules without importing them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from kiln.cli.app import app
from kiln.cli.main import main
from kiln.vuln.feeds import FEEDS, Feed
from kiln.vuln.lazymap import LazyByName, spoken_list
from kiln.vuln.report import FORMATTERS, Formatter


def _option_help(path: tuple[str, ...], option: str) -> str:
    import kiln.cli.vuln  # noqa: F401 (registers db and scan on the app)

    command = typer.main.get_command(app)  # typer's own click: read it by its attributes
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    (param,) = [p for p in command.params if option in p.opts]
    return str(getattr(param, "help", ""))


def test_source_help_is_the_feed_registry() -> None:
    assert _option_help(("db", "update"), "--source") == spoken_list(list(FEEDS))
    assert set(FEEDS) >= {"debian-tracker", "debian-archive", "osv", "nvd", "kev", "epss"}


def test_format_help_is_the_formatter_registry() -> None:
    assert _option_help(("scan",), "--format") == spoken_list(list(FORMATTERS))


def test_every_registered_name_loads_the_class_of_that_name() -> None:
    for name, cls in FEEDS.items():
        assert issubclass(cls, Feed)
        assert cls.name == name
    for name, formatter in FORMATTERS.items():
        assert isinstance(formatter, Formatter)
        assert formatter.name == name


def test_a_registry_line_naming_the_wrong_class_is_caught() -> None:
    def feed_class(cls: object, name: str) -> type[Feed]:
        if not (isinstance(cls, type) and issubclass(cls, Feed) and cls.name == name):
            raise TypeError(f"{cls!r} is not the {name} feed")
        return cls

    wrong = LazyByName("kiln.vuln.feeds", {"kev": ("epss", "EpssFeed")}, feed_class)
    assert list(wrong) == ["kev"]
    with pytest.raises(TypeError, match="not the kev feed"):
        wrong["kev"]


def test_an_unknown_value_is_refused_with_the_registry_as_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "update", "--source", "no-such-feed", "--from", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown feed source 'no-such-feed'" in err
    assert ", ".join(FEEDS) in err
    assert main(["scan", "somewhere", "--format", "xml"]) == 2
    err = capsys.readouterr().err
    assert "unknown --format 'xml'" in err
    assert ", ".join(FORMATTERS) in err


def test_help_lists_every_name_without_loading_a_feed_or_formatter() -> None:
    script = (
        "import sys\n"
        "from kiln.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = [m for m in sys.modules if m.startswith(('kiln.vuln.feeds.', "
        "'kiln.vuln.report.'))]\n"
        "print('LOADED', ' '.join(sorted(loaded)))\n"
        "sys.exit(code)\n"
    )
    for argv, names in ((["db", "update", "--help"], FEEDS), (["scan", "--help"], FORMATTERS)):
        done = subprocess.run(
            [sys.executable, "-c", script, *argv],
            capture_output=True,
            text=True,
            check=False,
            env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, done.stderr
        flat = " ".join(done.stdout.split())
        assert spoken_list(list(names)) in flat
        loaded = done.stdout.rsplit("LOADED", 1)[1].split()
        assert sorted(loaded) == ["kiln.vuln.feeds.registry", "kiln.vuln.report.formats"]
