"""FIRST EPSS scores (CSV, optionally gzipped) -> ``EpssRecord``.

Format: https://www.first.org/epss/data_stats — a ``#model_version:...,score_date:...``
comment line, then ``cve,epss,percentile``.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from typing import ClassVar

from kiln.errors import Location
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning
from kiln.vuln.feeds.source import FeedInput
from kiln.vuln.model import EpssRecord, FeedRecord

EPSS_URL = "https://epss.cyentia.com/epss_scores-current.csv.gz"
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")


def _rows(text: str, origin: str) -> Iterator[tuple[int, list[str]]]:
    """The CSV rows with their line numbers; a row the csv module refuses is a format error."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise FeedFormatError(
            f"not CSV: {exc}", Location(origin, line=reader.line_num or None)
        ) from exc


class EpssFeed(Feed):
    name: ClassVar[str] = "epss"
    default_url: ClassVar[str | None] = EPSS_URL

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        with source.open(source.members()[0] if source.kind in ("dir", "zip") else None) as fh:
            data = fh.read()
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise FeedFormatError(f"corrupt gzip: {exc}", Location(source.origin)) from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedFormatError(
                f"not UTF-8 text at byte {exc.start}", Location(source.origin)
            ) from exc
        header: list[str] | None = None
        for lineno, row in _rows(text, source.origin):
            if not row or row[0].startswith("#"):
                continue
            if header is None:
                header = [c.strip() for c in row]
                if header[:3] != ["cve", "epss", "percentile"]:
                    raise FeedFormatError(
                        f"expected the header 'cve,epss,percentile', got {','.join(row)!r}",
                        Location(source.origin, line=lineno),
                    )
                continue
            try:
                cve, epss, pct = row[0].strip(), float(row[1]), float(row[2])
            except (IndexError, ValueError) as exc:
                raise FeedFormatError(
                    f"expected 'CVE-id,score,percentile', got {','.join(row)!r}",
                    Location(source.origin, line=lineno),
                ) from exc
            if not _CVE.match(cve) or not (0.0 <= epss <= 1.0 and 0.0 <= pct <= 1.0):
                raise FeedFormatError(
                    f"bad EPSS row {','.join(row)!r}", Location(source.origin, line=lineno)
                )
            yield EpssRecord(cve, epss, pct)
        if header is None:
            raise FeedFormatError("no EPSS header line found", Location(source.origin))
