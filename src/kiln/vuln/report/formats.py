"""The ``--format`` registry: each formatter's module loads on first use.

A JSON report does not pay for the CycloneDX library, nor a table for SARIF.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from kiln.vuln.report.interface import Formatter

# --format name -> (module under kiln.vuln.report, Formatter class)
_WHERE = {
    "table": ("table", "TableFormatter"),
    "json": ("json_format", "JsonFormatter"),
    "sarif": ("sarif", "SarifFormatter"),
    "openvex": ("openvex", "OpenVexFormatter"),
    "cyclonedx": ("cyclonedx", "CycloneDxFormatter"),
}


class _Formatters(Mapping[str, Formatter]):
    """Formatter instances by ``--format`` name, made when first looked up."""

    def __init__(self) -> None:
        self._made: dict[str, Formatter] = {}

    def __getitem__(self, name: str) -> Formatter:
        made = self._made.get(name)
        if made is None:
            module, cls = _WHERE[name]
            made = getattr(importlib.import_module(f"kiln.vuln.report.{module}"), cls)()
            if not isinstance(made, Formatter) or made.name != name:
                raise TypeError(f"kiln.vuln.report.{module}.{cls} is not the {name} formatter")
            self._made[name] = made
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


FORMATTERS: Mapping[str, Formatter] = _Formatters()
