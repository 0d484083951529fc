"""kiln.oci: verified, bounded blob reads that fail one way, and platform choice."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest
import zstandard

from kiln.errors import InputError
from kiln.inventory import load_target
from kiln.oci.digest import Digest
from kiln.oci.layout import (
    HashingReader,
    ImageLayout,
    LayoutError,
    decompressed,
    index_entry,
    open_blob,
    read_blob,
    write_blob,
    write_index,
    write_marker,
)
from kiln.oci.model import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    Platform,
    choose_platform,
)

DATA = b'{"hello": "layout"}'


def _layout(tmp_path: Path) -> tuple[Path, Descriptor]:
    root = tmp_path / "layout"
    root.mkdir()
    write_marker(root)
    write_blob(root, DATA)
    descriptor = Descriptor.of(DATA, OCI_MANIFEST)
    write_index(root, [index_entry(descriptor, "latest")])
    return root, descriptor


def test_a_blob_reads_back_verified(tmp_path: Path) -> None:
    root, descriptor = _layout(tmp_path)
    assert read_blob(root, descriptor, max_bytes=1024) == DATA
    assert read_blob(root, str(descriptor.digest), max_bytes=1024) == DATA
    layout = ImageLayout.open(root)
    assert layout.first_tag() == "latest"
    assert layout.select() == index_entry(descriptor, "latest")


def test_a_blob_of_another_size_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root, descriptor = _layout(tmp_path)
    bigger = descriptor.model_copy(update={"size": descriptor.size + 1})
    with pytest.raises(LayoutError, match="bytes, the descriptor says") as caught:
        read_blob(root, bigger, max_bytes=1024)
    assert caught.value.exit_code == 2
    with pytest.raises(LayoutError, match="over the 4 limit"):
        read_blob(root, descriptor.digest, max_bytes=4)


def test_a_blob_that_does_not_hash_to_its_digest_is_refused(tmp_path: Path) -> None:
    root, descriptor = _layout(tmp_path)
    path = root / "blobs/sha256" / descriptor.digest.encoded
    path.write_bytes(DATA.replace(b"hello", b"HELLO"))  # same size, other bytes
    with pytest.raises(LayoutError, match="does not match its digest"):
        read_blob(root, descriptor, max_bytes=1024)
    with pytest.raises(LayoutError, match=r"manifest sha256:[0-9a-f]{64} does not match"):
        ImageLayout.open(root).manifest(descriptor)


def test_missing_blobs_and_malformed_digests_are_layout_errors(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    with pytest.raises(LayoutError, match="is missing from blobs/"):
        read_blob(root, Digest.of(b"absent"), max_bytes=1024)
    with pytest.raises(LayoutError, match="has 3 hex digits"):
        read_blob(root, "sha256:abc", max_bytes=1024)
    with pytest.raises(LayoutError, match=r"uses algorithm 'md5'"):
        read_blob(root, "md5:" + "0" * 32, max_bytes=1024)


def test_a_blob_that_is_no_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    root, _ = _layout(tmp_path)
    fifo = Descriptor.of(b"never written", OCI_MANIFEST)
    os.mkfifo(root / "blobs/sha256" / fifo.digest.encoded)  # reading it would wait forever
    with pytest.raises(LayoutError, match="is not a regular file"):
        read_blob(root, fifo, max_bytes=1024)
    with pytest.raises(LayoutError, match="is not a regular file"):
        open_blob(root, fifo)
    write_index(root, [index_entry(fifo, "latest")])  # the inventory reads it too
    with pytest.raises(LayoutError, match="is not a regular file"):
        load_target(root)


def test_a_streamed_blob_is_verified_at_its_end(tmp_path: Path) -> None:
    root, descriptor = _layout(tmp_path)
    with open_blob(root, descriptor) as raw:
        reader = HashingReader(raw)
        reader.verify(descriptor, "the blob")  # drains and matches
    assert reader.size == len(DATA)
    other = Descriptor.of(DATA[::-1], OCI_MANIFEST)
    (root / "blobs/sha256" / other.digest.encoded).write_bytes(DATA)  # wrong content
    with open_blob(root, other) as raw, pytest.raises(LayoutError, match="does not match"):
        HashingReader(raw).verify(other, "the blob")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no oci-layout file"),
        ('{"imageLayoutVersion": "2.0.0"}', "imageLayoutVersion is '2.0.0'"),
        ("[", "oci-layout"),
    ],
)
def test_what_is_not_a_layout_says_why(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "oci-layout").write_text(content)
    with pytest.raises(LayoutError, match=message) as caught:
        ImageLayout.open(tmp_path)
    assert caught.value.exit_code == 2


def test_an_index_json_of_the_wrong_shape_names_the_field(tmp_path: Path) -> None:
    write_marker(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{}]}))
    with pytest.raises(LayoutError) as caught:
        ImageLayout.open(tmp_path)
    assert caught.value.location is not None
    assert caught.value.location.field == "manifests.0.mediaType"


def _entry(arch: str, *, os: str = "linux", variant: str | None = None) -> Descriptor:
    platform = Platform(os=os, architecture=arch, variant=variant)
    return Descriptor.of(arch.encode() + (variant or "").encode(), OCI_MANIFEST, platform=platform)


def _index(*entries: Descriptor) -> ImageIndex:
    manifests = [e.to_json() for e in entries]
    return ImageIndex.model_validate(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    )


def test_the_platform_is_chosen_exactly_and_attestations_are_skipped() -> None:
    amd64, arm64 = _entry("amd64"), _entry("arm64", variant="v8")
    attestation = _entry("unknown", os="unknown")
    index = _index(attestation, amd64, arm64)
    assert choose_platform(index, None, "here") == amd64  # linux/amd64 by default
    assert choose_platform(index, "linux/arm64", "here") == arm64
    assert choose_platform(index, "linux/arm64/v8", "here") == arm64
    with pytest.raises(InputError, match="no image for platform linux/arm64/v7") as caught:
        choose_platform(index, "linux/arm64/v7", "here")
    assert "available: linux/amd64, linux/arm64/v8" in caught.value.diagnostics()
    with pytest.raises(InputError, match="is not os/arch or os/arch/variant"):
        choose_platform(index, "arm64", "here")
    alone = _index(attestation, arm64)
    assert choose_platform(alone, None, "here") == arm64  # the one image there is
    with pytest.raises(InputError, match="lists no image manifests"):
        choose_platform(_index(attestation), None, "here")


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar",
    ],
)
def test_layers_of_every_type_decompress_to_their_tar(media_type: str) -> None:
    tar = b"ustar bytes" * 100
    if "gzip" in media_type:
        packed = gzip.compress(tar)
    elif "zstd" in media_type:
        packed = zstandard.ZstdCompressor().compress(tar)
    else:
        packed = tar
    assert decompressed(media_type, io.BytesIO(packed), where="w").read() == tar


def test_an_unknown_layer_type_is_named() -> None:
    with pytest.raises(LayoutError, match=r"w: unsupported layer media type 'text/plain'"):
        decompressed("text/plain", io.BytesIO(b""), where="w")
