"""The VEX-reader extension point: one ``VexReader`` per document format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from kiln.errors import InputError
from kiln.vuln.vex.model import VexStatement


class VexFormatError(InputError):
    """A VEX document is malformed; the message names the file and field."""


class VexReader(ABC):
    """Reads one VEX document format."""

    @abstractmethod
    def accepts(self, document: dict[str, Any]) -> bool:
        """Whether ``document`` (parsed JSON) is in this reader's format."""

    @abstractmethod
    def read(self, document: dict[str, Any], origin: str) -> list[VexStatement]:
        """The statements of ``document``; raise ``VexFormatError`` when malformed."""
