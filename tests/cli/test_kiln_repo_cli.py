"""An image built from kiln's own repository: `repositories: [kiln]` end to end.

A rebuilt tzdata (``+kiln1``) is published with `kiln repo publish` into a directory;
with ``KILN_REPO`` pointing there (read in place as ``file://``), `kiln lock` resolves
the spec against Debian's fixture archive with kiln's repository overlaid, the lock
records the package as coming from suite ``kiln``, `kiln build` fetches it from the
repository (checked against the signed index) and the image's SBOM lists it.
"""

from __future__ import annotations

import json
import lzma
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.conftest import Env
from fixtures.debrepo import DebSpec, build_deb
from kiln.cli.main import main

SPEC = """\
name: tz
distro: debian-13
archs: [amd64]
packages: [tzdata]
repositories: [kiln]
paths:  # the fixture archive has no base-files; SBOMs need os-release
  - path: /etc/os-release
    type: file
    content: "ID=debian\nVERSION_ID=13\nVERSION_CODENAME=trixie\n"
"""
REBUILT = "2025c-0+deb13u1+kiln1"  # the fixture archive's newest tzdata is 2025c-0+deb13u1
# What kiln package build writes into each binary it makes (tests/recipes/test_build.py)
KILN_FIELDS = {
    "Kiln-Recipe": "tzdata sha256:" + "ab" * 32,
    "Kiln-Patches": "0001-fix-dst.patch",
    "Kiln-Fixes": "CVE-2026-0001",
}


@pytest.fixture
def kiln_repo(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    deb = build_deb(
        DebSpec("tzdata", REBUILT, depends="debconf (>= 0.5) | debconf-2.0", extra=KILN_FIELDS),
        tmp_path / "debs" / f"tzdata_{REBUILT}_all.deb",
    )
    repo = tmp_path / "kiln-repo"
    gnupg = tmp_path / "gnupg"
    argv = ["repo", "publish", str(repo), str(deb), "--arch", "amd64", "--gnupghome", str(gnupg)]
    assert main(argv) == 0
    yield repo
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], check=False)


def _spec(env: Env) -> Path:
    spec = env.spec.with_name("tz.yaml")
    spec.write_text(SPEC)
    return spec


def test_lock_and_build_take_the_rebuild_from_kilns_repository(
    env: Env, kiln_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_REPO", str(kiln_repo))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # the fixture debs carry no changelog
    spec = _spec(env)
    assert main(["lock", str(spec)]) == 0
    lock = json.loads(spec.with_name("tz.lock.json").read_text())
    assert "kiln" in [r["suite"] for r in lock["releases"]], lock["releases"]
    (tzdata,) = [
        p for p in lock["variants"]["runtime"]["amd64"]["packages"] if p["name"] == "tzdata"
    ]
    assert (tzdata["version"], tzdata["suite"]) == (REBUILT, "kiln")

    out = tmp_path / "out"
    assert main(["build", str(spec), "--output", str(out), "--variant", "runtime"]) == 0
    sbom = tmp_path / "tz.spdx.json"
    assert main(["sbom", str(out / "tz"), "--format", "spdx-json", "-o", str(sbom)]) == 0
    spdx = {p["name"]: p for p in json.loads(sbom.read_text())["packages"]}
    assert spdx["tzdata"]["versionInfo"] == REBUILT
    # the SBOM says how kiln rebuilt it: recipe, patches, fixes
    for field, value in KILN_FIELDS.items():
        assert f"{field}: {value}" in spdx["tzdata"]["comment"]
    cdx_path = tmp_path / "tz.cdx.json"
    assert main(["sbom", str(out / "tz"), "--format", "cyclonedx-json", "-o", str(cdx_path)]) == 0
    (component,) = [
        c for c in json.loads(cdx_path.read_text())["components"] if c["name"] == "tzdata"
    ]
    props = {p["name"]: p["value"] for p in component["properties"]}
    assert props["kiln:recipe"] == KILN_FIELDS["Kiln-Recipe"]
    assert props["kiln:patches"] == KILN_FIELDS["Kiln-Patches"]
    assert props["kiln:fixes"] == KILN_FIELDS["Kiln-Fixes"]


def test_a_spec_asking_for_kilns_repository_needs_kiln_repo(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lock", str(_spec(env))]) == 2
    assert "KILN_REPO is not set" in capsys.readouterr().err


def test_a_tampered_kiln_index_is_refused(
    env: Env, kiln_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    index = kiln_repo / "dists/kiln/main/binary-amd64/Packages.xz"
    text = lzma.decompress(index.read_bytes()).replace(b"+kiln1", b"+kiln9")
    index.write_bytes(lzma.compress(text, format=lzma.FORMAT_XZ))
    monkeypatch.setenv("KILN_REPO", str(kiln_repo))
    assert main(["lock", str(_spec(env))]) == 3
    assert "Packages.xz" in capsys.readouterr().err
