"""Long phases are announced: a status line on a terminal, a line per phase otherwise."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kiln.progress import NO_PROGRESS, ConsoleProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _plain() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


def test_off_a_terminal_each_phase_is_a_start_line_and_an_end_line() -> None:
    console, buffer = _plain()
    clock = Clock()
    progress = ConsoleProgress(console, heartbeat=30, clock=clock)
    with progress.phase("creating the build root") as phase:
        clock.now += 10
        phase.update("I: early line")  # within the heartbeat: not printed
        clock.now += 25
        phase.update("I: installing \x1b[31mremaining\x1b[0m packages")
        clock.now += 5
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "creating the build root ...",
        "still creating the build root (35 s): I: installing remaining packages",
        "creating the build root: done in 40.0 s",
    ]


def test_a_failing_phase_says_so_and_the_error_goes_on() -> None:
    console, buffer = _plain()
    clock = Clock()

    def fail() -> None:
        with ConsoleProgress(console, clock=clock).phase("building jq"):
            clock.now += 3
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert buffer.getvalue().splitlines()[-1] == "building jq: failed after 3.0 s"


def test_on_a_terminal_the_phase_ends_in_one_line() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with ConsoleProgress(console).phase("building jq") as phase:
        phase.update("dpkg-buildpackage: info: source package jq")
    assert "building jq: done in" in buffer.getvalue()
    assert "building jq ...\n" not in buffer.getvalue()


def test_no_progress_is_silent() -> None:
    with NO_PROGRESS.phase("anything") as phase:
        phase.update("ignored")
