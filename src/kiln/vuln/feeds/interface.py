"""The feed extension point: one ``Feed`` per vulnerability source.

A feed turns an input (a file, a directory, a zip or a URL, see ``source.py``) into a
stream of frozen records (``kiln.vuln.model.FeedRecord``) and warnings. It never writes
the database: ``kiln.vuln.db`` imports the stream in one transaction, so a feed that
raises half-way leaves the previous snapshot intact. Adding a source touches only this
folder: its module and one line of ``registry.py``, from which ``kiln db update
--source`` takes its choices and help (the pip-audit ``_service/interface.py`` shape).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

from kiln.errors import InputError, Location
from kiln.vuln.feeds.source import FeedInput
from kiln.vuln.model import FeedRecord


class FeedFormatError(InputError):
    """The feed input is malformed; ``location`` names the file and position."""


@dataclass(frozen=True)
class FeedWarning:
    """A record the feed skipped, and why (the import still succeeds)."""

    message: str
    location: Location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


# How an import merges with what the database already holds for this source:
# "replace" drops the source's previous rows (a full export); "upsert" replaces only the
# keys present in the new input (incremental windows, one ecosystem at a time).
ImportMode = Literal["replace", "upsert"]


class Feed(ABC):
    """A vulnerability source that yields records from one input."""

    name: ClassVar[str]
    mode: ClassVar[ImportMode] = "replace"
    default_url: ClassVar[str | None] = None

    @abstractmethod
    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        """Yield the records of ``source``; raise ``FeedFormatError`` on malformed input."""
