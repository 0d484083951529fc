"""CVE counts of catalog images: each built image is scanned as ``kiln scan LAYOUT``
does, against kiln's database (no network in the scan). A real image (tree, Debian 13,
locked today and built from verified .debs) and a database holding a Debian Security
Tracker export written here for tree's source package: one open CVE, one fixed in a
newer version (fixable), one fixed in an older one (not counted). Without a database
the counts stay unknown and say why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.factory.catalogbuild import build_and_test, jobs_for, plan, status_rows

ROOT = Path(__file__).resolve().parents[2]


def _tracker(path: Path) -> Path:
    release = {"repositories": {"trixie": "2.2.1-1"}, "urgency": "not yet assigned"}
    export = {
        "tree": {
            "CVE-2099-0001": {"releases": {"trixie": {**release, "status": "open"}}},
            "CVE-2099-0002": {
                "releases": {"trixie": {**release, "status": "resolved", "fixed_version": "99.0-1"}}
            },
            "CVE-2099-0003": {
                "releases": {"trixie": {**release, "status": "resolved", "fixed_version": "0.1-1"}}
            },
        }
    }
    path.write_text(json.dumps(export))
    return path


@pytest.mark.network
@pytest.mark.slow
def test_built_images_carry_open_and_fixable_cve_counts(
    tmp_path: Path,
    own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "vuln.db"
    monkeypatch.setenv("KILN_DB", str(db))
    feed = [
        "db",
        "update",
        "--source",
        "debian-tracker",
        "--from",
        str(_tracker(tmp_path / "t.json")),
    ]
    assert main(feed) == 0, capsys.readouterr().err

    found = plan(ROOT, None, names=["tree"])
    (job,) = jobs_for(
        tmp_path / "state", found.images, run_tests=False, variants={"tree": ["runtime"]}
    )
    outcome = build_and_test(job)
    assert not outcome.error, outcome.error
    (image,) = outcome.variants
    assert (image.cves, image.cves_fixable) == (2, 1), image.scan
    assert image.scan.startswith("scanned with debian-tracker 20"), image.scan

    rows = {r.name: r for r in status_rows(tmp_path / "state", found.images)}
    assert (rows["tree"].cves, rows["tree"].cves_fixable) == (2, 1)
    assert rows["tree-dev"].cves is None  # not built
    assert json.loads(json.dumps(rows["tree"].to_dict()))["cves_fixable"] == 1

    assert not image.scan_cached
    # the same image against the same database file: the scan is remembered, not rerun
    same = build_and_test(job)
    (image,) = same.variants
    assert image.scan_cached
    assert (image.cves, image.cves_fixable) == (2, 1), image.scan
    # a database update rewrites the file: a new scan (the tracker now fixes the open one)
    export = json.loads((tmp_path / "t.json").read_text())
    fixed = {"status": "resolved", "fixed_version": "99.0-1"}
    export["tree"]["CVE-2099-0001"]["releases"]["trixie"].update(fixed)
    (tmp_path / "t.json").write_text(json.dumps(export))
    assert main(feed) == 0, capsys.readouterr().err
    updated = build_and_test(job)
    (image,) = updated.variants
    assert not image.scan_cached
    assert (image.cves, image.cves_fixable) == (2, 2), image.scan

    # without a database the counts are unknown, not zero (the layout comes from the cache)
    monkeypatch.setenv("KILN_DB", str(tmp_path / "none.db"))
    again = build_and_test(job)
    (image,) = again.variants
    assert image.layout_cache_hit
    assert image.cves is None
    assert image.cves_fixable is None
    assert "no vulnerability database" in image.scan
    assert not (tmp_path / "none.db").exists()  # not created by the scan
