"""The ``--format`` registry: each formatter's module loads on first use.

A JSON report does not pay for the CycloneDX library, nor a table for SARIF. Adding a
format touches only this folder: its module (a ``Formatter`` subclass) and one line
below; ``kiln scan --format`` takes its choices and help from ``FORMATTERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from kiln.vuln.lazymap import LazyByName

if TYPE_CHECKING:
    from kiln.vuln.report.interface import Formatter

# --format name -> (module under kiln.vuln.report, Formatter class)
_WHERE = {
    "table": ("table", "TableFormatter"),
    "json": ("json_format", "JsonFormatter"),
    "sarif": ("sarif", "SarifFormatter"),
    "openvex": ("openvex", "OpenVexFormatter"),
    "cyclonedx": ("cyclonedx", "CycloneDxFormatter"),
}


def _formatter(cls: object, name: str) -> Formatter:
    # the interface loads the scan model: only once a formatter is used
    from kiln.vuln.report.interface import Formatter  # noqa: PLC0415

    made = cls() if isinstance(cls, type) else None
    if not isinstance(made, Formatter) or made.name != name:
        raise TypeError(f"{cls!r} is not the {name} formatter")
    return made


#: Formatter instances by ``--format`` name, made when first looked up
FORMATTERS: Mapping[str, Formatter] = LazyByName("kiln.vuln.report", _WHERE, _formatter)
