"""Progress of long steps, so that a command that works for minutes never looks hung.

Domain code announces phases through the small ``Progress`` interface (``NO_PROGRESS``
by default, so a library caller sees nothing); the CLI injects ``ConsoleProgress``:

- on a terminal, a rich status line (spinner, the phase, seconds elapsed, and the last
  line a subprocess such as mmdebstrap printed), replaced by one line when it ends;
- elsewhere (CI logs, pipes), one line when a phase starts and one when it ends, plus a
  ``still ...`` line at most every ``heartbeat`` seconds while a subprocess reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

from kiln.text import plain_line

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status


class Phase(Protocol):
    """A running phase: ``update`` passes on what it is doing now (one line)."""

    def update(self, detail: str) -> None: ...


class Progress(Protocol):
    """Announces long phases (``with progress.phase("creating the build root"): ...``)."""

    def phase(self, text: str) -> AbstractContextManager[Phase]: ...


class _SilentPhase:
    def update(self, detail: str) -> None:
        del detail


class _Silent:
    @contextmanager
    def phase(self, text: str) -> Iterator[Phase]:
        del text
        yield _SilentPhase()


NO_PROGRESS: Progress = _Silent()


def _clean(detail: str, width: int = 100) -> str:
    """One printable line of a subprocess's output (no escapes, bounded length)."""
    text = plain_line(detail).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


class _ConsolePhase:
    def __init__(
        self,
        text: str,
        console: Console,
        status: Status | None,
        heartbeat: float,
        clock: Callable[[], float],
    ) -> None:
        self.text = text
        self.console = console
        self.status = status
        self.heartbeat = heartbeat
        self.clock = clock
        self.started = clock()
        self.last_line = self.started

    def elapsed(self) -> float:
        return self.clock() - self.started

    def update(self, detail: str) -> None:
        line = _clean(detail)
        if self.status is not None:
            suffix = f": {line}" if line else ""
            self.status.update(f"{self.text} ({self.elapsed():.0f} s){suffix}")
            return
        now = self.clock()
        if now - self.last_line >= self.heartbeat:
            self.last_line = now
            suffix = f": {line}" if line else ""
            self._print(f"still {self.text} ({self.elapsed():.0f} s){suffix}")

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)


class ConsoleProgress:
    """Phases on a rich console (normally stderr): a live status line on a terminal."""

    def __init__(
        self,
        console: Console,
        *,
        heartbeat: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.heartbeat = heartbeat
        self.clock = clock

    @contextmanager
    def phase(self, text: str) -> Iterator[Phase]:
        live = self.console.is_terminal and not self.console.is_dumb_terminal
        if live:
            with self.console.status(text) as status:
                phase = _ConsolePhase(text, self.console, status, self.heartbeat, self.clock)
                try:
                    yield phase
                except BaseException:
                    phase._print(f"{text}: failed after {phase.elapsed():.1f} s")
                    raise
        else:
            phase = _ConsolePhase(text, self.console, None, self.heartbeat, self.clock)
            phase._print(f"{text} ...")
            try:
                yield phase
            except BaseException:
                phase._print(f"{text}: failed after {phase.elapsed():.1f} s")
                raise
        phase._print(f"{text}: done in {phase.elapsed():.1f} s")
