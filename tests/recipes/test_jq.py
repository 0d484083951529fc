"""The real thing: jq from trixie fetched, patched and built in the sandbox, no network.

Slow (a cold build root is an mmdebstrap of a buildd chroot plus jq's Build-Depends,
then a full jq build), so marked ``network`` and ``slow``. jq's own test suite runs
under valgrind and takes minutes on 2 cores: the test recipe adds the ``nocheck``
profile (the rebuild-verification path runs the suite).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kiln.recipes.service import SourceBuilder, host_arch

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_jq_recipe_builds_in_the_sandbox_with_its_patch(tmp_path: Path) -> None:
    # $KILN_CACHE (default ~/.cache/kiln) keeps the build root between runs.
    recipes = tmp_path / "recipes"
    shutil.copytree(RECIPES / "patches", recipes / "patches")
    text = (RECIPES / "jq.yaml").read_text()
    text += (
        "profiles:\n  - name: nocheck\n"
        "    justification: jq's test suite runs under valgrind for minutes; CI runs it in "
        "kiln rebuild --verify\n"
    )
    (recipes / "jq.yaml").write_text(text)
    out = tmp_path / "out"
    result = SourceBuilder.from_environment().build_recipe(
        recipes / "jq.yaml", arch=host_arch(), out_dir=out
    )
    assert result.version.endswith("+kiln1")
    names = sorted(p.name for p in result.debs)
    assert f"jq_{result.version}_{host_arch()}.deb" in names
    jq_deb = next(p for p in result.debs if p.name.startswith("jq_"))
    root = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(jq_deb), str(root)], check=True, timeout=60)
    readme = (root / "usr/share/doc/jq/README.md").read_text()
    assert "rebuilt from Debian's source package by kiln" in readme
    changelog = gzip.decompress(
        (root / "usr/share/doc/jq/changelog.Debian.gz").read_bytes()
    ).decode()
    assert changelog.startswith(f"jq ({result.version}) trixie;")
    assert "0001-readme-kiln-rebuild.patch" in changelog.split("\n -- ")[0]
    assert "-D_FORTIFY_SOURCE=3" in result.buildflags
    record = json.loads((out / f"jq_{result.version}.kiln-build.json").read_text())
    assert record["tests"] == [
        {"name": "version", "passed": True, "reason": ""},
        {"name": "evaluates", "passed": True, "reason": ""},
    ]
    jq_audit = next(a for a in record["elfAudit"] if a["path"] == "/usr/bin/jq")
    assert jq_audit["bind_now"]
    assert jq_audit["relro"] == "full"
    assert jq_audit["pie"]
    provenance = json.loads((out / f"jq_{result.version}.provenance.json").read_text())
    assert provenance["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {s["name"] for s in provenance["subject"]} == {p.name for p in result.debs}
    log = result.log.read_text()
    assert "-D_FORTIFY_SOURCE=3" in log
    assert "-Wl,-z,now" in log


def test_jq_rebuilds_bit_for_bit_identical_to_debian(tmp_path: Path) -> None:
    result = SourceBuilder.from_environment().rebuild_verify(
        "jq", arch=host_arch(), out_dir=tmp_path / "out", nocheck=True
    )
    assert {p.package for p in result.packages} >= {"jq", "libjq1", "libjq-dev"}
    assert result.identical, [(p.package, p.differences) for p in result.packages]
