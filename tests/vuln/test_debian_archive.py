"""The debian-archive feed: changelogs read from a signed fixture archive of five suites.

The fixture has trixie, trixie-updates, trixie-security, sid and experimental, built with
``tests.fixtures.debrepo`` (real .debs, signed Releases, a loopback server that can
tamper). Each source package exercises one real case: a fix in a security update, a fix
only unstable has, a "does not affect" mention, a doc directory that is a symlink to
another binary's, a binNMU, an arch-all-only source, a source absent from a suite, a
changelog that is not gzip.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest

from fixtures.debrepo import (
    REPO_DATE,
    DebSpec,
    GpgKey,
    RepoServer,
    build_repository,
    default_mirror_dir,
)
from kiln.cli.main import main
from kiln.debian.cache import Cache
from kiln.debian.distro import Distro
from kiln.errors import EnvironmentProblem
from kiln.vuln.db import VulnDB
from kiln.vuln.db.read import Held, VulnData
from kiln.vuln.feeds import Archive, DebianArchiveFeed, FeedFormatError, Scope, classify
from kiln.vuln.feeds.changelog_mentions import MAX_ENTRIES, mentions_from_changelog
from kiln.vuln.feeds.debian_archive import SuiteChangelog, derive
from kiln.vuln.match import MatchContext, match_packages
from kiln.vuln.model import ArchiveStatus, FindingStatus, Severity, TrackerStatus
from kiln.vuln.report import FORMATTERS
from kiln.vuln.scan import ScanResult, gate

from .conftest import Pkg

DISTRO = Distro("debian-13", "13", "trixie")
NOW = REPO_DATE + timedelta(hours=1)
SUITES = ("trixie", "trixie-updates", "trixie-security", "sid", "experimental")


def changelog(source: str, entries: Sequence[tuple[str, str]]) -> bytes:
    """A Debian changelog, newest entry first: (version, change lines)."""
    blocks = []
    for version, changes in entries:
        body = "\n".join(f"  {line}" for line in changes.splitlines())
        blocks.append(
            f"{source} ({version}) unstable; urgency=medium\n\n{body}\n\n"
            " -- kiln tests <tests@kiln.invalid>  Thu, 15 Jan 2026 12:00:00 +0000\n"
        )
    return "\n".join(blocks).encode()


def doc(pkg: str, text: bytes, name: str = "changelog.Debian.gz") -> dict[str, bytes]:
    return {f"usr/share/doc/{pkg}/{name}": gzip.compress(text, mtime=0)}


OPENSSL_OLD = [
    ("3.5.1-1", "* New upstream release.\n* Fix CVE-2025-1001 (buffer overflow)."),
    ("3.5.0-1", "* CVE-2025-1000 does not affect this version.\n* New upstream."),
]
OPENSSL_SEC = [("3.5.1-1+deb13u1", "* Fix CVE-2025-1002 in the X.509 parser."), *OPENSSL_OLD]
OPENSSL_SID = [
    ("3.6.0-1", "* New upstream release, fixing CVE-2025-1003 and CVE-2025-1002.\n"
                "* CVE-2025-1004: revert the fix, a regression."),
    *OPENSSL_OLD,
]  # fmt: skip
GCC = [("14.2.0-19", "* Update to the branch."), ("14.2.0-1", "* Initial.")]
GCC_SID = [("14.4.0-3", "* Fix use-after-free in pbds, CVE-2026-2001."), *GCC]
ZLIB = [("1:1.3-1", "* Fix CVE-2022-3001 in inflate.")]
ZLIB_SID = [("1:1.3.1-1", "* New upstream: CVE-2023-3002."), *ZLIB]


def suites() -> dict[str, list[DebSpec]]:
    openssl = "openssl"
    gcc_base = "gcc-14-base"
    return {
        "trixie": [
            DebSpec("libssl3t64", "3.5.1-1", "amd64", source=openssl,
                    files=doc("libssl3t64", changelog(openssl, OPENSSL_OLD))),
            DebSpec("openssl", "3.5.1-1", "amd64",
                    files={**doc("openssl", changelog(openssl, OPENSSL_OLD)),
                           "usr/bin/openssl": b"x" * 5000}),
            # the smallest binary's doc dir points at gcc-14-base's
            DebSpec("libgcc-s1", "14.2.0-19", "amd64", source="gcc-14",
                    symlinks={"usr/share/doc/libgcc-s1": gcc_base}),
            DebSpec(gcc_base, "14.2.0-19", "amd64", source="gcc-14",
                    files={**doc(gcc_base, changelog("gcc-14", GCC)), "x": b"y" * 3000}),
            # a binNMU: the source changelog beside the arch-specific one
            DebSpec("zlib1g", "1:1.3-1+b1", "amd64", source="zlib (1:1.3-1)",
                    files={**doc("zlib1g", changelog("zlib", ZLIB)),
                           **doc("zlib1g", changelog("zlib", [("1:1.3-1+b1", "* Rebuild.")]),
                                 "changelog.Debian.amd64.gz")}),
            DebSpec("tzdata", "2025b-4", files=doc("tzdata", changelog("tzdata", [
                ("2025b-4", "* Update. CVE-2025-4001 is not relevant.")]))),
            DebSpec("badgz", "1.0-1", "amd64",
                    files={"usr/share/doc/badgz/changelog.Debian.gz": b"not gzip at all"}),
        ],
        "trixie-updates": [],
        "trixie-security": [
            DebSpec("libssl3t64", "3.5.1-1+deb13u1", "amd64", source=openssl,
                    files=doc("libssl3t64", changelog(openssl, OPENSSL_SEC))),
        ],
        "sid": [
            DebSpec("libssl3t64", "3.6.0-1", "amd64", source=openssl,
                    files=doc("libssl3t64", changelog(openssl, OPENSSL_SID))),
            DebSpec("libgcc-s1", "14.4.0-3", "amd64", source="gcc-14",
                    symlinks={"usr/share/doc/libgcc-s1": gcc_base}),
            DebSpec(gcc_base, "14.4.0-3", "amd64", source="gcc-14",
                    files={**doc(gcc_base, changelog("gcc-14", GCC_SID)), "x": b"y" * 3000}),
            DebSpec("zlib1g", "1:1.3.1-1", "amd64", source="zlib",
                    files=doc("zlib1g", changelog("zlib", ZLIB_SID))),
            DebSpec("tzdata", "2025b-4", files=doc("tzdata", changelog("tzdata", [
                ("2025b-4", "* Update. CVE-2025-4001 is not relevant.")]))),
        ],
        "experimental": [],
    }  # fmt: skip


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory, debrepo_key: GpgKey) -> Path:
    root = tmp_path_factory.mktemp("archive")
    build_repository(root, suites(), key=debrepo_key, archs=("amd64",))
    return root


@pytest.fixture
def server(archive_root: Path) -> Iterator[RepoServer]:
    with RepoServer(archive_root) as srv:
        yield srv


def make_archive(server: RepoServer, tmp_path: Path, keyring: Path) -> Archive:
    from kiln.net import HttpFetcher, RetryPolicy

    fetcher = HttpFetcher(retry=RetryPolicy(attempts=1), sleep=lambda _s: None)
    return Archive(
        distro=DISTRO,
        cache=Cache(tmp_path / "cache"),
        fetcher=fetcher,
        mirrors={s: f"{server.url}/{default_mirror_dir(s)}" for s in SUITES},
        now=lambda: NOW,
        keyring=keyring,
        workers=2,
    )


def update(
    server: RepoServer, tmp_path: Path, key: GpgKey, names: Sequence[str] | None = None
) -> tuple[VulnDB, list[str]]:
    archive = make_archive(server, tmp_path, key.keyring)
    scope = Scope(frozenset(names) if names else None, "test")
    db = VulnDB.open(str(tmp_path / "vuln.db"))
    result = db.import_feed(DebianArchiveFeed(archive, scope), archive.manifest(scope))
    return db, [str(w) for w in result.warnings]


def statuses(db: VulnDB) -> dict[tuple[str, str], tuple[str, str, str, str]]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT source_package, cve, status, version, suite, confidence"
            " FROM debian_archive_status"
        ).all()
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


# --- the changelog classifier ---------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("* Fix CVE-2024-1 (heap overflow).", "fix"),
        ("* CVE-2024-2 does not affect this version.", "low"),
        ("* Not affected by CVE-2024-3: the code is not built.", "low"),
        ("* Revert the fix for CVE-2024-4, a regression.", "low"),
        ("* Drop the CVE-2024-5 patch, rejected upstream.", "low"),
        ("* CVE-2024-6 is disputed upstream.", "low"),
        ("* Drop patch for CVE-2024-7, applied upstream.", "fix"),
        # a CVE's own description may say "unaffected" or "reject" about the bug
        ("* CVE-2025-8: users of ACLs are unaffected by this overflow.", "fix"),
        ("* d/p/CVE-2026-9.patch: reject URI to path mapping.", "fix"),
    ],
)
def test_classify_common_phrasings(item: str, expected: str) -> None:
    assert classify(item) == expected


def test_the_first_fix_wins_over_an_earlier_not_a_fix_mention() -> None:
    text = changelog(
        "foo",
        [
            ("1.2-1", "* Fix CVE-2024-0001 for real."),
            (
                "1.1-1",
                "* CVE-2024-0001 does not affect this version.\n* CVE-2024-0002 is disputed.",
            ),
        ],
    )
    source, found = mentions_from_changelog(text, "foo")
    assert source == "foo"
    by_cve = {m.cve: m for m in found}
    first, disputed = by_cve["CVE-2024-0001"], by_cve["CVE-2024-0002"]
    assert (first.version, first.confidence) == ("1.2-1", "fix")
    assert first.line == "* Fix CVE-2024-0001 for real."
    assert (disputed.version, disputed.confidence) == ("1.1-1", "low")


def test_a_changelog_of_too_many_entries_is_refused_quickly() -> None:
    text = changelog("foo", [(f"1.{i}-1", "* Change.") for i in range(MAX_ENTRIES + 1)])
    with pytest.raises(FeedFormatError, match=r"more than 20000"):
        mentions_from_changelog(text, "foo 1.0")


def test_a_megabyte_line_is_refused_with_its_line_number() -> None:
    text = changelog("foo", [("1.0-1", "* Fix CVE-2024-0001 " + "x" * (1 << 20))])
    with pytest.raises(FeedFormatError) as info:
        mentions_from_changelog(text, "foo 1.0-1")
    assert info.value.location is not None
    assert (info.value.location.file, info.value.location.line) == ("foo 1.0-1", 3)


# --- the pure derivation ---------------------------------------------------------------


def test_derive_fixed_in_stable_and_fix_in_unstable() -> None:
    from kiln.vuln.feeds import Mention

    logs = [
        SuiteChangelog("trixie", "1.0-1", (Mention("CVE-1", "1.0-1", "* Fix CVE-1.", "fix"),)),
        SuiteChangelog(
            "sid",
            "1.1-1",
            (
                Mention("CVE-1", "1.0-1", "* Fix CVE-1.", "fix"),
                Mention("CVE-2", "1.1-1", "* Fix CVE-2.", "fix"),
            ),
        ),
        # experimental older than the candidate says nothing for the release
        SuiteChangelog("experimental", "0.9-1", (Mention("CVE-3", "0.9-1", "* CVE-3.", "fix"),)),
    ]
    out = [r for r in derive("foo", logs, distro=DISTRO) if isinstance(r, ArchiveStatus)]
    got = {r.cve: (r.status, r.version, r.suite, r.candidate) for r in out}
    assert got == {
        "CVE-1": ("fixed", "1.0-1", "trixie", "1.0-1"),
        "CVE-2": ("fix-in-unstable", "1.1-1", "sid", "1.0-1"),
    }


def test_a_backport_is_fixed_at_its_own_version_not_at_the_unstable_entry_it_carries() -> None:
    from kiln.vuln.feeds import Mention

    # trixie-security's 2.9.0-1~deb13u1 backports sid's 2.9.0-1, whose entry it carries
    entry = Mention("CVE-2026-0001", "2.9.0-1", "* Fix CVE-2026-0001.", "fix")
    logs = [
        SuiteChangelog("trixie", "2.7.1-2", ()),
        SuiteChangelog("trixie-security", "2.9.0-1~deb13u1", (entry,)),
        SuiteChangelog("sid", "2.9.0-1", (entry,)),
    ]
    out = derive("expat", logs, distro=DISTRO)
    (status,) = [r for r in out if isinstance(r, ArchiveStatus)]
    assert (status.status, status.version) == ("fixed", "2.9.0-1~deb13u1")
    mentions = {r.suite: r.version for r in out if not isinstance(r, ArchiveStatus)}
    assert mentions == {"trixie-security": "2.9.0-1~deb13u1", "sid": "2.9.0-1"}


# --- the feed over the signed fixture archive -----------------------------------------


def test_update_reads_every_suite_and_handles_the_real_cases(
    server: RepoServer, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    db, warnings = update(server, tmp_path, debrepo_key)
    got = statuses(db)
    assert got[("openssl", "CVE-2025-1001")] == ("fixed", "3.5.1-1", "trixie", "fix")
    assert got[("openssl", "CVE-2025-1002")] == (
        "fixed",
        "3.5.1-1+deb13u1",
        "trixie-security",
        "fix",
    )
    assert got[("openssl", "CVE-2025-1003")] == ("fix-in-unstable", "3.6.0-1", "sid", "fix")
    assert got[("openssl", "CVE-2025-1004")] == ("fix-in-unstable", "3.6.0-1", "sid", "low")
    assert got[("openssl", "CVE-2025-1000")][3] == "low"
    # libgcc-s1 is smaller, but its doc dir is a symlink: gcc-14-base's changelog is read
    assert got[("gcc-14", "CVE-2026-2001")] == ("fix-in-unstable", "14.4.0-3", "sid", "fix")
    # binNMU: the source changelog (not changelog.Debian.amd64.gz), by source version
    assert got[("zlib", "CVE-2022-3001")] == ("fixed", "1:1.3-1", "trixie", "fix")
    assert got[("zlib", "CVE-2023-3002")] == ("fix-in-unstable", "1:1.3.1-1", "sid", "fix")
    assert got[("tzdata", "CVE-2025-4001")] == ("fixed", "2025b-4", "trixie", "fix")
    assert not [k for k in got if k[0] == "badgz"]
    assert any("badgz 1.0-1: trixie" in w and "corrupt gz" in w for w in warnings), warnings
    db.close()


def test_a_named_source_absent_from_every_suite_is_a_warning(
    server: RepoServer, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    db, warnings = update(server, tmp_path, debrepo_key, ["zlib", "no-such-source"])
    assert {k[0] for k in statuses(db)} == {"zlib"}
    assert any(w.startswith("no-such-source: source") for w in warnings), warnings
    db.close()


def test_a_warm_update_fetches_no_deb_and_is_unchanged(
    server: RepoServer, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    db, _ = update(server, tmp_path, debrepo_key)
    db.close()
    first = [r.path for r in server.requests if r.path.endswith(".deb")]
    assert first
    server.reset()
    archive = make_archive(server, tmp_path, debrepo_key.keyring)
    scope = Scope(None, "test")
    db = VulnDB.open(str(tmp_path / "vuln.db"))
    result = db.import_feed(DebianArchiveFeed(archive, scope), archive.manifest(scope))
    assert result.unchanged
    assert not [r.path for r in server.requests if r.path.endswith(".deb")]
    # forced: every changelog comes from the (source, version) cache
    server.reset()
    forced = db.import_feed(DebianArchiveFeed(archive, scope), archive.manifest(scope), force=True)
    assert not forced.unchanged
    assert not [r.path for r in server.requests if r.path.endswith(".deb")]
    assert len(statuses(db)) > 5
    db.close()


def test_a_deb_that_fails_its_hash_is_a_warning_and_keeps_the_last_good_rows(
    server: RepoServer, tmp_path: Path, debrepo_key: GpgKey, archive_root: Path
) -> None:
    db, _ = update(server, tmp_path, debrepo_key, ["gcc-14", "zlib"])
    before = statuses(db)
    db.close()
    path = "/debian/pool/main/g/gcc-14/gcc-14-base_14.4.0-3_amd64.deb"
    original = (archive_root / path.removeprefix("/")).read_bytes()
    server.override(path, bytes(len(original)))  # same size, other bytes
    cache = tmp_path / "cache2"
    archive = replace(make_archive(server, tmp_path, debrepo_key.keyring), cache=Cache(cache))
    scope = Scope(frozenset({"gcc-14", "zlib"}), "test")
    db = VulnDB.open(str(tmp_path / "vuln.db"))
    result = db.import_feed(DebianArchiveFeed(archive, scope), archive.manifest(scope), force=True)
    warnings = [str(w) for w in result.warnings]
    assert any("gcc-14 14.4.0-3: sid" in w and "signed index" in w for w in warnings), warnings
    assert statuses(db) == before  # gcc-14 kept its rows, zlib rewritten alike
    db.close()


def test_a_mirror_losing_a_file_mid_run_is_exit_3_and_the_database_is_unchanged(
    server: RepoServer, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    db, _ = update(server, tmp_path, debrepo_key, ["zlib"])
    snapshots = db.snapshots()
    db.close()
    server.drop("/debian/pool/main/z/zlib/zlib1g_1.3.1-1_amd64.deb")
    archive = replace(
        make_archive(server, tmp_path, debrepo_key.keyring), cache=Cache(tmp_path / "c3")
    )
    scope = Scope(frozenset({"zlib", "openssl"}), "test")
    db = VulnDB.open(str(tmp_path / "vuln.db"))
    with pytest.raises(EnvironmentProblem) as info:
        db.import_feed(DebianArchiveFeed(archive, scope), archive.manifest(scope))
    assert info.value.exit_code == 3
    assert db.snapshots() == snapshots
    assert {k[0] for k in statuses(db)} == {"zlib"}
    db.close()


def test_db_update_refuses_from_for_the_archive_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["db", "update", "--source", "debian-archive", "--from", "x", "--db", str(tmp_path)]
    assert main(argv) == 2
    assert "--from is not used" in capsys.readouterr().err


# --- matching and reports --------------------------------------------------------------


def _status(cve: str, status: str, version: str, confidence: str = "fix") -> Held[ArchiveStatus]:
    return Held(
        ArchiveStatus(
            "openssl", cve, "trixie", status, version, "sid" if "unstable" in status else "trixie",
            f"* Fix {cve}.", confidence, "3.5.1-1",
        ),
        1,
    )  # fmt: skip


LIBSSL = Pkg("deb", "libssl3t64", "3.5.1-1", "openssl", "3.5.1-1", purl="pkg:deb/debian/libssl3t64")


def _scan(data: VulnData) -> ScanResult:
    findings = match_packages([LIBSSL], data, context=MatchContext("trixie", "13"))
    return ScanResult("t", None, 1, findings, ())


def test_fix_in_unstable_is_its_own_status_with_version_and_evidence() -> None:
    data = VulnData(
        archive={
            "openssl": (
                _status("CVE-2025-1003", "fix-in-unstable", "3.6.0-1"),
                _status("CVE-2025-1004", "fix-in-unstable", "3.6.0-1", "low"),
                _status("CVE-2025-1001", "fixed", "3.5.1-1"),  # installed has it
                _status("CVE-2025-1002", "fixed", "3.5.1-1+deb13u1"),
            )
        }
    )
    result = _scan(data)
    by_id = {f.id: f for f in result.findings}
    assert set(by_id) == {"CVE-2025-1002", "CVE-2025-1003", "CVE-2025-1004"}
    f = by_id["CVE-2025-1003"]
    assert f.status is FindingStatus.FIX_IN_UNSTABLE
    assert (f.unstable_version, f.fixed_version, f.fix_available) == ("3.6.0-1", None, False)
    assert f.evidence == "sid 3.6.0-1: * Fix CVE-2025-1003."
    assert f.matches[0].rule == "archive:fix-in-unstable(source)"
    assert (
        by_id["CVE-2025-1004"].matches[0].rule == "archive:fix-in-unstable:low-confidence(source)"
    )
    assert by_id["CVE-2025-1002"].status is FindingStatus.FIXED
    assert by_id["CVE-2025-1002"].fixed_version == "3.5.1-1+deb13u1"
    # --fail-on counts them unless told not to
    assert {x.id for x in gate(result, Severity.UNKNOWN)} == set(by_id)
    assert {x.id for x in gate(result, Severity.UNKNOWN, unstable_fixes=False)} == {"CVE-2025-1002"}


def test_a_tracker_verdict_for_the_release_wins_over_the_archive() -> None:
    resolved = TrackerStatus("openssl", "CVE-2025-1003", "trixie", "resolved", "0", "low")
    opened = TrackerStatus("openssl", "CVE-2025-1005", "trixie", "open", None, "low")
    data = VulnData(
        tracker={"openssl": (Held(resolved, 2), Held(opened, 2))},
        archive={
            "openssl": (
                _status("CVE-2025-1003", "fix-in-unstable", "3.6.0-1"),
                _status("CVE-2025-1005", "fix-in-unstable", "3.6.0-1"),
            )
        },
    )
    by_id = {f.id: f for f in _scan(data).findings}
    assert set(by_id) == {"CVE-2025-1005"}  # not affected per the tracker: no finding
    merged = by_id["CVE-2025-1005"]
    assert merged.status is FindingStatus.FIX_IN_UNSTABLE  # open + fix in unstable
    assert {m.feed for m in merged.matches} == {"debian-tracker", "debian-archive"}


def test_reports_carry_the_unstable_fix_and_its_evidence() -> None:
    data = VulnData(archive={"openssl": (_status("CVE-2025-1003", "fix-in-unstable", "3.6.0-1"),)})
    result = _scan(data)
    doc = json.loads(str(FORMATTERS["json"].render(result)))
    (finding,) = doc["findings"]
    assert (finding["status"], finding["fixed_in_unstable"]) == ("fix-in-unstable", "3.6.0-1")
    assert finding["evidence"] == "sid 3.6.0-1: * Fix CVE-2025-1003."
    assert doc["summary"]["by_status"]["fix-in-unstable"] == 1
    vex = json.loads(str(FORMATTERS["openvex"].render(result)))
    (statement,) = vex["statements"]
    assert statement["status"] == "under_investigation"
    assert "3.6.0-1" in statement["action_statement"]
    assert "* Fix CVE-2025-1003." in statement["action_statement"]
    sarif = json.loads(str(FORMATTERS["sarif"].render(result)))
    (res,) = sarif["runs"][0]["results"]
    assert res["properties"]["fixedInUnstable"] == "3.6.0-1"
    assert "fix in unstable 3.6.0-1" in res["message"]["text"]


# --- kiln compat's CVE column ----------------------------------------------------------


def test_compat_says_which_debian_source_filled_the_cve_column() -> None:
    from kiln.compat.report import notes
    from kiln.compat.runner import AppResult, Side, SuiteResult

    before = Side("before", "b", build_ok=True, cves=40, cve_source="debian-archive")
    after = Side("after", "a", build_ok=True, cves=10, cve_source="debian-archive")
    app_result = AppResult("app", "an app", (), before, after, identical=True)
    lines = notes(SuiteResult((app_result,), (), (), 1.0, ()))
    assert any("Debian data from debian-archive" in line and "no tracker" in line for line in lines)


# --- the source's debian.tar, read instead of a big binary ------------------------------


def _tar(members: dict[str, bytes], mode: Literal["w:xz", "w:gz"] = "w:xz") -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_changelog_is_read_from_a_debian_tar() -> None:
    from kiln.vuln.feeds.debian_archive import _changelog_in_tar

    text = changelog("openjdk-21", [("21.0.9+10-1", "* Fix CVE-2025-5001.")])
    data = _tar({"debian/rules": b"#!/usr/bin/make -f\n", "debian/changelog": text})
    assert _changelog_in_tar(data, "openjdk-21_21.0.9+10-1.debian.tar.xz") == text
    assert _changelog_in_tar(_tar({"debian/control": b"x"}, "w:gz"), "x.debian.tar.gz") is None


def test_a_truncated_debian_tar_is_a_format_error_naming_it() -> None:
    from kiln.vuln.feeds.debian_archive import _changelog_in_tar

    data = _tar({"debian/rules": b"r" * 50_000, "debian/changelog": b"x" * 10})
    with pytest.raises(FeedFormatError, match=r"not a readable tar archive") as info:
        _changelog_in_tar(data[: len(data) // 2], "foo_1.0-1.debian.tar.xz")
    assert info.value.location is not None
    assert info.value.location.file == "foo_1.0-1.debian.tar.xz"


# --- an unstable past Valid-Until, and hostile changelogs through the feed ---------------


@pytest.fixture(scope="module")
def stale_root(tmp_path_factory: pytest.TempPathFactory, debrepo_key: GpgKey) -> Path:
    """Stable suites valid at NOW; sid and experimental signed a month ago, long expired."""
    root = tmp_path_factory.mktemp("stale")
    long_line = changelog("longline", [("1.0-1", "* Fix CVE-2025-6001 " + "x" * (1 << 20))])
    truncated = gzip.compress(changelog("cut", [("1.0-1", "* Fix CVE-2025-6002.")]), mtime=0)
    stable = {
        "trixie": [
            DebSpec("zlib1g", "1:1.3-1", "amd64", source="zlib",
                    files=doc("zlib1g", changelog("zlib", ZLIB))),
            DebSpec("longline", "1.0-1", files=doc("longline", long_line)),
            DebSpec("cut", "1.0-1", files={"usr/share/doc/cut/changelog.Debian.gz":
                                           truncated[: len(truncated) // 2]}),
        ],
        "trixie-updates": [],
        "trixie-security": [],
    }  # fmt: skip
    unstable = {
        "sid": [
            DebSpec("zlib1g", "1:1.3.1-1", "amd64", source="zlib",
                    files=doc("zlib1g", changelog("zlib", ZLIB_SID))),
        ],
        "experimental": [],
    }  # fmt: skip
    build_repository(root, stable, key=debrepo_key, archs=("amd64",))
    old = REPO_DATE - timedelta(days=30)
    build_repository(
        root, unstable, key=debrepo_key, archs=("amd64",), date=old,
        valid_until=old + timedelta(days=7),
    )  # fmt: skip
    return root


def test_an_expired_unstable_is_read_as_of_its_date_and_said_so(
    stale_root: Path, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    with RepoServer(stale_root) as srv:
        db, warnings = update(srv, tmp_path, debrepo_key, ["zlib"])
    assert statuses(db)[("zlib", "CVE-2023-3002")][:2] == ("fix-in-unstable", "1:1.3.1-1")
    expired = [w for w in warnings if "expired" in w]
    assert len(expired) == 2
    assert any("/dists/sid" in w for w in expired)
    db.close()


def test_an_expired_stable_suite_is_still_refused(
    stale_root: Path, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    from kiln.errors import RemoteContentError

    with RepoServer(stale_root) as srv:
        archive = replace(
            make_archive(srv, tmp_path, debrepo_key.keyring),
            now=lambda: REPO_DATE + timedelta(days=8),  # past the stable suites' Valid-Until
        )
        with pytest.raises(RemoteContentError, match=r"/dists/trixie.*expired"):
            archive.manifest(Scope(None, "test"))


def test_hostile_changelogs_through_the_feed_are_warnings_naming_source_and_version(
    stale_root: Path, tmp_path: Path, debrepo_key: GpgKey
) -> None:
    with RepoServer(stale_root) as srv:
        db, warnings = update(srv, tmp_path, debrepo_key, ["longline", "cut", "zlib"])
    assert any(w.startswith("longline 1.0-1: trixie:") and "line of" in w for w in warnings)
    assert any(w.startswith("cut 1.0-1: trixie:") and "gz" in w for w in warnings), warnings
    assert {k[0] for k in statuses(db)} == {"zlib"}
    db.close()
