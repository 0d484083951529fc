"""Security of the site: strict headers everywhere, rate limits, and hostile strings from
feeds, advisories and SBOMs shown as text (no markup, no terminal escapes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from kiln.attest import SPDX_2_3, KeyBundleSigner, load_signer, statement_for
from kiln.attest.bundle import parse_bundle
from kiln.site.security import CSP
from kiln.site.web import SiteConfig
from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind
from site_web.conftest import HOSTILE, Published, RunningSite, serve
from site_web.test_frontdoor import request

pytestmark = pytest.mark.network


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/images/static",
        "/images/static/tags/latest/provenance",
        "/api/v1/images",
        "/api/openapi.json",
        "/v2/",
        "/v2/kiln/static/manifests/latest",
        "/static/site.css",
        "/no-such-page",
    ],
)
def test_every_answer_carries_the_security_headers(site: RunningSite, path: str) -> None:
    _, headers, _ = request(site.host, "GET", path)
    assert headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP
    assert "script-src" not in CSP  # default-src 'none': no script runs at all
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_rate_limit_per_client(published: Published) -> None:
    with serve(SiteConfig(published.store, published.db), rate=1.0, burst=3) as running:
        statuses = [request(running.host, "GET", "/v2/")[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        status, headers, body = request(running.host, "GET", "/api/v1/images")
        assert status == 429
        assert int(headers["retry-after"]) >= 1
        assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"


def _hostile_sbom(layout: Path, published: Published) -> None:
    """Re-sign the layout's SPDX SBOMs with a hostile description on tzdata."""
    signer = KeyBundleSigner(load_signer(published.private_key, password=b"correct horse"))
    for path in (layout / "attestations").glob("spdx-sbom-*.sigstore.json"):
        statement = parse_bundle(path.read_bytes(), where=str(path)).statement(where=str(path))
        document = dict(statement.predicate)
        for package in document["packages"]:
            if package["name"] == "tzdata":
                package["description"] = HOSTILE
        signed = statement_for(SPDX_2_3, statement.subject, document)
        path.write_bytes(signer.sign_statement(signed))


def _assert_shown_as_text(html: str) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert "\x1b" not in html
    assert "\x07" not in html
    assert "pwned" not in html  # the OSC title sequence went whole
    assert "gone" in html  # the text around it stays


def test_hostile_strings_render_as_text(published: Published, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(published.store, store)
    _hostile_sbom(store / "static", published)
    db = tmp_path / "vuln.db"
    shutil.copy(published.db, db)
    with AdvisoryStore.open(str(db)) as advisories:
        advisories.append(
            AdvisoryEvent("static", "CVE-2099-0003", EventKind.PENDING_UPSTREAM_FIX,
                          package="bash", data={"note": HOSTILE})
        )  # fmt: skip
    with serve(SiteConfig(store, str(db))) as running:
        pages = {
            "advisory on the timeline": "/advisories",
            "advisory on the image page": "/images/static",
            "package description": "/images/static/tags/latest/packages?arch=amd64",
            "feed description": "/images/static/tags/latest-dev/vulnerabilities",
        }
        for what, path in pages.items():
            status, _, body = request(running.host, "GET", path)
            assert status == 200, what
            html = body.decode()
            assert "gone" in html, what
            _assert_shown_as_text(html)
        # the signed (re-signed) SBOM is what the page read: the text is in the API too
        status, _, body = request(
            running.host, "GET", "/api/v1/images/static/tags/latest/packages?arch=amd64"
        )
        described = {p["name"]: p["description"] for p in json.loads(body)["packages"]}
        assert described["tzdata"] == HOSTILE  # JSON keeps it exact (and escaped)


def test_a_hostile_query_is_echoed_as_text(site: RunningSite) -> None:
    """The search box shows what was searched for: escaped, cut to 100 characters."""
    query = quote('"><script>alert(1)</script>\x1b[2J' + "x" * 200)
    status, _, body = request(site.host, "GET", f"/?q={query}&family=%3Cb%3E")
    html = body.decode()
    assert status == 200
    assert "<script>alert(1)" not in html
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b" not in html
    assert "x" * 101 not in html
    assert "no image matches" in html
