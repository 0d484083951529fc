"""Sandboxed builds of a fixture source package, with the host's / as the read-only root.

The host has dpkg-dev and build-essential, which is all the fixture package needs, so
these run offline; the real build root (mmdebstrap) is exercised by test_jq.py.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from kiln.debian.deb import read_deb
from kiln.debian.source_index import parse_sources
from kiln.recipes import (
    BuildError,
    FetchedSource,
    PatchError,
    build_in_sandbox,
    load_recipe,
)
from kiln.recipes.build import BUILD_PATH, root_entries, sandbox_argv
from recipes.srcrepo import SourceSpec, build_source_package, sources_stanza

PATCH = """\
Description: Greet kiln instead of the world
 A harmless fixture change standing in for a security backport.
Origin: vendor
Bug: https://bugs.kiln.invalid/1
CVE: CVE-2026-0001
Forwarded: not-needed
---
--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-hello world
+hello kiln
"""


def fetched_for(spec: SourceSpec, tmp_path: Path) -> FetchedSource:
    pool = tmp_path / "pool"
    pool.mkdir(exist_ok=True)
    files = build_source_package(spec, pool)
    dsc = next(p for p in files if p.suffix == ".dsc")
    (package,) = parse_sources(
        sources_stanza(dsc, "pool/main/h/hello").encode(), suite="trixie", source="test"
    )
    return FetchedSource(package, pool, dsc, False, "test")


def write_recipe(tmp_path: Path, *, patch: str = PATCH, version: str = "1.0-1") -> Path:
    recipes = tmp_path / "recipes"
    (recipes / "patches" / "hello").mkdir(parents=True, exist_ok=True)
    (recipes / "patches" / "hello" / "0001-greet-kiln.patch").write_text(patch)
    path = recipes / "hello.yaml"
    path.write_text(
        f"source: hello\nversion: '{version}'\n"
        "patches:\n  - path: patches/hello/0001-greet-kiln.patch\n"
        "maintainer: kiln tests <tests@kiln.invalid>\n"
    )
    return path


def build(fetched: FetchedSource, tmp_path: Path, recipe: Path | None = None) -> Path:
    out = tmp_path / "out"
    build_in_sandbox(
        fetched,
        root_tarball=Path("/nonexistent"),
        root_sha256="host",
        out_dir=out,
        loaded=load_recipe(recipe) if recipe else None,
        root_dir=Path("/"),
        work_root=tmp_path,
    )
    return out


def test_patched_build_is_kiln_versioned_and_its_changelog_names_the_cve(
    tmp_path: Path,
) -> None:
    fetched = fetched_for(SourceSpec("1.0-1"), tmp_path)
    out = build(fetched, tmp_path, write_recipe(tmp_path))
    (deb,) = sorted(out.glob("*.deb"))
    assert deb.name == "hello_1.0-1+kiln1_all.deb"
    package = read_deb(deb)
    assert package.control.version == "1.0-1+kiln1"
    data = _member(deb, "usr/share/doc/hello/changelog.Debian.gz")
    changelog = gzip.decompress(data).decode()
    assert changelog.startswith("hello (1.0-1+kiln1) trixie; urgency=medium")
    assert "CVE-2026-0001" in changelog.split("\n -- ")[0]
    assert _member(deb, "usr/share/hello/hello.txt") == b"hello kiln\n"
    # the binary says which recipe, patches and CVEs made it (SBOMs read these back)
    control = _control_text(deb)
    assert "\nKiln-Recipe: hello sha256:" in control, control
    assert "\nKiln-Patches: 0001-greet-kiln.patch\n" in control
    assert "\nKiln-Fixes: CVE-2026-0001\n" in control


def test_same_recipe_built_twice_gives_identical_debs(tmp_path: Path) -> None:
    fetched = fetched_for(SourceSpec("1.0-1"), tmp_path)
    recipe = write_recipe(tmp_path)
    first = build(fetched, tmp_path / "one", recipe)
    second = build(fetched, tmp_path / "two", recipe)
    (a,) = first.glob("*.deb")
    (b,) = second.glob("*.deb")
    assert a.read_bytes() == b.read_bytes()


def test_patch_that_does_not_apply_is_refused_with_its_position(tmp_path: Path) -> None:
    fetched = fetched_for(SourceSpec("1.0-1", text="something else\n"), tmp_path)
    with pytest.raises(PatchError) as caught:
        build(fetched, tmp_path, write_recipe(tmp_path))
    assert "0001-greet-kiln.patch does not apply to hello 1.0-1" in str(caught.value)
    assert caught.value.location is not None
    assert caught.value.location.line == 4


def test_build_that_writes_outside_its_tree_fails(tmp_path: Path) -> None:
    victim = tmp_path / "outside"
    hook = f"echo escaped > {victim}\necho escaped > /usr/kiln-escape\n"
    fetched = fetched_for(SourceSpec("1.0-1", hook=hook), tmp_path)
    with pytest.raises(BuildError) as caught:
        build(fetched, tmp_path)
    assert "failed to build" in str(caught.value)
    assert any("Read-only file system" in line for line in caught.value.details)
    assert not victim.exists()
    assert not Path("/usr/kiln-escape").exists()


@pytest.mark.skipif(shutil.which("fakeroot") is None, reason="fakeroot is not installed")
def test_rules_requires_root_builds_under_fakeroot_in_the_sandbox(tmp_path: Path) -> None:
    # pam's dh_install (cp -a of symlinks) failed: uid 0 is unmapped, chown gave EINVAL.
    hook = (
        "set -e\n"
        "ln -s hello.txt debian/tmp/usr/share/hello/link\n"
        "chown -h root:root debian/tmp/usr/share/hello/link\n"
        "cp -a debian/tmp/usr/share/hello/link debian/tmp/usr/share/hello/link2\n"
        'test "$(id -u)" = 0\n'
    )
    spec = SourceSpec("1.0-1", binary_hook=hook, rules_requires_root="binary-targets")
    out = build(fetched_for(spec, tmp_path), tmp_path)
    (deb,) = out.glob("hello_*.deb")
    members = {m.path: m for m in read_deb(deb).members}
    assert members["usr/share/hello/link2"].link_target == "hello.txt"
    assert members["usr/share/hello/link2"].uid == 0


def test_build_cannot_reach_the_network(tmp_path: Path) -> None:
    # A listener on the host's loopback: outside the sandbox's network namespace.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        hook = (
            "python3 -c 'import socket,sys; "
            f'socket.create_connection(("127.0.0.1", {port}), timeout=5); '
            'print("NETWORK-REACHED")\'\n'
        )
        fetched = fetched_for(SourceSpec("1.0-1", hook=hook), tmp_path)
        with pytest.raises(BuildError) as caught:
            build(fetched, tmp_path)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection ever reached the host
    log = "\n".join(caught.value.details)
    assert "NETWORK-REACHED" not in log
    assert "Connection refused" in log or "unreachable" in log


def test_sandbox_argv_binds_root_read_only_and_only_the_tree_writable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "proc").mkdir()
    argv = sandbox_argv(root, root_entries(root), tmp_path / "b", ["true"], bwrap="bwrap")
    text = " ".join(argv)
    assert f"--ro-bind {root}/usr /usr" in text
    assert "--symlink usr/bin /bin" in text
    assert f"--bind {tmp_path}/b {BUILD_PATH}" in text
    assert "--remount-ro /" in text
    assert "--unshare-all" in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--uid") + 1] == "1000"
    assert f"{root}/proc" not in text


def _member(deb: Path, name: str) -> bytes:
    proc = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True, timeout=60
    )
    tar = subprocess.run(
        ["tar", "-xO", f"./{name}"], input=proc.stdout, capture_output=True, check=True,
        timeout=60,
    )  # fmt: skip
    return tar.stdout


def test_provenance_names_sources_patches_root_and_debs(tmp_path: Path) -> None:
    from kiln.attest.statement import parse_statement
    from kiln.debian.distro import get_distro
    from kiln.recipes.buildroot import BuildRoot, BuildRootSpec
    from kiln.recipes.provenance import BUILD_TYPE, SLSA_PROVENANCE, package_provenance

    fetched = fetched_for(SourceSpec("1.0-1"), tmp_path)
    loaded = load_recipe(write_recipe(tmp_path))
    output = build_in_sandbox(
        fetched, root_tarball=Path("/nonexistent"), root_sha256="host",
        out_dir=tmp_path / "out", loaded=loaded, root_dir=Path("/"), work_root=tmp_path,
    )  # fmt: skip
    root = BuildRoot(
        BuildRootSpec(get_distro("debian-13"), "amd64", "dpkg-dev"), Path("r.tar"), "0" * 64, False
    )
    statement = package_provenance(output, fetched, root, loaded, codename="trixie")
    parsed = parse_statement(statement.to_json(), where="test")
    assert parsed.predicate_type == SLSA_PROVENANCE
    assert [s.name for s in parsed.subject] == ["hello_1.0-1+kiln1_all.deb"]
    definition = parsed.predicate["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    assert definition["externalParameters"]["recipe"]["sha256"] == loaded.sha256
    names = [d["name"] for d in definition["resolvedDependencies"]]
    assert "hello_1.0.orig.tar.gz" in names
    assert "patches/0001-greet-kiln.patch" in names
    assert names[-1] == "build-root"
    patch = next(d for d in definition["resolvedDependencies"] if d["name"].startswith("patches/"))
    assert patch["annotations"]["cves"] == ["CVE-2026-0001"]


def _control_text(deb: Path) -> str:
    out = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, check=True)
    return "\n" + out.stdout.decode()


def test_source_package_sbom_lists_sources_patches_recipe_and_debs(tmp_path: Path) -> None:
    import json

    from kiln.pipeline.source import source_package_sbom

    fetched = fetched_for(SourceSpec("1.0-1"), tmp_path)
    loaded = load_recipe(write_recipe(tmp_path))
    output = build_in_sandbox(
        fetched, root_tarball=Path("/nonexistent"), root_sha256="host",
        out_dir=tmp_path / "out", loaded=loaded, root_dir=Path("/"), work_root=tmp_path,
    )  # fmt: skip
    data = source_package_sbom(output, fetched, loaded)  # spdx-tools validated it
    assert source_package_sbom(output, fetched, loaded) == data  # reproducible
    doc = json.loads(data)
    packages = {p["SPDXID"]: p for p in doc["packages"]}
    source = packages["SPDXRef-Source"]
    assert (source["name"], source["versionInfo"]) == ("hello", "1.0-1+kiln1")
    assert source["primaryPackagePurpose"] == "SOURCE"
    (deb,) = [p for p in doc["packages"] if p["SPDXID"] != "SPDXRef-Source"]
    assert deb["packageFileName"] == "hello_1.0-1+kiln1_all.deb"
    sha = hashlib.sha256((tmp_path / "out" / deb["packageFileName"]).read_bytes()).hexdigest()
    assert deb["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha}]
    files = {f["fileName"]: f for f in doc["files"]}
    assert "./hello_1.0.orig.tar.gz" in files
    patch = files["./debian/patches/0001-greet-kiln.patch"]
    assert "CVE-2026-0001" in patch["comment"]
    assert "./kiln-recipe/hello.yaml" in files
    relations = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
                 for r in doc["relationships"]}  # fmt: skip
    assert (deb["SPDXID"], "GENERATED_FROM", "SPDXRef-Source") in relations
    assert ("SPDXRef-Source", "CONTAINS", patch["SPDXID"]) in relations
