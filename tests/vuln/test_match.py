"""The pure matcher: Debian tracker/changelog rules, OSV ranges, aliases, severity, order."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest
from packaging.version import Version

from kiln.vuln.db import Held, SqliteReader, VulnData, VulnDB, open_for_scan
from kiln.vuln.match import (
    Candidate,
    DebianMatcher,
    MatchContext,
    Matcher,
    OsvMatcher,
    match_packages,
    range_affects,
)
from kiln.vuln.model import (
    ChangelogFix,
    Finding,
    FindingStatus,
    KevRecord,
    NvdRecord,
    OsvEvent,
    OsvRange,
    PackageLike,
    Severity,
    TrackerStatus,
)

from .conftest import deb, npm, pypi, vulndata

BOOKWORM = MatchContext(release="bookworm", debian_version="12")


def _tracker(*rows: TrackerStatus) -> VulnData:
    by: dict[str, list[Held[TrackerStatus]]] = {}
    for r in rows:
        by.setdefault(r.source, []).append(Held(r, 1))
    return VulnData(tracker={k: tuple(v) for k, v in by.items()})


@pytest.mark.parametrize(
    ("row", "installed", "expected"),
    [
        (
            TrackerStatus(
                "zlib", "CVE-1", "bookworm", "resolved", "1:1.2.13.dfsg-1+deb12u1", "high"
            ),
            "1:1.2.13.dfsg-1",
            (FindingStatus.FIXED, "1:1.2.13.dfsg-1+deb12u1", "tracker:resolved(source)"),
        ),
        (
            TrackerStatus("zlib", "CVE-1", "bookworm", "resolved", "1:1.2.13.dfsg-1", "high"),
            "1:1.2.13.dfsg-1",
            None,
        ),  # installed == fixed
        (
            TrackerStatus("zlib", "CVE-1", "bookworm", "resolved", "0", "unimportant"),
            "1:1.2.13.dfsg-1",
            None,
        ),  # never affected
        (
            TrackerStatus("zlib", "CVE-1", "bookworm", "open", None, "medium"),
            "1:1.2.13.dfsg-1",
            (FindingStatus.OPEN, None, "tracker:open(source)"),
        ),
        (
            TrackerStatus(
                "zlib", "CVE-1", "bookworm", "open", None, "low", "Minor issue", "ignored"
            ),
            "1:1.2.13.dfsg-1",
            (FindingStatus.WONT_FIX, None, "tracker:open:no-dsa:ignored(source)"),
        ),
        (
            TrackerStatus("zlib", "CVE-1", "bookworm", "open", None, "end-of-life"),
            "1:1.2.13.dfsg-1",
            (FindingStatus.WONT_FIX, None, "tracker:open:end-of-life(source)"),
        ),
        (
            TrackerStatus("zlib", "CVE-1", "bookworm", "undetermined", None, None),
            "1:1.2.13.dfsg-1",
            (FindingStatus.OPEN, None, "tracker:undetermined(source)"),
        ),
        (
            TrackerStatus("zlib", "CVE-1", "trixie", "open", None, "high"),
            "1:1.2.13.dfsg-1",
            None,
        ),  # another release
        (
            TrackerStatus("zlib", "CVE-1", "bookworm", "resolved", "1:1.2.13~rc1-1", "high"),
            "1:1.2.13.dfsg-1",
            None,
        ),  # tilde sorts before: already fixed
    ],
)
def test_tracker_statuses(
    row: TrackerStatus, installed: str, expected: tuple[FindingStatus, str | None, str] | None
) -> None:
    findings = match_packages([deb("zlib1g", installed, "zlib")], _tracker(row), context=BOOKWORM)
    if expected is None:
        assert findings == ()
        return
    (f,) = findings
    assert (f.status, f.fixed_version, f.matches[0].rule) == expected
    assert f.matches[0].searched_package == "zlib"
    assert f.matches[0].namespace == "debian:bookworm"


def test_tracker_sample_from_the_database(loaded_db: VulnDB) -> None:
    pkgs = [deb("chromium", "90.0.4430.212-1", "chromium"), deb("txt2man", "1.5.5-4", "txt2man")]
    ctx = MatchContext(release="bullseye", debian_version="11")
    data = loaded_db.load(debian_sources=["chromium", "txt2man"], release="bullseye")
    ids = {
        (f.package_name, f.id, f.status, f.fixed_version)
        for f in match_packages(pkgs, data, context=ctx)
    }
    assert ids == {("chromium", "CVE-2022-0456", FindingStatus.FIXED, "98.0.4758.80-1~deb11u1")}


def test_old_bookworm_versions_get_the_cves_fixed_since_from_changelogs(loaded_db: VulnDB) -> None:
    pkgs = [deb("libssl3", "3.0.11-1~deb12u2", "openssl"), deb("libexpat1", "2.5.0-1", "expat")]
    data = loaded_db.load(debian_sources=["openssl", "expat"], release="bookworm")
    findings = match_packages(pkgs, data, context=BOOKWORM)
    rows = [
        json.loads(x)
        for x in vulndata("debian-changelog-cves/bookworm_changelog_cve_rows.jsonl")
        .read_text()
        .splitlines()
    ]
    from kiln.debian.version import compare_versions

    first: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["source"], r["cve"])
        if key not in first or compare_versions(r["version"], first[key]) < 0:
            first[key] = r["version"]
    installed = {"openssl": "3.0.11-1~deb12u2", "expat": "2.5.0-1"}
    expected = {
        (s, c, v)
        for (s, c), v in first.items()
        if s in installed and compare_versions(installed[s], v) < 0
    }
    got = {(f.source_name, f.id, f.fixed_version) for f in findings}
    assert got == expected
    assert ("openssl", "CVE-2024-5535", "3.0.15-1~deb12u1") in got
    assert all(
        f.status is FindingStatus.FIXED and f.matches[0].feed == "debian-changelog"
        for f in findings
    )


def test_changelog_fact_overrides_open_tracker_status() -> None:
    data = VulnData(
        tracker={
            "expat": (Held(TrackerStatus("expat", "CVE-9", "bookworm", "open", None, "low"), 1),)
        },
        changelog={
            "expat": (Held(ChangelogFix("expat", "CVE-9", "2.5.0-1+deb12u1", "bookworm"), 2),)
        },
    )
    (f,) = match_packages([deb("libexpat1", "2.5.0-1", "expat")], data, context=BOOKWORM)
    assert (f.status, f.fixed_version, f.matches[0].snapshot_id) == (
        FindingStatus.FIXED,
        "2.5.0-1+deb12u1",
        2,
    )
    assert (
        match_packages([deb("libexpat1", "2.5.0-1+deb12u1", "expat")], data, context=BOOKWORM) == ()
    )


def test_requests_2_19_0_is_cve_2018_18074_with_aliases_merged(loaded_db: VulnDB) -> None:
    data = loaded_db.load(osv_keys=[("PyPI", "requests")])
    findings = match_packages([pypi("requests", "2.19.0")], data, context=MatchContext())
    f = next(f for f in findings if f.id == "CVE-2018-18074")
    assert set(f.aliases) == {"PYSEC-2018-28", "GHSA-x84v-xcm2-53pg"}
    assert (f.status, f.fixed_version, f.matches[0].rule) == (
        FindingStatus.FIXED,
        "2.20.0",
        "osv:ECOSYSTEM",
    )
    assert len([x for x in findings if "PYSEC-2018-28" in x.ids]) == 1
    assert match_packages([pypi("requests", "2.20.0")], data, context=MatchContext()) == () or all(
        x.id != "CVE-2018-18074"
        for x in match_packages([pypi("requests", "2.20.0")], data, context=MatchContext())
    )


def test_lodash_4_17_15_gets_its_ghsas(loaded_db: VulnDB) -> None:
    data = loaded_db.load(osv_keys=[("npm", "lodash")])
    findings = match_packages([npm("lodash", "4.17.15")], data, context=MatchContext())
    ghsas = {a for f in findings for a in f.ids if a.startswith("GHSA-")}
    # From the advisories' own ranges (ghsa_npm_compact.tsv): those not fixed by 4.17.15.
    expected = set()
    for line in vulndata("osv-npm-sample/ghsa_npm_compact.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        if cols[2] != "lodash":
            continue
        fixed = [r.split("=>")[1] for r in cols[8].split("; ") if "=>" in r]
        if any(Version(x) > Version("4.17.15") for x in fixed):
            expected.add(cols[0])
    assert (
        ghsas == expected == {"GHSA-p6mc-m468-83gw", "GHSA-35jh-r3h4-6jhm", "GHSA-29mw-wpgm-hmr9"}
    )
    assert all(f.id.startswith("CVE-") for f in findings)


def test_osv_range_semantics() -> None:
    rng = OsvRange(
        "ECOSYSTEM",
        (
            OsvEvent(introduced="1.0"),
            OsvEvent(fixed="1.5"),
            OsvEvent(introduced="2.0"),
            OsvEvent(last_affected="2.2"),
        ),
    )
    cases = {
        "0.9": False,
        "1.0": True,
        "1.4.9": True,
        "1.5": False,
        "1.5rc1": True,
        "2.0.dev1": False,
        "2.2": True,
        "2.2.1": False,
    }
    for version, hit in cases.items():
        assert range_affects(rng, "PyPI", version)[0] is hit, version
    assert range_affects(rng, "PyPI", "1.2") == (True, "1.5")
    assert range_affects(rng, "PyPI", "2.1") == (True, None)
    semver = OsvRange("SEMVER", (OsvEvent(introduced="0"), OsvEvent(fixed="1.2.0")))
    assert range_affects(semver, "npm", "1.2.0-beta.1") == (
        True,
        "1.2.0",
    )  # pre-release sorts before
    assert range_affects(semver, "npm", "1.10.0")[0] is False  # numeric, not lexical
    git = OsvRange("GIT", (OsvEvent(introduced="0"), OsvEvent(fixed="abc123")))
    assert range_affects(git, "PyPI", "1.0") == (False, None)


def test_pep440_range_evaluation_agrees_with_packaging(loaded_db: VulnDB) -> None:
    """Every listed requests version: in the range iff packaging says < 2.20.0."""
    path = vulndata("osv-pypi-2024/vulns/requests/PYSEC-2018-28.yaml")
    from kiln.vuln.feeds import parse_osv

    rec, _ = parse_osv(path.read_bytes(), str(path))
    eco = next(r for r in rec.affected[0].ranges if r.type == "ECOSYSTEM")
    versions = [*rec.affected[0].versions, "2.20.0", "2.20.0rc1", "2.19.1.post1", "3.0", "2.9.10"]
    for v in versions:
        assert range_affects(eco, "PyPI", v)[0] is (Version(v) < Version("2.20.0")), v


def test_severity_precedence_kev_and_epss() -> None:
    base = TrackerStatus("zlib", "CVE-2022-37434", "bookworm", "open", None, "low")
    nvd = NvdRecord(
        "CVE-2022-37434",
        "2024-01-01",
        "heap overflow",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        9.8,
        None,
        None,
        ("CWE-787",),
        (),
    )
    data = VulnData(tracker={"zlib": (Held(base, 1),)})
    (f,) = match_packages([deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")], data, context=BOOKWORM)
    assert (f.severity, f.severity_source, f.kev) == (Severity.LOW, "debian-tracker", False)
    data2 = VulnData(
        tracker=data.tracker,
        nvd={nvd.cve: nvd},
        kev={nvd.cve: KevRecord(nvd.cve, "zlib", "zlib", "x", "2024-01-01", None, None)},
    )
    (g,) = match_packages([deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")], data2, context=BOOKWORM)
    assert (g.severity, g.severity_source, g.cvss_score, g.kev) == (
        Severity.CRITICAL,
        "nvd",
        9.8,
        True,
    )
    assert g.title == "heap overflow"


def test_osv_cvss_vector_is_scored(loaded_db: VulnDB) -> None:
    data = loaded_db.load(osv_keys=[("npm", "lodash")])
    findings = match_packages([npm("lodash", "4.17.15")], data, context=MatchContext())
    cmd = next(f for f in findings if f.id == "CVE-2021-23337")
    assert (cmd.severity, cmd.severity_source, cmd.cvss_score) == (Severity.HIGH, "osv", 7.2)


def test_output_order_is_deterministic(loaded_db: VulnDB) -> None:
    pkgs = [
        npm("lodash", "4.17.15"),
        pypi("requests", "2.19.0"),
        deb("libssl3", "3.0.11-1~deb12u2", "openssl"),
    ]
    data = loaded_db.load(
        debian_sources=["openssl"],
        release="bookworm",
        osv_keys=[("npm", "lodash"), ("PyPI", "requests")],
    )
    first = match_packages(pkgs, data, context=BOOKWORM)
    again = match_packages(list(reversed(pkgs)), data, context=BOOKWORM)
    assert first == again
    assert [f.severity for f in first] == sorted((f.severity for f in first), reverse=True)


def test_dpkg_key_orders_like_dpkg_on_real_versions() -> None:
    """Our fast sort key agrees with python-debian on every pair of real versions from
    the shared changelogs, and with ``dpkg --compare-versions`` on a sample of them."""
    import itertools
    import random
    import shutil
    import subprocess

    from kiln.debian.version import compare_versions
    from kiln.vuln.ecosystems import dpkg_key

    index = json.loads(
        vulndata("debian-changelog-cves/bookworm_changelog_cve_index.json").read_text()
    )
    versions = sorted({e["version"] for p in index for e in p["entries"]})
    versions += [
        "1.0~rc1",
        "1.0",
        "1.0-0",
        "1.0+b1",
        "1:0.9",
        "1.0a",
        "1.0~",
        "1.0~~",
        "1.00",
        "1.0.0",
    ]
    rng = random.Random(5)
    pairs = [tuple(rng.sample(versions, 2)) for _ in range(20000)]
    pairs += list(itertools.combinations(versions[-10:], 2))
    for a, b in pairs:
        want = compare_versions(a, b)
        ka, kb = dpkg_key(a), dpkg_key(b)
        got = (ka > kb) - (ka < kb)
        assert got == want, (a, b)
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return
    for a, b in pairs[:150] + pairs[-45:]:
        lt = subprocess.run([dpkg, "--compare-versions", a, "lt", b], check=False).returncode == 0
        assert lt == (dpkg_key(a) < dpkg_key(b)), (a, b)


def test_osv_debian_records_match_by_source_package() -> None:
    from kiln.vuln.model import OsvAffected, OsvRecord

    rec = OsvRecord(
        id="DSA-5000-1",
        aliases=("CVE-2024-0001",),
        summary="openssl security update",
        details="",
        modified="2024-01-01T00:00:00Z",
        published=None,
        severity=(),
        database_severity=None,
        references=(),
        affected=(
            OsvAffected(
                "Debian:12",
                "openssl",
                (
                    OsvRange(
                        "ECOSYSTEM", (OsvEvent(introduced="0"), OsvEvent(fixed="3.0.13-1~deb12u1"))
                    ),
                ),
                (),
            ),
        ),
    )
    data = VulnData(osv={("Debian:12", "openssl"): (Held(rec, 7),)})
    (f,) = match_packages([deb("libssl3", "3.0.11-1~deb12u2", "openssl")], data, context=BOOKWORM)
    assert (f.id, f.fixed_version, f.matches[0].namespace, f.matches[0].snapshot_id) == (
        "CVE-2024-0001",
        "3.0.13-1~deb12u1",
        "Debian:12",
        7,
    )
    assert (
        match_packages([deb("libssl3", "3.0.13-1~deb12u1", "openssl")], data, context=BOOKWORM)
        == ()
    )


def test_kev_and_epss_feeds_enrich_findings(db: VulnDB, tmp_path: Path) -> None:
    from kiln.vuln.feeds import EpssFeed, KevFeed, OsvFeed, from_path

    db.import_feed(OsvFeed(), from_path(vulndata("osv-npm-sample/osv")))
    kev = tmp_path / "kev.json"
    kev.write_text(
        json.dumps(
            {
                "catalogVersion": "1",
                "vulnerabilities": [
                    {
                        "cveID": "CVE-2021-23337",
                        "vendorProject": "lodash",
                        "product": "lodash",
                        "vulnerabilityName": "x",
                        "dateAdded": "2024-01-01",
                    }
                ],
            }
        )
    )
    db.import_feed(KevFeed(), from_path(kev))
    epss = tmp_path / "epss.csv"
    epss.write_text("cve,epss,percentile\nCVE-2021-23337,0.25,0.97\n")
    db.import_feed(EpssFeed(), from_path(epss))
    data = db.load(osv_keys=[("npm", "lodash")])
    f = next(
        f
        for f in match_packages([npm("lodash", "4.17.15")], data, context=MatchContext())
        if f.id == "CVE-2021-23337"
    )
    assert (f.kev, f.epss) == (True, 0.25)
    assert {s.source for s in data.snapshots} == {"osv", "kev", "epss"}
    reader = open_for_scan(str(db.engine.url))  # what kiln scan reads: the same data
    assert isinstance(reader, SqliteReader)
    assert reader.load(osv_keys=[("npm", "lodash")]) == data
    reader.close()


class _CountingMatcher(DebianMatcher):
    """The Debian matcher, recording which packages it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def match(self, package: PackageLike, data: VulnData, ctx: MatchContext) -> list[Candidate]:
        self.asked.append(package.name)
        return super().match(package, data, ctx)


def test_binaries_of_one_source_are_matched_once_and_each_gets_its_findings() -> None:
    data = _tracker(
        TrackerStatus("openssl", "CVE-1", "bookworm", "resolved", "3.0.13-1~deb12u1", "high"),
        TrackerStatus("openssl", "CVE-2", "bookworm", "open", None, "low"),
    )
    counting = _CountingMatcher()
    pkgs = [
        deb("libssl3", "3.0.11-1~deb12u2", "openssl"),
        deb("openssl", "3.0.11-1~deb12u2"),
        deb("libssl-dev", "3.0.11-1~deb12u2", "openssl"),
        deb("libssl3", "3.0.9-1", "openssl"),  # another version: searched on its own
    ]
    found = match_packages(pkgs, data, context=BOOKWORM, matchers=(counting,))
    assert counting.asked == ["libssl3", "libssl3"]
    assert {(f.package_name, f.package_version, f.id) for f in found} == {
        (p.name, p.version, cve) for p in pkgs for cve in ("CVE-1", "CVE-2")
    }
    for f in found:  # package fields are the package's own, the verdict is shared
        assert f.package_purl == next(
            p.purl for p in pkgs if (p.name, p.version) == (f.package_name, f.package_version)
        )
        assert f.matches[0].searched_package == "openssl"
    # The same findings as matching each package on its own.
    alone = {f for p in pkgs for f in match_packages([p], data, context=BOOKWORM)}
    assert set(found) == alone


def test_the_default_lookup_key_shares_nothing_between_different_packages() -> None:
    a, b = npm("lodash", "4.17.15"), npm("lodash", "4.17.21")
    same_elsewhere = npm("lodash", "4.17.15")
    key = OsvMatcher().lookup_key
    assert key(a, BOOKWORM) != key(b, BOOKWORM)
    assert key(a, BOOKWORM) == key(same_elsewhere, BOOKWORM)
    base = Matcher.lookup_key
    assert base(DebianMatcher(), a, BOOKWORM) != base(DebianMatcher(), b, BOOKWORM)


def test_findings_equal_what_the_finding_constructor_makes() -> None:
    data = _tracker(TrackerStatus("zlib", "CVE-1", "bookworm", "open", None, "medium"))
    (found,) = match_packages([deb("zlib1g", "1:1.2.13.dfsg-1", "zlib")], data, context=BOOKWORM)
    assert not hasattr(Finding, "__post_init__")
    made = Finding(**{f.name: getattr(found, f.name) for f in fields(Finding)})
    assert vars(made) == vars(found)
    assert made == found
    assert hash(made) == hash(found)
    with pytest.raises(FrozenInstanceError):
        found.id = "CVE-2"  # type: ignore[misc]  # assigning to a frozen field is the point
