"""CISA Known Exploited Vulnerabilities catalog (JSON) -> ``KevRecord``.

Format: https://www.cisa.gov/known-exploited-vulnerabilities-catalog (the JSON feed,
schema ``known_exploited_vulnerabilities.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import Location
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning
from kiln.vuln.feeds.source import FeedInput
from kiln.vuln.model import FeedRecord, KevRecord

KEV_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    cveID: str = Field(pattern=r"^CVE-\d{4}-\d{4,}$")  # noqa: N815 - the feed's field name
    vendorProject: str = ""  # noqa: N815
    product: str = ""
    vulnerabilityName: str = ""  # noqa: N815
    dateAdded: str  # noqa: N815
    dueDate: str | None = None  # noqa: N815
    knownRansomwareCampaignUse: str | None = None  # noqa: N815


class _Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    catalogVersion: str | None = None  # noqa: N815
    vulnerabilities: list[_Entry]


class KevFeed(Feed):
    name: ClassVar[str] = "kev"
    default_url: ClassVar[str | None] = KEV_URL

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        with source.open(source.members()[0] if source.kind in ("dir", "zip") else None) as fh:
            data = fh.read()
        try:
            catalog = _Catalog.model_validate_json(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = "$." + ".".join(str(p) for p in err["loc"])
            raise FeedFormatError(
                f"not a KEV catalog: {err['msg']}", Location(source.origin, field=path)
            ) from exc
        except json.JSONDecodeError as exc:  # pragma: no cover - pydantic wraps these
            raise FeedFormatError(str(exc), Location(source.origin, line=exc.lineno)) from exc
        for e in catalog.vulnerabilities:
            yield KevRecord(
                cve=e.cveID,
                vendor=e.vendorProject,
                product=e.product,
                name=e.vulnerabilityName,
                date_added=e.dateAdded,
                due_date=e.dueDate,
                known_ransomware=e.knownRansomwareCampaignUse,
            )
