"""The real thing: jq from trixie fetched, patched and built in the sandbox, no network,
published to kiln's signed repository and consumed by an image (recipes/images/jq.yaml)
whose tests, SBOM and provenance show the recipe and the patch.

Slow (a cold build root is an mmdebstrap of a buildd chroot plus jq's Build-Depends,
then a full jq build), so marked ``network`` and ``slow``. jq's own test suite runs
under valgrind and takes minutes on 2 cores: the test recipe adds the ``nocheck``
profile (the rebuild-verification path runs the suite).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.registry import start_registry
from kiln.attest import EcdsaSigner, KeyBundleSigner
from kiln.attest.policy import RawBundle, check_bundle
from kiln.attest.predicates import PROVENANCE_V1, SPDX_2_3
from kiln.attest.verify import fetch_bundles
from kiln.cli.main import main
from kiln.debian import get_distro
from kiln.pipeline.source import SourceBuilder
from kiln.recipes.load import load_recipe
from kiln.registry import RegistryClient
from kiln.sandbox.unpack import host_arch

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_jq_recipe_builds_in_the_sandbox_with_its_patch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # $KILN_CACHE (default ~/.cache/kiln) keeps the build root between runs.
    recipes = tmp_path / "recipes"
    shutil.copytree(RECIPES / "patches", recipes / "patches")
    builder = SourceBuilder.from_environment()
    # Rebased on Debian's newest jq, as the factory would: the checked-in recipe's
    # version is refused once Debian publishes a newer one, and the test must not
    # depend on the archive standing still.
    newest = builder.universe(get_distro("debian-13"), ("jq",)).newest("jq").version
    text = re.sub(r"(?m)^version: .*$", f"version: {newest}", (RECIPES / "jq.yaml").read_text())
    text += (
        "profiles:\n  - name: nocheck\n"
        "    justification: jq's test suite runs under valgrind for minutes; CI runs it in "
        "kiln rebuild --verify\n"
    )
    (recipes / "jq.yaml").write_text(text)
    out = tmp_path / "out"
    key = EcdsaSigner.generate()
    result = builder.build_recipe(
        recipes / "jq.yaml", arch=host_arch(), out_dir=out, signer=KeyBundleSigner(key)
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
    # the provenance and the source package's SPDX SBOM, each signed with the key
    stem = f"jq_{result.version}"
    for suffix, predicate_type in (("provenance", PROVENANCE_V1), ("spdx", SPDX_2_3)):
        data = (out / f"{stem}.{suffix}.sigstore.json").read_bytes()
        checked = check_bundle(RawBundle(suffix, data), key.verifier())
        assert (checked.signed, checked.predicate_type) == (True, predicate_type), checked
        assert checked.covers(f"sha256:{hashlib.sha256(jq_deb.read_bytes()).hexdigest()}")
    spdx = json.loads((out / f"{stem}.spdx.json").read_text())
    files = {f["fileName"] for f in spdx["files"]}
    assert "./debian/patches/0001-readme-kiln-rebuild.patch" in files
    assert any(name.endswith(".orig.tar.gz") for name in files), files
    log = result.log.read_text()
    assert "-D_FORTIFY_SOURCE=3" in log
    assert "-Wl,-z,now" in log
    if host_arch() == "amd64":  # recipes/images/jq.yaml builds the host arch: amd64
        _image_on_kiln_repository(tmp_path, result.debs, recipes / "jq.yaml", monkeypatch, capsys)


def _image_on_kiln_repository(
    tmp_path: Path,
    debs: tuple[Path, ...] | list[Path],
    recipe: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Publish the rebuilt .debs, build jq-on-base from them, test, SBOM, provenance."""
    repo, gnupg = tmp_path / "kiln-repo", tmp_path / "gnupg"
    argv = ["repo", "publish", str(repo), *map(str, debs), "--arch", "amd64"]
    assert main([*argv, "--gnupghome", str(gnupg)]) == 0
    monkeypatch.setenv("KILN_REPO", str(repo))
    spec = tmp_path / "images" / "jq.yaml"
    spec.parent.mkdir()
    shutil.copy(RECIPES / "images" / "jq.yaml", spec)
    out = tmp_path / "images-out"
    assert main(["build", str(spec), "--output", str(out)]) == 0, capsys.readouterr().err
    lock = json.loads(spec.with_name("jq.lock.json").read_text())
    suites = {p["name"]: p["suite"] for p in lock["variants"]["runtime"]["amd64"]["packages"]}
    assert suites["jq"] == suites["libjq1"] == "kiln"
    assert suites["libc6"] != "kiln"
    assert main(["test", str(spec), "--output", str(out)]) == 0, capsys.readouterr().out

    recipe_sha = f"jq sha256:{load_recipe(recipe).sha256}"
    sbom = tmp_path / "jq.spdx.json"
    assert main(["sbom", str(out / "jq"), "--format", "spdx-json", "-o", str(sbom)]) == 0
    spdx = {p["name"]: p for p in json.loads(sbom.read_text())["packages"]}
    assert f"Kiln-Recipe: {recipe_sha}" in spdx["jq"]["comment"]
    assert "Kiln-Patches: 0001-readme-kiln-rebuild.patch" in spdx["jq"]["comment"]

    monkeypatch.setenv("KILN_KEY_PASSWORD", "jq")
    assert main(["keygen", "--out", str(tmp_path / "kiln")]) == 0
    with start_registry(tmp_path / "registry") as registry:
        publish = ["publish", str(spec), "--registry", f"{registry.host}/kiln",
                   "--key", str(tmp_path / "kiln.key"), "--output", str(out),
                   "--variant", "runtime"]  # fmt: skip
        assert main(publish) == 0, capsys.readouterr().err
        client = RegistryClient.for_host(registry.host)
        digest = client.get_manifest("kiln/jq", "latest").digest
        bundles = fetch_bundles(client, "kiln/jq", digest)
    provenance = next(
        json.loads(base64.b64decode(json.loads(b.data)["dsseEnvelope"]["payload"]))
        for b in bundles
        if b.data
        and b"slsa.dev/provenance"
        in base64.b64decode(json.loads(b.data)["dsseEnvelope"]["payload"])
    )
    deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
    jq_dep = next(d for d in deps if d.get("uri", "").startswith("pkg:deb/debian/jq@"))
    assert jq_dep["annotations"]["suite"] == "kiln"
    assert jq_dep["annotations"]["kilnRecipe"] == recipe_sha
    assert jq_dep["annotations"]["kilnPatches"] == "0001-readme-kiln-rebuild.patch"


def test_jq_rebuilds_bit_for_bit_identical_to_debian(tmp_path: Path) -> None:
    result = SourceBuilder.from_environment().rebuild_verify(
        "jq", arch=host_arch(), out_dir=tmp_path / "out", nocheck=True
    )
    assert {p.package for p in result.packages} >= {"jq", "libjq1", "libjq-dev"}
    assert result.identical, [(p.package, p.differences) for p in result.packages]
