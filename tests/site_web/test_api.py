"""The JSON API: its numbers equal ``kiln scan`` and ``kiln verify`` on the same reference,
its documents match the OpenAPI description, the diff and SBOM downloads are right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kiln.cli.main import main
from kiln.site.app import warm
from kiln.site.evidence import Evidence
from kiln.site.store import Store
from kiln.site.web import Site, SiteConfig
from site_web.conftest import VEX_CVE, Published, RunningSite
from site_web.test_frontdoor import request

pytestmark = pytest.mark.network


def get_json(site: RunningSite, path: str, status: int = 200) -> Any:
    got, headers, body = request(site.host, "GET", path)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


def kiln_scan(site: RunningSite, published: Published, tag: str, out: Path) -> dict[str, Any]:
    """``kiln scan`` on the front door's reference, as the page tells users to run it."""
    args = ["scan", f"{site.host}/kiln/static:{tag}", "--platform", "linux/amd64",
            "--key", str(published.public_key), "--db", published.db, "--format", "json",
            "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.parametrize("tag", ["latest", "latest-dev"])
def test_vulnerability_numbers_equal_kiln_scan(
    published: Published, site: RunningSite, tmp_path: Path, tag: str
) -> None:
    api = get_json(site, f"/api/v1/images/static/tags/{tag}/vulnerabilities?arch=amd64")
    expected = (
        f"kiln scan {site.host}/kiln/static:{tag} --platform linux/amd64 --key kiln.pub "
        f"--db {published.db}"
    )
    assert api["command"] == expected
    report = kiln_scan(site, published, tag, tmp_path / "scan.json")
    assert api["summary"] == report["summary"]
    assert api["package_count"] == report["package_count"]
    assert sorted((f["id"], f["status"]) for f in api["findings"]) == sorted(
        (f["id"], f["status"]) for f in report["findings"]
    )
    # the fixture's data really reaches the page: counts are not all zero
    assert api["summary"]["total"] > 0
    if tag == "latest-dev":
        assert api["summary"]["by_status"]["not_affected"] == 1  # the signed VEX
        suppressed = [f for f in api["findings"] if f["status"] == "not_affected"]
        assert [f["id"] for f in suppressed] == [VEX_CVE]


def test_verification_equals_kiln_verify(
    published: Published, site: RunningSite, capsys: pytest.CaptureFixture[str]
) -> None:
    api = get_json(site, "/api/v1/images/static/tags/latest/provenance")
    capsys.readouterr()
    reference = f"{site.host}/kiln/static:latest"
    assert main(["verify", reference, "--key", str(published.public_key)]) == 0
    printed = capsys.readouterr().out.splitlines()
    verification = api["verification"]
    assert verification["ok"] is True
    assert printed[0] == f"verified {api['digest']} with key {verification['key_id']}"
    assert [f"  ok: {line}" for line in verification["passes"]] == printed[1:]
    assert api["commands"][-1] == f"kiln verify {reference} --key kiln.pub"
    assert api["provenance"]["builder"]
    assert api["provenance"]["material_count"] > 0
    kinds = sorted(a["kind"] for a in verification["attestations"])
    assert len(kinds) == 10  # 3 signatures (index, 2 platforms), provenance, 2 x (SPDX, CDX, CTRF)
    assert all(a["signed"] for a in verification["attestations"])


def test_catalog_search_and_filters(site: RunningSite) -> None:
    catalog = get_json(site, "/api/v1/images")
    labels = [row["label"] for row in catalog["images"]]
    assert labels == ["static", "static-dev"]
    row = catalog["images"][0]
    assert row["tags"] == ["latest"]
    assert row["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert row["release"] == "debian-13"
    assert set(row["compressed"]) == {"amd64", "arm64"}
    assert all(row["uncompressed"][a] > row["compressed"][a] for a in ("amd64", "arm64"))
    assert catalog["facets"]["variant"] == ["dev", "runtime"]
    dev = get_json(site, "/api/v1/images?variant=dev")["images"]
    assert [r["label"] for r in dev] == ["static-dev"]
    assert get_json(site, "/api/v1/images?q=no-such-image")["images"] == []
    # case-insensitive, over the label and the description
    assert len(get_json(site, "/api/v1/images?q=STATIC%20binaries")["images"]) == 2
    assert [r["label"] for r in get_json(site, "/api/v1/images?q=static-d")["images"]] == [
        "static-dev"
    ]
    assert get_json(site, "/api/v1/images?release=debian-12")["images"] == []


def test_image_page_data(site: RunningSite) -> None:
    image = get_json(site, "/api/v1/images/static")
    assert image["tags"] == ["latest", "latest-dev"]
    runtime = image["variants"][0]
    assert runtime["from_line"] == f"FROM {site.host}/kiln/static:latest"
    assert runtime["replaces"] == ["distroless/static*"]
    assert runtime["notes"]
    assert [p["arch"] for p in runtime["platform_details"]] == ["amd64", "arm64"]
    assert get_json(site, "/api/v1/images/nothing", status=404)["error"]
    get_json(site, "/api/v1/images/static/tags/nope", status=404)
    get_json(site, "/api/v1/images/static/tags/latest/packages?arch=s390x", status=404)


def test_diff_between_tags(site: RunningSite) -> None:
    diff = get_json(site, "/api/v1/images/static/diff?from=latest&to=latest-dev")
    added = {p["name"] for p in diff["added"]}
    assert {"deb:bash", "deb:coreutils"} <= added
    assert diff["removed"] == []
    assert "CVE-2099-0003" in diff["cves_introduced"]  # bash's, open
    assert VEX_CVE not in diff["cves_introduced"]  # suppressed by the signed VEX
    assert diff["compressed_change"] == diff["compressed_after"] - diff["compressed_before"]
    assert diff["compressed_change"] > 0
    back = get_json(site, "/api/v1/images/static/diff?from=latest-dev&to=latest")
    assert back["cves_fixed"] == diff["cves_introduced"]
    assert back["compressed_change"] == -diff["compressed_change"]


def test_sbom_downloads(site: RunningSite) -> None:
    status, headers, body = request(
        site.host, "GET", "/images/static/tags/latest/sbom.spdx.json?arch=arm64"
    )
    assert status == 200
    assert "attachment" in headers["content-disposition"]
    spdx = json.loads(body)
    assert spdx["spdxVersion"] == "SPDX-2.3"
    status, _, body = request(site.host, "GET", "/images/static/tags/latest/sbom.cdx.json")
    cdx = json.loads(body)
    assert cdx["bomFormat"] == "CycloneDX"
    packages = get_json(site, "/api/v1/images/static/tags/latest/packages?arch=amd64")
    names = {p["name"] for p in packages["packages"]}
    assert {"tzdata", "ca-certificates", "base-files", "netbase"} <= names
    spdx_names = {p["name"] for p in spdx["packages"]}
    assert {"tzdata", "ca-certificates"} <= spdx_names
    status, _, _ = request(site.host, "GET", "/images/static/tags/latest/sbom.xml.json")
    assert status == 404


def _schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    return {**schema, "components": document["components"]}


def test_responses_match_the_openapi_description(site: RunningSite) -> None:
    document = get_json(site, "/api/openapi.json")
    assert document["openapi"].startswith("3.1")
    cases = {
        "/api/v1/images": "/api/v1/images",
        "/api/v1/images/{name}": "/api/v1/images/static",
        "/api/v1/images/{name}/tags/{tag}": "/api/v1/images/static/tags/latest",
        "/api/v1/images/{name}/tags/{tag}/packages": "/api/v1/images/static/tags/latest/packages",
        "/api/v1/images/{name}/tags/{tag}/vulnerabilities": (
            "/api/v1/images/static/tags/latest/vulnerabilities"
        ),
        "/api/v1/images/{name}/tags/{tag}/provenance": (
            "/api/v1/images/static/tags/latest/provenance"
        ),
        "/api/v1/images/{name}/diff": "/api/v1/images/static/diff",
        "/api/v1/advisories": "/api/v1/advisories",
    }
    assert set(cases) <= set(document["paths"])
    for template, path in cases.items():
        schema = _schema(document, template)
        # $ref into components: resolve against the document itself
        jsonschema.validate(get_json(site, path), schema)
    # a change the description does not allow is caught (the check is not vacuous)
    broken = get_json(site, "/api/v1/images")
    broken["images"][0]["digest"] = "md5:0"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _schema(document, "/api/v1/images"))


def test_start_up_warms_the_scans(published: Published, tmp_path: Path) -> None:
    """warm() scans every image once: afterwards the pages need the database no more
    (it is removed here, and the counts stay what they were, not an empty DB's zeros)."""
    db = tmp_path / "vuln.db"
    shutil.copy(published.db, db)
    store = Store(published.store)
    site = Site(SiteConfig(published.store, str(db)), store, Evidence(store, db=str(db)))
    warm(site)
    db.unlink()
    dev = next(image for image in store.images() if image.variant == "dev")
    counts = site.summary(dev)["cves"]
    assert counts is not None
    assert sum(counts.values()) > 0
    assert not db.exists()  # nothing reopened (and so recreated) the database
