"""The OSV feed of kiln's own fixes: a real signed kiln apt repository (``dpkg-deb`` built
packages carrying ``Kiln-Fixes``, published by ``kiln.aptrepo.publish``) -> ``kiln
advisories export-osv`` -> OSV schema -> ``kiln db update --source osv`` -> ``kiln scan``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fixtures.debrepo import DebSpec, build_deb
from kiln.aptrepo import SigningKey, ensure_signing_key, publish
from kiln.cli.main import main
from kiln.errors import InputError
from kiln.vuln.advisories.osv import export_osv, rebuilt_fixes
from kiln.vuln.feeds.osv import parse_osv

DATA = Path(__file__).parent / "data"
DATE = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
OLD = "1.7.1-6+deb13u4"
KILN = "1.7.1-6+deb13u4+kiln1"
RECIPE = "jq sha256:" + "ab" * 32
CVES = ("CVE-2024-53427", "CVE-2025-48060")
OS_RELEASE_TRIXIE = 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n'


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    key = ensure_signing_key(tmp_path_factory.mktemp("kiln-gnupg"))
    yield key
    subprocess.run(
        ["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False, timeout=30
    )


def _repo(base: Path, key: SigningKey, debs: list[DebSpec]) -> Path:
    built = [build_deb(spec, base / "debs" / f"{spec.name}_{spec.arch}.deb") for spec in debs]
    publish(base / "repo", built, key=key, date=DATE, archs=("amd64",))
    return base / "repo"


def _jq(name: str, version: str = KILN, fixes: str = " ".join(CVES)) -> DebSpec:
    extra = {"Kiln-Recipe": RECIPE, **({"Kiln-Fixes": fixes} if fixes else {})}
    return DebSpec(name, version, arch="amd64", source="jq", extra=extra)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, signing_key: SigningKey) -> Path:
    base = tmp_path_factory.mktemp("kiln-apt")
    return _repo(
        base,
        signing_key,
        [
            _jq("jq"),
            _jq("libjq1"),
            # a later rebuild that still carries the fix: the record keeps the first version
            _jq("libjq-dev", "1.7.1-6+deb13u4+kiln2"),
            # a rebuild that fixes nothing (only a hardening change) is not in the feed
            DebSpec(
                "onig-tools",
                "6.9.9-1+kiln1",
                arch="amd64",
                source="libonig",
                extra={"Kiln-Recipe": "libonig sha256:" + "cd" * 32},
            ),
        ],
    )


def test_rebuilt_fixes_reads_kiln_fixes_at_the_lowest_version(repo: Path) -> None:
    fixes = rebuilt_fixes(repo)
    assert [(f.cve, f.source, f.version) for f in fixes] == [(c, "jq", KILN) for c in CVES]
    assert fixes[0].binaries == ("jq", "libjq1")
    assert fixes[0].recipe == RECIPE


def test_export_writes_schema_valid_deterministic_records(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "osv"
    assert main(["advisories", "export-osv", str(out), "--repo", str(repo)]) == 0
    paths = sorted(out.iterdir())
    assert [p.name for p in paths] == [f"KILN-{c}-jq.json" for c in CVES]
    schema = json.loads((DATA / "osv-1.6.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for path in paths:
        record: dict[str, Any] = json.loads(path.read_text())
        errors = [e.message for e in validator.iter_errors(record)]
        assert errors == [], (path.name, errors)
        assert record["modified"] == "2026-02-01T12:00:00Z"  # the Release's Date
        (affected,) = record["affected"]
        assert affected["package"] == {
            "ecosystem": "Debian:13",
            "name": "jq",
            "purl": "pkg:deb/debian/jq?distro=debian-13",
        }
        assert affected["ranges"] == [
            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": KILN}]}
        ]
        # kiln's own OSV reader takes it without a warning
        parsed, warnings = parse_osv(path.read_bytes(), str(path))
        assert warnings == []
        assert parsed.aliases == (record["aliases"][0],)
    again = tmp_path / "again"
    export_osv(repo, again)
    assert [p.read_bytes() for p in paths] == [
        (again / p.name).read_bytes() for p in paths
    ]  # same repository, same bytes


def test_the_schema_refuses_what_the_export_must_not_write(repo: Path, tmp_path: Path) -> None:
    # the schema test can fail: a record with a misspelt field or no fixed event is refused
    (path,) = export_osv(repo, tmp_path)[:1]
    record = json.loads(path.read_text())
    schema = json.loads((DATA / "osv-1.6.schema.json").read_text())
    bad_field = {**record, "modifed": record["modified"]}
    bad_event = json.loads(json.dumps(record))
    bad_event["affected"][0]["ranges"][0]["events"] = [{"introduced": "0", "fixed": KILN}]
    bad_ecosystem = json.loads(json.dumps(record))
    bad_ecosystem["affected"][0]["package"]["ecosystem"] = "kiln"
    for bad in (bad_field, bad_event, bad_ecosystem):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def _rootfs(root: Path, version: str) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE_TRIXIE)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: libjq1\nStatus: install ok installed\nArchitecture: amd64\n"
        f"Source: jq\nVersion: {version}\nDescription: jq library\n"
    )
    return root


def _findings(target: Path, db: str, out: Path) -> dict[str, dict[str, Any]]:
    assert main(["scan", str(target), "--format", "json", "--db", db, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    return {f["id"]: f for f in doc["findings"] if f["package"]["name"] == "libjq1"}


def test_kiln_scan_reads_the_exported_feed(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "osv"
    export_osv(repo, out)
    db = str(tmp_path / "vuln.db")
    assert main(["db", "update", "--source", "osv", "--from", str(out), "--db", db]) == 0
    # Debian's build: both CVEs, each fixed in kiln's rebuild
    before = _findings(_rootfs(tmp_path / "debian", OLD), db, tmp_path / "a.json")
    assert sorted(before) == list(CVES)
    for finding in before.values():
        assert finding["status"] == "fixed"
        assert finding["fixed_version"] == KILN
    # kiln's rebuild: neither
    assert _findings(_rootfs(tmp_path / "kiln", KILN), db, tmp_path / "b.json") == {}


def test_garbage_in_the_repository_is_an_input_error(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    with pytest.raises(InputError, match="no pool/ directory"):
        rebuilt_fixes(tmp_path)
    bad = _repo(tmp_path / "bad", signing_key, [_jq("jq", fixes="CVE-2024-1 $(reboot)")])
    with pytest.raises(InputError, match="not a CVE id"):
        rebuilt_fixes(bad)
    broken = tmp_path / "broken"
    (broken / "pool/main/j/jq").mkdir(parents=True)
    (broken / "pool/main/j/jq/jq_1_amd64.deb").write_bytes(b"!<arch>\nnot really a deb")
    with pytest.raises(InputError, match=r"cannot read jq_1_amd64\.deb"):
        rebuilt_fixes(broken)
    unpublished = tmp_path / "unpublished"
    (unpublished / "pool").mkdir(parents=True)
    with pytest.raises(InputError, match="never published"):
        export_osv(unpublished, tmp_path / "out")
    assert main(["advisories", "export-osv", str(tmp_path / "o"), "--repo", str(tmp_path)]) == 2


def test_records_of_rebuilds_that_left_the_repository_are_pruned(
    repo: Path, tmp_path: Path, signing_key: SigningKey
) -> None:
    out = tmp_path / "osv"
    out.mkdir()
    (out / "KILN-CVE-2020-0001-gone.json").write_text("{}")
    (out / "README.md").write_text("not kiln's\n")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "KILN-CVE-2020-0001-gone.json").write_text("{}")
    assert main(["advisories", "export-osv", str(out), "--repo", str(repo)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "KILN-CVE-2024-53427-jq.json",
        "KILN-CVE-2025-48060-jq.json",
        "README.md",
    ]
    argv = ["advisories", "export-osv", str(kept), "--repo", str(repo), "--keep-stale"]
    assert main(argv) == 0
    assert (kept / "KILN-CVE-2020-0001-gone.json").exists()
