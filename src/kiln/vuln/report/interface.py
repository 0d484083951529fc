"""The output-format extension point: one ``Formatter`` per ``--format`` value."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from rich.console import RenderableType

from kiln.vuln.scan import ScanResult


class Formatter(ABC):
    """Renders a scan result: text for files and pipes, or a rich renderable."""

    name: ClassVar[str]

    @abstractmethod
    def render(self, result: ScanResult) -> str | RenderableType:
        """The document (JSON, SARIF, ...) or the table for ``result``."""
