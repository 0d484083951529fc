"""The site in a real browser: Debian's chromium driven by Playwright (sync API).

catalog -> image -> tag -> vulnerabilities -> provenance -> diff, reading the numbers
off the rendered pages and comparing them with ``kiln scan`` and ``kiln verify`` run on
the same reference; then every page again at a phone's width. Screenshots are saved in
the test's tmp dir (pytest keeps the last runs' under its basetemp).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.cli.main import main
from site_web.conftest import Published, RunningSite
from site_web.test_api import kiln_scan

pytestmark = pytest.mark.network

CHROMIUM = "/usr/bin/chromium"

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _number(page: Any, selector: str) -> int:
    return int(page.locator(selector).inner_text().strip())


def test_catalog_to_diff_numbers_equal_the_cli(
    browser: Any,
    published: Published,
    site: RunningSite,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def on_dialog(dialog: Any) -> None:  # an alert() would mean injected script ran
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    visited: list[str] = []

    page.goto(site.url + "/")
    page.screenshot(path=tmp_path / "1-catalog.png", full_page=True)
    rows = page.locator("#catalog tbody tr")
    assert rows.count() == 2
    page.get_by_role("link", name="static-dev", exact=True).click()
    page.wait_for_url("**/images/static")
    visited.append(page.url)
    assert page.locator(".from-line").first.inner_text() == f"FROM {site.host}/kiln/static:latest"
    page.screenshot(path=tmp_path / "2-image.png", full_page=True)

    page.locator("section[data-variant=dev] .tags a", has_text="latest-dev").click()
    page.wait_for_url("**/images/static/tags/latest-dev")
    visited.append(page.url)
    page.screenshot(path=tmp_path / "3-tag.png", full_page=True)

    # vulnerabilities: every number equals kiln scan's summary, the command is the one run
    page.locator("#to-vulnerabilities").click()
    page.wait_for_url("**/vulnerabilities")
    visited.append(page.url)
    page.screenshot(path=tmp_path / "4-vulnerabilities.png", full_page=True)
    report = kiln_scan(site, published, "latest-dev", tmp_path / "dev.json")
    summary = report["summary"]
    command = page.locator("#scan-command").inner_text().strip()
    assert command == (
        f"kiln scan {site.host}/kiln/static:latest-dev --platform linux/amd64 "
        f"--key kiln.pub --db {published.db}"
    )
    assert _number(page, "#total") == summary["total"] > 0
    for severity, count in summary["by_severity"].items():
        assert _number(page, f"[data-severity={severity}]") == count, severity
    assert _number(page, "#fixable") == summary["fix_available"]
    assert _number(page, "#not-affected") == summary["by_status"]["not_affected"] == 1
    assert page.locator("#findings tbody tr").count() == len(report["findings"])
    # each number's row names where the JSON report has it: follow the path
    for row in page.locator("#summary tbody tr").all():
        value: Any = report
        for key in row.locator("code").inner_text().strip(".").split("."):
            value = value[key]
        assert int(row.locator("td.num").inner_text()) == value
    assert page.locator("#json-command").inner_text().strip() == f"{command} --format json"
    # the hostile feed description is on the page as text, and nothing ran
    titles = page.locator("#findings td.title").all_inner_texts()
    assert any('<script>alert("feed")</script>' in t for t in titles)
    assert dialogs == []

    # provenance: the verdict and every check equal kiln verify's
    page.go_back()
    page.locator("#to-provenance").click()
    page.wait_for_url("**/provenance")
    visited.append(page.url)
    page.screenshot(path=tmp_path / "5-provenance.png", full_page=True)
    capsys.readouterr()
    reference = f"{site.host}/kiln/static:latest-dev"
    assert main(["verify", reference, "--key", str(published.public_key)]) == 0
    printed = capsys.readouterr().out.splitlines()
    verdict = page.locator("#verdict").inner_text()
    assert "verified" in verdict
    assert "not verified" not in verdict
    assert printed[0].endswith(verdict.split("with key ")[1].strip())
    checks = [c.strip() for c in page.locator("#checks li").all_inner_texts()]
    assert checks == [line.strip() for line in printed[1:]]
    assert (
        page.locator("#verify-command")
        .inner_text()
        .strip()
        .endswith(f"kiln verify {reference} --key kiln.pub")
    )

    # diff latest-dev -> latest: the CVEs fixed are those kiln scan finds in one and not
    # the other; the size change is the difference of the two compressed sizes
    page.go_back()
    page.locator(".diff-link", has_text="latest").first.click()
    page.wait_for_url("**/diff?*")
    visited.append(page.url)
    page.screenshot(path=tmp_path / "6-diff.png", full_page=True)
    runtime = kiln_scan(site, published, "latest", tmp_path / "runtime.json")

    def active(scan: dict[str, Any]) -> set[str]:
        return {f["id"] for f in scan["findings"] if f["status"] != "not_affected"}

    assert _number(page, "#fixed") == len(active(report) - active(runtime)) > 0
    assert _number(page, "#introduced") == len(active(runtime) - active(report))
    assert _number(page, "#removed") == report["package_count"] - runtime["package_count"]
    assert _number(page, "#size-change") < 0
    assert dialogs == []

    # the catalog's counts are the same scan's
    page.goto(site.url + "/")
    row = page.locator("tr[data-image=static-dev]")
    assert int(row.locator("td.cves a").inner_text()) == summary["total"]
    expected = ", ".join(f"{n} {sev}" for sev, n in summary["by_severity"].items() if n)
    assert row.locator(".severities").inner_text().strip() == expected
    page.close()

    # a phone's width: no page scrolls sideways (wide tables scroll inside their box)
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2
    )
    small = phone.new_page()
    for number, url in enumerate([site.url + "/", *visited], start=1):
        small.goto(url)
        overflow = small.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{url} is {overflow}px wider than the phone"
        small.screenshot(path=tmp_path / f"phone-{number}.png", full_page=True)
    phone.close()
    assert len(list(tmp_path.glob("*.png"))) == 6 + 6
