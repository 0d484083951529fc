"""A registry by name whose entries load their module on first lookup.

The feed registry (``kiln.vuln.feeds.FEEDS``) and the formatter registry
(``kiln.vuln.report.FORMATTERS``) are ``LazyByName`` tables: their names are known
without importing anything, so the CLI builds ``--source`` and ``--format`` choices and
help from them at no cost, and a command loads only the feed or formatter it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")


class LazyByName(Mapping[str, T]):
    """``name -> (module, attribute)`` under ``package``, made into a ``T`` when looked up.

    ``make`` turns the loaded attribute into the entry and checks it (e.g. that it is
    the named formatter); it raises ``TypeError`` for a table that names the wrong thing.
    Each entry is made once.
    """

    def __init__(
        self,
        package: str,
        where: Mapping[str, tuple[str, str]],
        make: Callable[[object, str], T],
    ) -> None:
        self._package = package
        self._where = dict(where)
        self._make = make
        self._made: dict[str, T] = {}

    def __getitem__(self, name: str) -> T:
        if name in self._made:
            return self._made[name]
        module, attribute = self._where[name]
        loaded = getattr(importlib.import_module(f"{self._package}.{module}"), attribute)
        made = self._made[name] = self._make(loaded, name)
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def spoken_list(names: Iterator[str] | list[str]) -> str:
    """``a, b or c``: the names of a registry as a help text lists them."""
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
