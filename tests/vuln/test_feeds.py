"""Feed parsers on the shared real data and on hostile inputs."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kiln.vuln.feeds import (
    DebianChangelogFeed,
    DebianTrackerFeed,
    EpssFeed,
    Feed,
    FeedFormatError,
    FeedInput,
    FeedWarning,
    KevFeed,
    OsvFeed,
    fixes_from_changelog,
    from_bytes,
    from_path,
    parse_osv,
)
from kiln.vuln.model import (
    ChangelogFix,
    EpssRecord,
    FeedRecord,
    KevRecord,
    OsvRecord,
    TrackerStatus,
)

from .conftest import vulndata


def _records(feed: Feed, source: FeedInput) -> tuple[list[FeedRecord], list[FeedWarning]]:
    items = list(feed.records(source))
    return [i for i in items if not isinstance(i, FeedWarning)], [
        i for i in items if isinstance(i, FeedWarning)
    ]


def test_tracker_sample_statuses_are_read_per_release() -> None:
    recs, warnings = _records(
        DebianTrackerFeed(), from_path(vulndata("debian-tracker-json/debian.json"))
    )
    assert not warnings
    by_key = {(r.source, r.cve, r.release): r for r in recs if isinstance(r, TrackerStatus)}
    never = by_key[("prototypejs", "CVE-2007-2383", "buster")]
    assert (never.status, never.fixed_version, never.urgency) == ("resolved", "0", "unimportant")
    fixed = by_key[("chromium", "CVE-2022-0456", "bookworm")]
    assert (fixed.status, fixed.fixed_version) == ("resolved", "98.0.4758.80-1")
    eol = by_key[("chromium", "CVE-2022-0456", "buster")]
    assert (eol.status, eol.fixed_version, eol.urgency) == ("open", None, "end-of-life")
    # "releases": [] (chromium-browser) yields nothing rather than failing
    assert not [r for r in recs if isinstance(r, TrackerStatus) and r.source == "chromium-browser"]
    description = by_key[("txt2man", "CVE-2013-1444", "sid")].description
    assert description is not None
    assert description.startswith("A certain Debian patch")


def test_truncated_tracker_export_names_file_offset_and_package(tmp_path: Path) -> None:
    data = vulndata("debian-tracker-json/debian.json").read_bytes()
    cut = tmp_path / "debian.json"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeedFormatError) as err:
        _records(DebianTrackerFeed(), from_path(cut))
    text = str(err.value)
    assert str(cut) in text
    assert "near byte" in text
    assert "after source package 'prototypejs'" in text  # the last complete one
    assert "premature EOF" in text


def test_tracker_rejects_a_non_object_and_bad_status(tmp_path: Path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(FeedFormatError, match="top level must be a JSON object"):
        _records(DebianTrackerFeed(), from_path(listing))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"zlib": {"CVE-2022-37434": {"releases": {"bookworm": {"status": "maybe"}}}}})
    )
    with pytest.raises(FeedFormatError) as err:
        _records(DebianTrackerFeed(), from_path(bad))
    assert "zlib.CVE-2022-37434.releases.bookworm.status" in str(err.value)


def test_tracker_nodsa_fields_are_kept() -> None:
    doc = {
        "openssh": {
            "CVE-2023-0001": {
                "description": "x",
                "releases": {
                    "bookworm": {
                        "status": "open",
                        "repositories": {"bookworm": "1:9.2p1-2"},
                        "urgency": "low",
                        "nodsa": "Minor issue",
                        "nodsa_reason": "postponed",
                    }
                },
            }
        }
    }
    recs, _ = _records(DebianTrackerFeed(), from_bytes("mem.json", json.dumps(doc).encode()))
    assert recs == [
        TrackerStatus(
            "openssh",
            "CVE-2023-0001",
            "bookworm",
            "open",
            None,
            "low",
            "Minor issue",
            "postponed",
            "x",
        )
    ]


def test_changelog_first_version_naming_a_cve_fixes_it() -> None:
    path = vulndata("debian-changelog-cves/changelogs/openssl.changelog.Debian")
    fixes = {f.cve: f for f in fixes_from_changelog(path.read_bytes(), str(path))}
    index = json.loads(
        vulndata("debian-changelog-cves/bookworm_changelog_cve_index.json").read_text()
    )
    entry = next(e for e in index if e["source"] == "openssl")
    expected: dict[str, str] = {}
    for block in reversed(entry["entries"]):  # oldest first
        for cve in block["cves"]:
            expected.setdefault(cve, block["version"])
    assert {c: f.version for c, f in fixes.items()} == expected
    assert all(f.source == "openssl" for f in fixes.values())


def test_changelog_directory_feed_covers_every_file() -> None:
    recs, warnings = _records(
        DebianChangelogFeed(), from_path(vulndata("debian-changelog-cves/changelogs"))
    )
    assert not warnings
    rows = [
        json.loads(line)
        for line in vulndata("debian-changelog-cves/bookworm_changelog_cve_rows.jsonl")
        .read_text()
        .splitlines()
    ]
    assert {(r["source"], r["cve"]) for r in rows} == {
        (r.source, r.cve) for r in recs if isinstance(r, ChangelogFix)
    }


def test_changelog_from_a_deb(tmp_path: Path) -> None:
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        pytest.skip("dpkg-deb is not installed")
    import subprocess

    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: libdemo1\nVersion: 1.0-2\nArchitecture: all\nMaintainer: A <a@example.org>\n"
        "Source: demo\nDescription: demo\n"
    )
    doc = pkg / "usr/share/doc/libdemo1"
    doc.mkdir(parents=True)
    changelog = (
        "demo (1.0-2) unstable; urgency=high\n\n  * Fix CVE-2024-1111.\n\n"
        " -- A <a@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n\n"
        "demo (1.0-1) unstable; urgency=low\n\n  * Initial release.\n\n"
        " -- A <a@example.org>  Sun, 31 Dec 2023 00:00:00 +0000\n"
    )
    (doc / "changelog.Debian.gz").write_bytes(gzip.compress(changelog.encode()))
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(
        [dpkg_deb, "--build", "--root-owner-group", str(pkg), str(debs / "libdemo1_1.0-2_all.deb")],
        check=True,
        capture_output=True,
    )
    recs, _ = _records(DebianChangelogFeed(), from_path(debs))
    assert recs == [ChangelogFix("demo", "CVE-2024-1111", "1.0-2", "unstable")]
    # kiln's download cache: blobs named by their sha256, .debs beside Packages indexes
    import hashlib

    cache = tmp_path / "cache" / "sha256"
    cache.mkdir(parents=True)
    deb_bytes = (debs / "libdemo1_1.0-2_all.deb").read_bytes()
    (cache / hashlib.sha256(deb_bytes).hexdigest()).write_bytes(deb_bytes)
    index = b"Package: libdemo1\nVersion: 1.0-2\n"
    (cache / hashlib.sha256(index).hexdigest()).write_bytes(index)
    recs, warnings = _records(DebianChangelogFeed(), from_path(cache))
    assert recs == [ChangelogFix("demo", "CVE-2024-1111", "1.0-2", "unstable")]
    assert warnings == []


def test_changelog_garbage_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "changelogs"
    d.mkdir()
    (d / "evil.changelog.Debian").write_text("this is not\na changelog at all\n")
    with pytest.raises(FeedFormatError) as err:
        _records(DebianChangelogFeed(), from_path(d))
    assert "evil.changelog.Debian" in str(err.value)


def test_osv_pypi_yaml_requests_record() -> None:
    path = vulndata("osv-pypi-2024/vulns/requests/PYSEC-2018-28.yaml")
    rec, warnings = parse_osv(path.read_bytes(), str(path))
    assert not warnings
    assert rec.aliases == ("CVE-2018-18074", "GHSA-x84v-xcm2-53pg")
    (aff,) = rec.affected
    assert (aff.ecosystem, aff.package) == ("PyPI", "requests")
    assert [r.type for r in aff.ranges] == ["GIT", "ECOSYSTEM"]
    assert "2.19.0" in aff.versions
    assert "0.12.01" in aff.versions


def test_osv_invalid_ranges_are_skipped_with_a_warning(tmp_path: Path) -> None:
    doc = {
        "id": "TEST-1",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "not a version!"}],
                    },
                    {"type": "ECOSYSTEM", "events": [{"fixed": "1.0"}]},
                    {"type": "SEMVER", "events": [{"introduced": "0", "fixed": "1.0.0"}]},
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]},
                ],
            }
        ],
    }
    path = tmp_path / "TEST-1.json"
    path.write_text(json.dumps(doc))
    recs, warnings = _records(OsvFeed(), from_path(path))
    (rec,) = recs
    assert isinstance(rec, OsvRecord)
    assert rec.affected[0].package == "demo-pkg"  # PEP 503
    assert len(rec.affected[0].ranges) == 1
    assert [w.location.field for w in warnings] == [
        "affected[0].ranges[0]",
        "affected[0].ranges[1]",
        "affected[0].ranges[2]",
    ]
    assert "not a PEP 440 version" in warnings[0].message
    assert "no 'introduced'" in warnings[1].message
    assert "exactly one key" in warnings[2].message


def test_osv_structural_errors_name_file_and_field(tmp_path: Path) -> None:
    d = tmp_path / "osv"
    d.mkdir()
    (d / "A.json").write_text(
        json.dumps({"id": "A", "modified": "x", "affected": [{"package": {"name": "x"}}]})
    )
    with pytest.raises(FeedFormatError) as err:
        _records(OsvFeed(), from_path(d))
    assert "A.json" in str(err.value)
    assert "affected.0.package.ecosystem" in str(err.value)
    (d / "A.json").unlink()
    (d / "B.yaml").write_text("id: B\nmodified: x\naffected: [\n  - oops: {\n")
    with pytest.raises(FeedFormatError) as err2:
        _records(OsvFeed(), from_path(d))
    assert "B.yaml" in str(err2.value)
    assert "malformed YAML" in str(err2.value)
    assert err2.value.location is not None
    assert err2.value.location.line is not None


def test_osv_zip_input(tmp_path: Path) -> None:
    import zipfile

    z = tmp_path / "npm.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(vulndata("osv-npm-sample/osv").iterdir()):
            zf.write(p, p.name)
    recs, _ = _records(OsvFeed(), from_path(z))
    assert len(recs) == 17
    assert {r.id for r in recs if isinstance(r, OsvRecord)} >= {
        "GHSA-35jh-r3h4-6jhm",
        "GHSA-p6mc-m468-83gw",
    }


def test_kev_catalog(tmp_path: Path) -> None:
    doc: dict[str, Any] = {
        "title": "CISA Catalog",
        "catalogVersion": "2024.01.01",
        "count": 1,
        "vulnerabilities": [
            {
                "cveID": "CVE-2021-44228",
                "vendorProject": "Apache",
                "product": "Log4j2",
                "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability",
                "dateAdded": "2021-12-10",
                "shortDescription": "...",
                "requiredAction": "...",
                "dueDate": "2021-12-24",
                "knownRansomwareCampaignUse": "Known",
                "notes": "",
            }
        ],
    }
    p = tmp_path / "kev.json"
    p.write_text(json.dumps(doc))
    recs, _ = _records(KevFeed(), from_path(p))
    assert recs == [
        KevRecord(
            "CVE-2021-44228",
            "Apache",
            "Log4j2",
            "Apache Log4j2 Remote Code Execution Vulnerability",
            "2021-12-10",
            "2021-12-24",
            "Known",
        )
    ]
    doc["vulnerabilities"][0]["cveID"] = "log4shell"
    p.write_text(json.dumps(doc))
    with pytest.raises(FeedFormatError) as err:
        _records(KevFeed(), from_path(p))
    assert "vulnerabilities.0.cveID" in str(err.value)


def test_epss_csv_gz_and_bad_line(tmp_path: Path) -> None:
    text = (
        "#model_version:v2023.03.01,score_date:2024-10-10T00:00:00+0000\n"
        "cve,epss,percentile\nCVE-2018-18074,0.00591,0.78\n"
    )
    p = tmp_path / "epss.csv.gz"
    p.write_bytes(gzip.compress(text.encode()))
    recs, _ = _records(EpssFeed(), from_path(p))
    (rec,) = recs
    assert isinstance(rec, EpssRecord)
    assert (rec.cve, rec.epss) == ("CVE-2018-18074", 0.00591)
    bad = tmp_path / "bad.csv"
    bad.write_text(text + "CVE-2020-0001,lots,0.5\n")
    with pytest.raises(FeedFormatError) as err:
        _records(EpssFeed(), from_path(bad))
    assert err.value.location is not None
    assert err.value.location.line == 4


@pytest.mark.parametrize(
    "payload",
    [
        b"!<arch>\n" + b"garbage" * 10,  # ar magic, then no valid member header
        b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n",
    ],
)
def test_changelog_from_a_hostile_deb_names_the_file(tmp_path: Path, payload: bytes) -> None:
    """A broken .deb is read by kiln's checked reader: a clear error naming the file."""
    bad = tmp_path / "evil_1.0_all.deb"
    bad.write_bytes(payload)
    with pytest.raises(FeedFormatError) as err:
        _records(DebianChangelogFeed(), from_path(bad))
    assert "evil_1.0_all.deb" in str(err.value)
    assert "not a readable .deb" in str(err.value)


def test_an_osv_yaml_record_with_anchors_or_aliases_is_refused_at_its_line() -> None:
    """PyYAML's base loader accepted a few hundred bytes of nested aliases that stand
    for hundreds of millions of nodes once validated."""
    from kiln.vuln.feeds.osv import parse_osv

    bomb = b"id: X-1\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
    with pytest.raises(FeedFormatError, match=r"anchors and aliases are not accepted \(&a\)"):
        parse_osv(bomb, "bomb.yaml")
    # text that merely contains & or * is still read
    record, _ = parse_osv(
        b"id: GHSA-x\nsummary: 'a & b * c'\naffected: []\nmodified: '2024-01-01T00:00:00Z'\n",
        "plain.yaml",
    )
    assert record.id == "GHSA-x"
