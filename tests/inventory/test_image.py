"""OCI layouts, OCI archives and docker-archives: layers, whiteouts, digests, platforms."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from inventory.builders import (
    BASE_LAYER,
    OS_RELEASE,
    SITE,
    STATUS,
    Entry,
    docker_archive,
    image_manifest,
    layer_tar,
    metadata,
    sha256,
    single_image_layout,
    tar_directory,
    write_layout,
)
from kiln.errors import InputError
from kiln.inventory import Inventory, load_target
from kiln.oci.layout import LayoutError

UPPER_LAYER = [
    # delete requests, add urllib3; replace the dpkg status; hide /opt's lower contents
    Entry(f"{SITE}/.wh.requests-2.19.0.dist-info"),
    Entry(f"{SITE}/urllib3-1.26.0.dist-info/METADATA", metadata("urllib3", "1.26.0")),
    Entry("opt", kind="dir"),
    Entry("opt/.wh..wh..opq"),
    Entry("opt/new/node_modules/kept/package.json", '{"name":"kept","version":"2.0.0"}'),
    Entry(
        "var/lib/dpkg/status",
        STATUS.replace("Version: 5.2.15-2+b2", "Version: 5.2.15-2+b7"),
    ),
]
LOWER_OPT = [Entry("opt/old/node_modules/gone/package.json", '{"name":"gone","version":"1.0.0"}')]


def _names(inventory: Inventory) -> set[str]:
    return {f"{p.ecosystem}:{p.name}@{p.version}" for p in inventory.packages}


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_layout_applies_layers_and_whiteouts(tmp_path: Path, compression: str) -> None:
    layers = [layer_tar(BASE_LAYER + LOWER_OPT), layer_tar(UPPER_LAYER)]
    layout = single_image_layout(tmp_path / "layout", layers, compression)
    inventory = load_target(layout)
    assert inventory.warnings == ()
    assert inventory.distro is not None
    assert inventory.distro.codename == "bookworm"
    assert _names(inventory) == {
        "deb:bash@5.2.15-2+b7",
        "deb:libc6@2.36-9+deb12u4",
        "deb:openssl@3.0.11-1~deb12u2",
        "deb:zlib1g@1:1.2.13.dfsg-1",
        "pypi:urllib3@1.26.0",
        "npm:kept@2.0.0",
    }


def test_opaque_whiteout_keeps_same_layer_entries_in_any_order(tmp_path: Path) -> None:
    upper = [
        Entry("opt/new/node_modules/kept/package.json", '{"name":"kept","version":"2.0.0"}'),
        Entry("opt/.wh..wh..opq"),
    ]
    layout = single_image_layout(
        tmp_path / "layout", [layer_tar(BASE_LAYER + LOWER_OPT), layer_tar(upper)]
    )
    names = _names(load_target(layout))
    assert "npm:kept@2.0.0" in names
    assert "npm:gone@1.0.0" not in names


def test_nested_index_and_platform_selection(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    amd64 = image_manifest(layout, [layer_tar(BASE_LAYER)], arch="amd64")
    arm64_layer = [*BASE_LAYER, Entry(f"{SITE}/arm-1.0.dist-info/METADATA", metadata("arm", "1.0"))]
    arm64 = image_manifest(layout, [layer_tar(arm64_layer)], arch="arm64")
    attestation = {**amd64, "platform": {"os": "unknown", "architecture": "unknown"}}
    write_layout(layout, [amd64, arm64, attestation], nested=True)
    assert "pypi:arm@1.0" not in _names(load_target(layout))
    assert "pypi:arm@1.0" in _names(load_target(layout, platform="linux/arm64"))
    with pytest.raises(InputError, match="no image for platform linux/s390x") as caught:
        load_target(layout, platform="linux/s390x")
    assert caught.value.hint is not None
    assert "linux/amd64, linux/arm64" in caught.value.hint
    with pytest.raises(InputError, match="is not os/arch"):
        load_target(layout, platform="amd64")


def _layer_blob(layout: Path) -> Path:
    index = json.loads((layout / "index.json").read_text())
    manifest_blob = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_blob.read_text())
    digest: str = manifest["layers"][0]["digest"]
    return layout / "blobs/sha256" / digest.split(":")[1]


def test_layer_digest_mismatch_is_an_input_error(tmp_path: Path) -> None:
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER)], "none")
    blob = _layer_blob(layout)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0x01  # flip one bit inside the first member's data
    blob.write_bytes(bytes(data))
    with pytest.raises(LayoutError, match="does not match its digest") as caught:
        load_target(layout)
    assert caught.value.exit_code == 2  # kiln.oci's one error for a damaged layout


def test_manifest_digest_mismatch_is_an_input_error(tmp_path: Path) -> None:
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER)])
    index = json.loads((layout / "index.json").read_text())
    blob = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    blob.write_text(blob.read_text().replace('"schemaVersion": 2', '"schemaVersion":  2'))
    with pytest.raises(InputError, match="manifest sha256:"):
        load_target(layout)


def test_truncated_layer_blob_is_an_input_error(tmp_path: Path) -> None:
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER)], "gzip")
    blob = _layer_blob(layout)
    blob.write_bytes(blob.read_bytes()[:300])
    with pytest.raises(InputError, match="does not match its digest"):
        load_target(layout)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_truncated_tar_with_matching_digest_is_an_input_error(
    tmp_path: Path, compression: str
) -> None:
    truncated = layer_tar(BASE_LAYER)[:1700]  # cut inside a member's data
    layout = single_image_layout(tmp_path / "layout", [truncated], compression)
    with pytest.raises(InputError, match="is not a readable tar"):
        load_target(layout)


def test_missing_blob_and_bad_index(tmp_path: Path) -> None:
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER)])
    _layer_blob(layout).unlink()
    with pytest.raises(InputError, match="is missing"):
        load_target(layout)
    entry = '{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "x", "size": 1}'
    (layout / "index.json").write_text(f'{{"schemaVersion": 2, "manifests": [{entry}]}}')
    with pytest.raises(InputError, match=r"invalid ImageIndex") as caught:
        load_target(layout)
    assert caught.value.location is not None
    assert caught.value.location.field == "manifests.0.digest"


def test_members_escaping_the_root_are_skipped_and_absolute_names_rooted(
    tmp_path: Path,
) -> None:
    hostile = [
        Entry("../../etc/os-release", "ID=evil\n"),
        Entry("usr/../../var/lib/dpkg/status", "Package: evil\nVersion: 1\n"),
        Entry(f"/{SITE}/abs-1.0.dist-info/METADATA", metadata("abs", "1.0")),
        Entry("./usr/lib/os-release", OS_RELEASE),
    ]
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER + hostile)])
    inventory = load_target(layout)
    assert inventory.distro is not None
    assert inventory.distro.id == "debian"
    assert "pypi:abs@1.0" in _names(inventory)
    assert "deb:evil@1" not in _names(inventory)
    escapes = [w for w in inventory.warnings if "escapes the root filesystem" in w]
    assert len(escapes) == 2
    assert "'../../etc/os-release'" in escapes[0]


def test_symlink_loops_and_escapes_inside_layers(tmp_path: Path) -> None:
    layer = [
        Entry("etc/os-release", kind="symlink", target="/etc/os-release"),  # loop
        Entry("usr/lib/os-release", kind="symlink", target="../../../../../outside/os-release"),
        Entry("outside/os-release", OS_RELEASE),  # the root's own /outside
        Entry("var/lib/dpkg/status", STATUS),
        Entry("var/lib/dpkg/status-hardlink", kind="hardlink", target="var/lib/dpkg/status"),
        Entry("dangling", kind="hardlink", target="no/such/file"),
    ]
    inventory = load_target(single_image_layout(tmp_path / "layout", [layer_tar(layer)]))
    assert "/etc/os-release: symlink loop, not read" in inventory.warnings
    assert inventory.distro is not None
    assert inventory.distro.version_id == "12"
    assert len(inventory.packages) == 4
    assert any("hard link 'dangling'" in w for w in inventory.warnings)


def test_hardlinked_metadata_is_read(tmp_path: Path) -> None:
    layer = [
        *BASE_LAYER,
        Entry(f"{SITE}/h-1.0.dist-info/METADATA", metadata("h", "1.0")),
        Entry(
            f"{SITE}/h2-1.0.dist-info/METADATA",
            kind="hardlink",
            target=f"{SITE}/h-1.0.dist-info/METADATA",
        ),
    ]
    inventory = load_target(single_image_layout(tmp_path / "layout", [layer_tar(layer)]))
    h = next(p for p in inventory.packages if p.name == "h")
    assert len(h.locations) == 2


def test_oci_archive(tmp_path: Path) -> None:
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER)])
    archive = tar_directory(layout, tmp_path / "image.tar")
    assert _names(load_target(archive)) == _names(load_target(layout))


def test_docker_archive_and_diff_id_check(tmp_path: Path) -> None:
    layers = [layer_tar(BASE_LAYER + LOWER_OPT), layer_tar(UPPER_LAYER)]
    archive = docker_archive(tmp_path / "docker.tar", layers)
    assert "npm:kept@2.0.0" in _names(load_target(archive))
    wrong = docker_archive(
        tmp_path / "wrong.tar", layers, diff_ids=[sha256(layers[0]), sha256(b"other")]
    )
    with pytest.raises(LayoutError, match="does not match its diff_id") as caught:
        load_target(wrong)
    assert caught.value.exit_code == 2  # a local file the user gave, not the environment


def test_plain_rootfs_tar(tmp_path: Path) -> None:
    path = tmp_path / "rootfs.tar"
    path.write_bytes(layer_tar(BASE_LAYER))
    inventory = load_target(path)
    assert "pypi:requests@2.19.0" in _names(inventory)
    assert inventory.distro is not None


def test_truncated_archive_is_an_input_error(tmp_path: Path) -> None:
    layout = single_image_layout(tmp_path / "layout", [layer_tar(BASE_LAYER)])
    archive = tar_directory(layout, tmp_path / "image.tar")
    with tarfile.open(archive) as tar:
        layer = max(tar.getmembers(), key=lambda m: m.size)  # the layer blob
    archive.write_bytes(archive.read_bytes()[: layer.offset_data + layer.size // 2])
    with pytest.raises(InputError, match="truncated tar archive"):
        load_target(archive)
    archive.write_bytes(archive.read_bytes()[: layer.offset + 100])  # inside a header
    with pytest.raises(InputError, match="truncated tar archive"):
        load_target(archive)


SKOPEO = shutil.which("skopeo")


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (make apt)")
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_archives_written_by_skopeo(tmp_path: Path, transport: str) -> None:
    layers = [layer_tar(BASE_LAYER + LOWER_OPT), layer_tar(UPPER_LAYER)]
    layout = single_image_layout(tmp_path / "layout", layers)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_text(json.dumps(index))
    target = tmp_path / f"{transport}.tar"
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            f"oci:{layout}:latest",
            f"{transport}:{target}:example/image:latest",
        ],
        check=True,
        capture_output=True,
    )
    assert _names(load_target(target)) == _names(load_target(layout))


def test_layer_cut_at_a_header_boundary_is_reported(tmp_path: Path) -> None:
    full = layer_tar(BASE_LAYER)
    with tarfile.open(fileobj=io.BytesIO(full)) as tar:
        last = tar.getmembers()[-1]
    cut = full[: last.offset]  # the digest is over the cut bytes, so only the tar shows it
    inventory = load_target(single_image_layout(tmp_path / "layout", [cut], "gzip"))
    assert any("no end-of-archive marker" in w for w in inventory.warnings)


def test_members_under_a_symlinked_directory_follow_it_inside_the_root(tmp_path: Path) -> None:
    lower = [
        *BASE_LAYER,
        Entry("usr/lib", kind="dir"),
        Entry("tmp", kind="dir"),
        Entry("lib", kind="symlink", target="usr/lib"),
        Entry("evil", kind="symlink", target="../../../../tmp"),
        Entry("loop", kind="symlink", target="loop"),
    ]
    upper = [
        Entry("lib/python3/dist-packages/x-1.dist-info/METADATA", metadata("x", "1")),
        Entry("evil/y-1.dist-info/METADATA", metadata("y", "1")),
        Entry("loop/z-1.dist-info/METADATA", metadata("z", "1")),
    ]
    inventory = load_target(
        single_image_layout(tmp_path / "layout", [layer_tar(lower), layer_tar(upper)])
    )
    by_name = {p.name: p for p in inventory.packages}
    assert by_name["x"].locations == ("/usr/lib/python3/dist-packages/x-1.dist-info/METADATA",)
    assert by_name["y"].locations == ("/tmp/y-1.dist-info/METADATA",)  # the root's own /tmp
    assert "z" not in by_name
    assert any(
        "'loop/z-1.dist-info/METADATA' lies under a symlink loop" in w for w in inventory.warnings
    )


def test_docker_archive_without_its_config(tmp_path: Path) -> None:
    archive = docker_archive(tmp_path / "docker.tar", [layer_tar(BASE_LAYER)])
    with tarfile.open(archive) as tar:
        members = []
        for m in tar.getmembers():
            content = tar.extractfile(m)
            assert content is not None  # a docker archive holds regular files only
            members.append((m, content.read()))
    with tarfile.open(archive, "w") as tar:
        for member, data in members:
            if not member.name.endswith(".json") or member.name == "manifest.json":
                tar.addfile(member, io.BytesIO(data))
    with pytest.raises(InputError, match=r"config .* is missing"):
        load_target(archive)


def test_layout_and_unpacked_rootfs_agree_on_pruned_doc_trees(tmp_path: Path) -> None:
    doc = [
        *BASE_LAYER,
        Entry("usr/share/doc/node/example/package.json", '{"name":"ex","version":"1.0.0"}'),
    ]
    layout = single_image_layout(tmp_path / "layout", [layer_tar(doc)])
    root = tmp_path / "root"
    with tarfile.open(fileobj=io.BytesIO(layer_tar(doc))) as tar:
        tar.extractall(root, filter="tar")
    from_layout, from_dir = load_target(layout), load_target(root)
    assert "npm:ex@1.0.0" not in _names(from_layout)
    assert [p.purl for p in from_layout.packages] == [p.purl for p in from_dir.packages]


@pytest.mark.parametrize("size", [512, 1000, 10240, 3 * 1024 * 1024])
def test_a_zero_filled_file_is_not_an_image(tmp_path: Path, size: int) -> None:
    zeros = tmp_path / "disk.img"
    zeros.write_bytes(bytes(size))
    with pytest.raises(InputError, match="not an image: the file holds only zero bytes"):
        load_target(zeros)
    zeros.write_bytes(bytes(10240) + layer_tar(BASE_LAYER))
    with pytest.raises(InputError, match="not an image: the tar archive ends at its first"):
        load_target(zeros)


def test_a_deeply_nested_docker_archive_manifest_is_an_input_error(tmp_path: Path) -> None:
    archive = tmp_path / "nested.tar"
    deep = b"[" * 5000 + b"]" * 5000
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(deep)
        tar.addfile(info, io.BytesIO(deep))
    with pytest.raises(InputError, match=r"manifest\.json: the docker-archive manifest nests"):
        load_target(archive)
