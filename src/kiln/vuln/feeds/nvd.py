"""NVD CVE API 2.0: a paged, rate-limited client and a parser for its pages.

API: https://nvd.nist.gov/developers/vulnerabilities . The client pages with
``startIndex``/``resultsPerPage``, narrows to a ``lastModStartDate``/``lastModEndDate``
window (at most 120 days each, so long spans are split), sends the optional ``apiKey``
header, and waits between requests to stay within NVD's public rate limits (5 requests
per 30 s without a key, 50 with one). The pages it downloaded are packed into one
deterministic zip, so an online update and an offline import of saved pages
(``--from DIR|ZIP`` of API responses) go through the same parser and are digested
the same way.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, ValidationError

from kiln.errors import Location, RemoteContentError
from kiln.net import Fetcher
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning, ImportMode
from kiln.vuln.feeds.source import FeedInput, from_bytes
from kiln.vuln.model import FeedRecord, NvdRecord

NVD_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"
MAX_WINDOW = timedelta(days=120)
PAGE_SIZE = 2000
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --- the page format --------------------------------------------------------------


class _CvssData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    vectorString: str  # noqa: N815 - NVD's field names
    baseScore: float  # noqa: N815


class _Metric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str = "Primary"
    cvssData: _CvssData  # noqa: N815


class _LangValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    lang: str
    value: str


class _Weakness(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    description: list[_LangValue] = []


class _Reference(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    url: str


class _Cve(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str
    lastModified: str  # noqa: N815
    descriptions: list[_LangValue] = []
    metrics: dict[str, list[_Metric]] = {}
    weaknesses: list[_Weakness] = []
    references: list[_Reference] = []
    configurations: list[dict[str, Any]] = []


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    cve: _Cve


class _Page(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    resultsPerPage: int  # noqa: N815
    startIndex: int  # noqa: N815
    totalResults: int  # noqa: N815
    vulnerabilities: list[_Item]


def _primary(metrics: list[_Metric]) -> _Metric | None:
    if not metrics:
        return None
    return next((m for m in metrics if m.type == "Primary"), metrics[0])


def parse_page(data: bytes, display: str) -> tuple[_Page, list[NvdRecord]]:
    """One API 2.0 response -> its paging fields and records."""
    try:
        page = _Page.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = "$." + ".".join(str(p) for p in err["loc"])
        raise FeedFormatError(
            f"not an NVD API 2.0 page: {err['msg']}", Location(display, field=path)
        ) from exc
    records = []
    for item in page.vulnerabilities:
        cve = item.cve
        v31 = _primary(cve.metrics.get("cvssMetricV31", []))
        v40 = _primary(cve.metrics.get("cvssMetricV40", []))
        desc = next((d.value for d in cve.descriptions if d.lang == "en"), "")
        cwes = sorted(
            {d.value for w in cve.weaknesses for d in w.description if d.value.startswith("CWE-")}
        )
        records.append(
            NvdRecord(
                cve=cve.id,
                last_modified=cve.lastModified,
                description=desc,
                cvss31_vector=v31.cvssData.vectorString if v31 else None,
                cvss31_score=v31.cvssData.baseScore if v31 else None,
                cvss40_vector=v40.cvssData.vectorString if v40 else None,
                cvss40_score=v40.cvssData.baseScore if v40 else None,
                cwes=tuple(cwes),
                references=tuple(r.url for r in cve.references),
                configurations=tuple(cve.configurations),
            )
        )
    return page, records


class NvdFeed(Feed):
    """NVD API 2.0 pages (downloaded by ``NvdClient`` or saved by the user)."""

    name: ClassVar[str] = "nvd"
    mode: ClassVar[ImportMode] = "upsert"  # windows are incremental: keep older CVEs
    default_url: ClassVar[str | None] = NVD_URL

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        for member in source.members():
            if source.kind in ("dir", "zip") and not member.endswith(".json"):
                continue
            with source.open(member if source.kind in ("dir", "zip") else None) as fh:
                data = fh.read()
            _, records = parse_page(data, source.display(member))
            yield from records


# --- the client ---------------------------------------------------------------------


class RateLimiter:
    """At most ``requests`` calls per ``period`` seconds (sliding window)."""

    def __init__(
        self,
        requests: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._requests = requests
        self._period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()

    def wait(self) -> None:
        now = self._clock()
        while self._sent and now - self._sent[0] >= self._period:
            self._sent.popleft()
        if len(self._sent) >= self._requests:
            self._sleep(self._period - (now - self._sent[0]))
            now = self._clock()
            self._sent.popleft()
        self._sent.append(now)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end]`` into NVD-acceptable last-modified windows (≤ 120 days)."""
    out = []
    cursor = start
    while cursor < end:
        stop = min(cursor + MAX_WINDOW, end)
        out.append((cursor, stop))
        cursor = stop
    return out


class NvdClient:
    """Downloads CVE pages from the NVD API 2.0 (inject the fetcher, clock and sleep)."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        base_url: str = NVD_URL,
        api_key: bool = False,
        page_size: int = PAGE_SIZE,
        limiter: RateLimiter | None = None,
    ) -> None:
        # The key itself travels as the ``apiKey`` header of the fetcher's client; here
        # it only decides how fast we may go.
        self._fetcher = fetcher
        self._base = base_url
        self._page_size = page_size
        self._limiter = limiter or RateLimiter(50 if api_key else 5, 30.0)

    def pages(self, start: datetime | None, end: datetime) -> Iterator[tuple[str, bytes]]:
        """Yield (url, body) for every page of every window; a full download if no start."""
        spans: list[tuple[datetime | None, datetime | None]]
        spans = [(None, None)] if start is None else list(windows(start, end))
        for lo, hi in spans:
            index = 0
            while True:
                params: dict[str, str | int] = {
                    "resultsPerPage": self._page_size,
                    "startIndex": index,
                }
                if lo is not None and hi is not None:
                    params["lastModStartDate"] = _iso(lo)
                    params["lastModEndDate"] = _iso(hi)
                url = f"{self._base}?{urlencode(params)}"
                self._limiter.wait()
                body = self._fetcher.fetch(url, max_bytes=256 * 1024**2).body
                try:
                    page, _ = parse_page(body, url)
                except FeedFormatError as exc:
                    raise RemoteContentError(str(exc)) from exc
                yield url, body
                got = len(page.vulnerabilities)
                index += got
                if got == 0 or index >= page.totalResults:
                    break

    def download(self, start: datetime | None, end: datetime) -> FeedInput:
        """All pages as one in-memory zip input (deterministic, so digests repeat)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for n, (url, body) in enumerate(self.pages(start, end)):
                info = zipfile.ZipInfo(f"page-{n:05d}.json", date_time=_ZIP_TIME)
                zf.writestr(info, body)
                info = zipfile.ZipInfo(f"page-{n:05d}.url", date_time=_ZIP_TIME)
                zf.writestr(info, url)
        window = f"{_iso(start)}..{_iso(end)}" if start else f"..{_iso(end)}"
        return from_bytes(f"{self._base} [{window}]", buf.getvalue())


def parse_since(text: str) -> datetime:
    """``--since`` value (ISO 8601 date or time; UTC when no zone)."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
