"""The NVD API 2.0 client against a loopback server.

NVD itself is not reachable from the test machines, so a local HTTP server serves
pages in the recorded shape of ``/rest/json/cves/2.0`` responses (resultsPerPage,
startIndex, totalResults, vulnerabilities[].cve with metrics/weaknesses/configurations)
and records every request it gets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from kiln.cli.main import main
from kiln.errors import RemoteContentError
from kiln.net import HttpFetcher, RetryPolicy, http_client
from kiln.vuln.db import SqliteReader, VulnDB, open_for_scan
from kiln.vuln.db.models import NvdRow
from kiln.vuln.feeds import NvdClient, NvdFeed, OsvFeed, RateLimiter, from_path
from kiln.vuln.feeds.nvd import windows


def _cve(n: int) -> dict[str, object]:
    cid = f"CVE-2024-{1000 + n}"
    return {
        "cve": {
            "id": cid,
            "sourceIdentifier": "cve@mitre.org",
            "published": "2024-01-01T00:00:00.000",
            "lastModified": f"2024-02-0{n + 1}T00:00:00.000",
            "vulnStatus": "Analyzed",
            "descriptions": [{"lang": "en", "value": f"issue {n}"}, {"lang": "es", "value": "x"}],
            "metrics": {
                "cvssMetricV31": [
                    {
                        "source": "other@example.org",
                        "type": "Secondary",
                        "cvssData": {
                            "version": "3.1",
                            "vectorString": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
                            "baseScore": 1.8,
                            "baseSeverity": "LOW",
                        },
                    },
                    {
                        "source": "nvd@nist.gov",
                        "type": "Primary",
                        "cvssData": {
                            "version": "3.1",
                            "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                            "baseScore": 9.8,
                            "baseSeverity": "CRITICAL",
                        },
                    },
                ],
            },
            "weaknesses": [
                {
                    "source": "nvd@nist.gov",
                    "type": "Primary",
                    "description": [{"lang": "en", "value": "CWE-787"}],
                }
            ],
            "configurations": [
                {
                    "nodes": [
                        {
                            "operator": "OR",
                            "negate": False,
                            "cpeMatch": [
                                {
                                    "vulnerable": True,
                                    "criteria": "cpe:2.3:a:zlib:zlib:*:*:*:*:*:*:*:*",
                                    "versionEndExcluding": "1.3.1",
                                    "matchCriteriaId": "0000",
                                }
                            ],
                        }
                    ]
                }
            ],
            "references": [{"url": f"https://example.org/{cid}", "source": "cve@mitre.org"}],
        }
    }


class _Nvd(BaseHTTPRequestHandler):
    records: ClassVar[list[dict[str, object]]] = [_cve(n) for n in range(3)]
    seen: ClassVar[list[tuple[dict[str, list[str]], str | None]]] = []
    fail_first = 0
    garbage = False

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        type(self).seen.append((query, self.headers.get("apiKey")))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        start = int(query["startIndex"][0])
        size = int(query["resultsPerPage"][0])
        page = self.records[start : start + size]
        body = (
            b"<html>rate limited</html>"
            if self.garbage
            else json.dumps(
                {
                    "resultsPerPage": len(page),
                    "startIndex": start,
                    "totalResults": len(self.records),
                    "format": "NVD_CVE",
                    "version": "2.0",
                    "timestamp": "2024-03-01T00:00:00.000",
                    "vulnerabilities": page,
                }
            ).encode()
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def nvd_url() -> Iterator[str]:
    _Nvd.seen = []
    _Nvd.fail_first = 0
    _Nvd.garbage = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Nvd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rest/json/cves/2.0"
    server.shutdown()
    server.server_close()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _client(url: str, clock: _Clock, *, key: str | None = None, page_size: int = 2) -> NvdClient:
    http = http_client()
    if key:
        http.headers["apiKey"] = key
    fetcher = HttpFetcher(http, retry=RetryPolicy(attempts=3), sleep=clock.sleep)
    limiter = RateLimiter(50 if key else 5, 30.0, clock=clock, sleep=clock.sleep)
    return NvdClient(fetcher, base_url=url, api_key=bool(key), page_size=page_size, limiter=limiter)


def test_pages_windows_api_key_and_import(nvd_url: str, tmp_path: Path) -> None:
    clock = _Clock()
    end = datetime(2024, 3, 1, tzinfo=UTC)
    source = _client(nvd_url, clock, key="secret-key").download(end - timedelta(days=200), end)
    # two 120-day-max windows, each paged 2 + 1
    assert [(q["startIndex"][0], q["lastModStartDate"][0]) for q, _ in _Nvd.seen] == [
        ("0", "2023-08-14T00:00:00.000Z"),
        ("2", "2023-08-14T00:00:00.000Z"),
        ("0", "2023-12-12T00:00:00.000Z"),
        ("2", "2023-12-12T00:00:00.000Z"),
    ]
    assert {key for _, key in _Nvd.seen} == {"secret-key"}
    assert clock.slept == []  # 4 requests are within 50 per 30 s
    db = VulnDB.open(f"sqlite:///{tmp_path / 'v.db'}")
    result = db.import_feed(NvdFeed(), source)
    assert result.snapshot.counts["NvdRecord"] == 6  # the same 3 CVEs in both windows
    data = db.load()
    assert data.nvd == {}
    # NVD records come with the CVEs an advisory names, through either read path.
    osv = tmp_path / "osv"
    osv.mkdir()
    (osv / "GHSA-demo.json").write_text(
        json.dumps(
            {
                "id": "GHSA-demo-0000-0000",
                "aliases": ["CVE-2024-1000"],
                "modified": "2024-02-01T00:00:00Z",
                "affected": [
                    {
                        "package": {"ecosystem": "npm", "name": "demo"},
                        "ranges": [
                            {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}
                        ],
                    }
                ],
            }
        )
    )
    db.import_feed(OsvFeed(), from_path(osv))
    named = db.load(osv_keys=[("npm", "demo")])
    assert named.nvd["CVE-2024-1000"].cvss31_score == 9.8
    assert named.nvd["CVE-2024-1000"].cwes == ("CWE-787",)
    reader = open_for_scan(str(db.engine.url))
    assert isinstance(reader, SqliteReader)
    assert reader.load(osv_keys=[("npm", "demo")]) == named
    reader.close()
    with db.engine.connect() as conn:
        rows = {r.cve: r for r in conn.execute(NvdRow.__table__.select())}
    assert set(rows) == {"CVE-2024-1000", "CVE-2024-1001", "CVE-2024-1002"}
    row = rows["CVE-2024-1000"]
    assert (row.cvss31_score, row.cvss31_vector.startswith("CVSS:3.1/AV:N"), row.cwes) == (
        9.8,
        True,
        ["CWE-787"],
    )
    assert row.configurations[0]["nodes"][0]["cpeMatch"][0]["versionEndExcluding"] == "1.3.1"
    assert row.description == "issue 0"
    # same pages again -> same zip -> same digest: the import is recognised as unchanged
    again = _client(nvd_url, _Clock(), key="secret-key").download(end - timedelta(days=200), end)
    assert again.digest == source.digest
    db.close()


def test_rate_limit_without_a_key_waits() -> None:
    clock = _Clock()
    limiter = RateLimiter(5, 30.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.wait()
        clock.now += 1.0
    limiter.wait()
    assert clock.slept == [25.0]  # the 6th request waits until the 1st leaves the window


def test_retries_5xx_and_refuses_garbage(nvd_url: str) -> None:
    _Nvd.fail_first = 1
    clock = _Clock()
    src = _client(nvd_url, clock, page_size=10).download(None, datetime(2024, 3, 1, tzinfo=UTC))
    assert src.kind == "zip"
    assert "lastModStartDate" not in _Nvd.seen[-1][0]  # no start: a full download
    _Nvd.garbage = True
    with pytest.raises(RemoteContentError, match=r"not an NVD API 2\.0 page"):
        _client(nvd_url, _Clock()).download(None, datetime(2024, 3, 1, tzinfo=UTC))


def test_windows_cover_the_span_exactly() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    spans = windows(start, start + timedelta(days=250))
    assert [b - a for a, b in spans] == [
        timedelta(days=120),
        timedelta(days=120),
        timedelta(days=10),
    ]
    assert spans[0][0] == start
    assert spans[-1][1] == start + timedelta(days=250)


def test_cli_update_is_incremental(
    nvd_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NVD_API_KEY", "k")
    db = str(tmp_path / "v.db")
    assert (
        main(
            [
                "db",
                "update",
                "--source",
                "nvd",
                "--from",
                nvd_url,
                "--since",
                "2024-02-01",
                "--db",
                db,
            ]
        )
        == 0
    )
    assert _Nvd.seen[0][0]["lastModStartDate"] == ["2024-02-01T00:00:00.000Z"]
    assert _Nvd.seen[0][1] == "k"
    store = VulnDB.open(db)
    cursor = store.cursor("nvd")
    store.close()
    assert cursor is not None
    _Nvd.seen = []
    assert main(["db", "update", "--source", "nvd", "--from", nvd_url, "--db", db]) == 0
    # the second run starts where the first run's window ended
    expected = datetime.fromisoformat(cursor).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert _Nvd.seen[0][0]["lastModStartDate"] == [expected]
