"""Manifest parsing: what kiln accepts from a registry, and how it refuses the rest."""

from __future__ import annotations

import json

import pytest

from kiln.errors import RemoteContentError
from kiln.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE,
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    artifact_manifest,
    parse_manifest,
)

CONFIG = {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": str(Digest.of(b"{}")),
    "size": 2,
}


def _parse(document: object, media_type: str | None) -> object:
    data = json.dumps(document).encode()
    return parse_manifest(data, media_type, Digest.of(data), where="reg/repo@x").parsed


def test_docker_types_are_accepted() -> None:
    manifest = _parse(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": CONFIG, "layers": []},
        DOCKER_MANIFEST,
    )
    assert isinstance(manifest, ImageManifest)
    listing = _parse(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [
                dict(
                    CONFIG,
                    platform={
                        "architecture": "arm64",
                        "os": "linux",
                        "variant": "v8",
                        "features": ["x"],
                    },
                )
            ],
        },
        f"{DOCKER_MANIFEST_LIST}; charset=utf-8",
    )
    assert isinstance(listing, ImageIndex)
    assert listing.manifests[0].platform is not None
    assert listing.manifests[0].platform.variant == "v8"


def test_media_type_from_the_document_when_served_generically() -> None:
    index = _parse(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, "application/json"
    )
    assert isinstance(index, ImageIndex)
    bare = _parse({"schemaVersion": 2, "config": CONFIG, "layers": []}, None)
    assert isinstance(bare, ImageManifest)


def test_unknown_fields_are_ignored_as_the_image_spec_requires() -> None:
    parsed = _parse(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": CONFIG,
            "layers": [],
            "futureField": {"x": 1},
        },
        OCI_MANIFEST,
    )
    assert isinstance(parsed, ImageManifest)


@pytest.mark.parametrize(
    ("data", "media_type", "expected"),
    [
        (b"\xff\xfe", OCI_MANIFEST, "manifest is not JSON"),
        (b"{", OCI_MANIFEST, "manifest is not JSON"),
        (b'"text"', OCI_MANIFEST, "is a JSON str, not an object"),
        (b'{"schemaVersion": 2}', "text/plain", "unsupported manifest media type 'text/plain'"),
        (
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
            OCI_MANIFEST,
            f"says mediaType '{OCI_INDEX}' but was served as '{OCI_MANIFEST}'",
        ),
        (
            json.dumps({"schemaVersion": 1, "config": CONFIG, "layers": []}).encode(),
            OCI_MANIFEST,
            "at schemaVersion",
        ),
        (
            json.dumps({"schemaVersion": 2, "layers": []}).encode(),
            OCI_MANIFEST,
            "at config: Field required",
        ),
        (
            json.dumps(
                {"schemaVersion": 2, "config": dict(CONFIG, digest="sha256:12"), "layers": []}
            ).encode(),
            OCI_MANIFEST,
            "at config.digest",
        ),
        (
            json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "x"}]}).encode(),
            OCI_INDEX,
            "at manifests.0.digest",
        ),
    ],
)
def test_malformed_manifests(data: bytes, media_type: str, expected: str) -> None:
    with pytest.raises(RemoteContentError) as caught:
        parse_manifest(data, media_type, Digest.of(data), where="reg/repo@x")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("reg/repo@x: ")


def test_artifact_manifest_shape() -> None:
    subject = Descriptor.model_validate(
        {**CONFIG, "mediaType": OCI_MANIFEST, "annotations": {"dropped": "yes"}}
    )
    manifest, layer = artifact_manifest(
        subject,
        artifact_type=SIGSTORE_BUNDLE,
        payload=b'{"b":1}',
        payload_media_type=SIGSTORE_BUNDLE,
    )
    document = json.loads(manifest.data)
    assert document == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE,
        "config": {"mediaType": OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2},
        "layers": [{"mediaType": SIGSTORE_BUNDLE, "digest": str(layer.digest), "size": 7}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": CONFIG["digest"], "size": 2},
    }
    assert manifest.digest == Digest.of(manifest.data)
    assert manifest.descriptor.artifact_type == SIGSTORE_BUNDLE
