"""Push generated OCI layouts to a real docker-registry and pull them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.registry import FaultProxy, RunningRegistry
from kiln.errors import InputError, IntegrityError
from kiln.oci.layout import LayoutError
from kiln.registry import (
    BlobOutcome,
    Descriptor,
    ImageIndex,
    ImageLayout,
    Reference,
    RegistryNotFoundError,
    pull_layout,
    push_layout,
)

from .helpers import client_for
from .layouts import tree, write_layout


def test_push_then_pull_is_bit_identical(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="roundtrip", tag="1.0")
    target = Reference.parse(f"{registry.host}/kiln/roundtrip:1.0")
    with client_for(registry) as client:
        pushed = push_layout(client, source.path, target, extra_tags=("1", "latest"))
        assert pushed.digest == source.index.digest
        assert pushed.reference.digest == source.index.digest
        assert pushed.tags == ("1.0", "1", "latest")
        # Blobs: 1 shared layer + 2 per-arch layers + 2 configs; manifests: 2 + index + 3 tags.
        assert pushed.stats.blobs_uploaded == len(source.blobs) == 5
        assert pushed.stats.blob_bytes_uploaded == sum(d.size for d in source.blobs)
        assert pushed.stats.manifests_uploaded == 6
        pulled = pull_layout(client, target, tmp_path / "out")
        assert sorted(client.list_tags("kiln/roundtrip")) == ["1", "1.0", "latest"]
    assert pulled.descriptor.digest == source.index.digest
    assert tree(tmp_path / "out") == tree(source.path)


def test_pull_by_digest_and_platform_manifest(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="by-digest")
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/bydigest:1.0"))
        arm64 = source.manifests[1]
        ref = Reference.parse(f"{registry.host}/kiln/bydigest@{arm64.digest}")
        pulled = pull_layout(client, ref, tmp_path / "arm64")
    layout = ImageLayout.open(tmp_path / "arm64")
    assert layout.select().digest == arm64.digest
    assert layout.index.manifests[0].annotations is None  # no tag, so no ref name
    assert pulled.stats.bytes_downloaded > 0


def test_warm_push_uploads_no_blob_bytes(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="warm")
    target = Reference.parse(f"{registry.host}/kiln/warm:1.0")
    with client_for(registry) as client:
        cold = push_layout(client, source.path, target)
        warm = push_layout(client, source.path, target)
    assert cold.stats.blob_bytes_uploaded > 0
    assert warm.stats.blob_bytes_uploaded == 0
    assert warm.stats.blobs_uploaded == 0
    assert warm.stats.blobs_existing == len(source.blobs)
    # Only the tag is written again: the manifests by digest are already there.
    assert warm.stats.manifests_uploaded == 1
    assert warm.stats.bytes_uploaded == warm.stats.manifest_bytes_uploaded == source.index.size
    assert warm.digest == cold.digest


def test_cross_repository_mount(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="mount")
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/mount-a:1.0"))
        second = push_layout(
            client,
            source.path,
            Reference.parse(f"{registry.host}/kiln/mount-b:1.0"),
            mount_from=("kiln/mount-a",),
        )
        assert second.stats.blobs_mounted == len(source.blobs)
        assert second.stats.blob_bytes_uploaded == 0
        pull_layout(client, Reference.parse(f"{registry.host}/kiln/mount-b:1.0"), tmp_path / "b")
    assert tree(tmp_path / "b") == tree(source.path)


def test_chunked_upload_of_a_large_layer(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="chunked", big_layer=300_000)
    with (
        FaultProxy(registry.host) as proxy,
        client_for(proxy.host, chunk_threshold=100_000, chunk_size=64 * 1024) as client,
    ):
        push_layout(client, source.path, Reference.parse(f"{proxy.host}/kiln/chunked:1.0"))
        pull_layout(client, Reference.parse(f"{proxy.host}/kiln/chunked:1.0"), tmp_path / "out")
    patches = [entry for entry in proxy.log if entry[0] == "PATCH"]
    # Two ~300 kB layers in 64 KiB chunks: five PATCH requests each.
    assert len(patches) == 10
    assert all(status == 202 for _, _, status in patches)
    assert tree(tmp_path / "out") == tree(source.path)


def test_push_blob_reports_how_it_got_there(registry: RunningRegistry) -> None:
    data = b"a standalone blob"
    descriptor = Descriptor.of(data, "application/octet-stream")
    with client_for(registry) as client:
        assert client.push_blob("kiln/blobs", descriptor, data) is BlobOutcome.UPLOADED
        assert client.push_blob("kiln/blobs", descriptor, data) is BlobOutcome.EXISTED
        assert client.blob_size("kiln/blobs", descriptor.digest) == len(data)
        assert client.fetch_blob("kiln/blobs", descriptor.digest, max_bytes=100) == data
        with pytest.raises(IntegrityError, match="more than the 5 bytes"):
            client.fetch_blob("kiln/blobs", descriptor.digest, max_bytes=5)


def test_corrupt_blob_on_disk_fails_the_pull(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="corrupt")
    target = Reference.parse(f"{registry.host}/kiln/corrupt:1.0")
    layer = source.blobs[1]  # the amd64-only layer
    with client_for(registry) as client:
        push_layout(client, source.path, target)
        stored = registry.blob_file(str(layer.digest))
        original = stored.read_bytes()
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size
        with pytest.raises(IntegrityError) as caught:
            pull_layout(client, target, tmp_path / "out")
    message = str(caught.value)
    assert f"blob {layer.digest}" in message
    assert f"expected {layer.digest}, got sha256:" in message
    assert registry.host in message
    assert "kiln/corrupt" in message
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temporary left behind


def test_failed_pull_keeps_the_previous_layout(registry: RunningRegistry, tmp_path: Path) -> None:
    existing = tmp_path / "out"
    existing.mkdir()
    (existing / "keep").write_text("old")
    with client_for(registry) as client, pytest.raises(RegistryNotFoundError) as caught:
        pull_layout(client, Reference.parse(f"{registry.host}/kiln/absent:9"), existing)
    assert (existing / "keep").read_text() == "old"
    assert f"registry {registry.host}: repository kiln/absent, manifest 9" in str(caught.value)


def test_pull_replaces_an_existing_layout(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="replace")
    target = Reference.parse(f"{registry.host}/kiln/replace:1.0")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale").write_text("x")
    with client_for(registry) as client:
        push_layout(client, source.path, target)
        pull_layout(client, target, out)
    assert tree(out) == tree(source.path)


def test_layout_with_several_images_needs_a_ref_name(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    first = write_layout(tmp_path / "one", seed="one", tag="one")
    second = write_layout(tmp_path / "two", seed="two", tag="two")
    both = json.loads((first.path / "index.json").read_bytes())
    both["manifests"] += json.loads((second.path / "index.json").read_bytes())["manifests"]
    for blob in (second.path / "blobs" / "sha256").iterdir():
        (first.path / "blobs" / "sha256" / blob.name).write_bytes(blob.read_bytes())
    (first.path / "index.json").write_text(json.dumps(both))
    target = Reference.parse(f"{registry.host}/kiln/multi:x")
    with client_for(registry) as client:
        with pytest.raises(InputError, match="lists 2 manifests; say which") as caught:
            push_layout(client, first.path, target)
        assert "one, two" in caught.value.diagnostics()
        pushed = push_layout(client, first.path, target, ref_name="two")
    assert pushed.digest == second.index.digest


def test_layout_problems_are_input_errors(registry: RunningRegistry, tmp_path: Path) -> None:
    target = Reference.parse(f"{registry.host}/kiln/bad:1")
    with client_for(registry) as client:
        with pytest.raises(InputError, match="no oci-layout file"):
            push_layout(client, tmp_path, target)
        source = write_layout(tmp_path / "src", seed="missing")
        (source.path / "blobs" / "sha256" / source.blobs[0].digest.encoded).unlink()
        with pytest.raises(InputError, match=f"blob {source.blobs[0].digest} is missing"):
            push_layout(client, source.path, target)
        manifest_file = source.path / "blobs" / "sha256" / source.manifests[0].digest.encoded
        manifest_file.write_bytes(manifest_file.read_bytes() + b" ")
        with pytest.raises(LayoutError, match="does not match its descriptor"):
            push_layout(client, source.path, target)
        with pytest.raises(InputError, match="this client talks to"):
            push_layout(client, source.path, Reference.parse("localhost:1/kiln/bad:1"))
    assert registry.tags("kiln/bad") == []


def test_manifest_model_round_trip(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="model")
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/model:1.0"))
        fetched = client.get_manifest("kiln/model", "1.0")
    assert fetched.digest == source.index.digest
    assert isinstance(fetched.parsed, ImageIndex)
    assert [m.platform.architecture for m in fetched.parsed.manifests if m.platform] == [
        "amd64",
        "arm64",
    ]


def test_layout_naming_the_index_and_its_platforms_pushes_the_index(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """kiln's builds name the index ``<tag>`` and each platform ``<tag>-<arch>``."""
    source = write_layout(tmp_path / "src", seed="named-platforms", tag="1.0")
    index = json.loads((source.path / "index.json").read_bytes())
    for arch, manifest in zip(("amd64", "arm64"), source.manifests, strict=True):
        index["manifests"].append(
            manifest.to_json()
            | {"annotations": {"org.opencontainers.image.ref.name": f"1.0-{arch}"}}
        )
    (source.path / "index.json").write_text(json.dumps(index))
    with client_for(registry) as client:
        pushed = push_layout(
            client, source.path, Reference.parse(f"{registry.host}/kiln/named:1.0")
        )
        arm64 = push_layout(
            client,
            source.path,
            Reference.parse(f"{registry.host}/kiln/named:arm64"),
            ref_name="1.0-arm64",
        )
    assert pushed.digest == source.index.digest
    assert arm64.digest == source.manifests[1].digest
