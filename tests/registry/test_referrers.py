"""Referrers: attach artifacts to an image and discover them again.

Against the real docker-registry (no referrers API) kiln's referrers tag fallback runs
for real. The API path runs against ``ReferrersApiFacade``, a fake referrers API put
in front of the same registry by ``FaultProxy`` (tests/fixtures/registry.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.registry import FaultProxy, ReferrersApiFacade, RunningRegistry
from kiln.errors import RemoteContentError
from kiln.registry import (
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    SIGSTORE_BUNDLE,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Reference,
    RegistryClient,
    attach_artifact,
    list_referrers,
    push_layout,
)

from .helpers import client_for
from .layouts import write_layout

SPDX = "application/spdx+json"


def _image(client: RegistryClient, tmp_path: Path, repository: str) -> Descriptor:
    source = write_layout(tmp_path / repository.replace("/", "-"), seed=repository)
    ref = Reference.parse(f"{client.registry}/{repository}:1.0")
    return push_layout(client, source.path, ref).descriptor


def _attach_two(client: RegistryClient, repository: str, subject: Descriptor) -> list[Descriptor]:
    bundle = json.dumps({"mediaType": SIGSTORE_BUNDLE, "note": "test bundle"}).encode()
    sbom = json.dumps({"spdxVersion": "SPDX-2.3"}).encode()
    return [
        attach_artifact(
            client,
            repository,
            subject,
            artifact_type=SIGSTORE_BUNDLE,
            payload=bundle,
            payload_media_type=SIGSTORE_BUNDLE,
            annotations={"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"},
        ),
        attach_artifact(
            client,
            repository,
            subject,
            artifact_type=SPDX,
            payload=sbom,
            payload_media_type=SPDX,
        ),
    ]


def test_referrers_through_the_tag_fallback(registry: RunningRegistry, tmp_path: Path) -> None:
    repository = "kiln/referred"
    with client_for(registry) as client:
        subject = _image(client, tmp_path, repository)
        attached = _attach_two(client, repository, subject)
        found = list_referrers(client, repository, subject.digest)
        only_bundles = list_referrers(
            client, repository, subject.digest, artifact_type=SIGSTORE_BUNDLE
        )
        # The fallback index is a real OCI index under the referrers tag schema name.
        fallback = client.get_manifest(repository, subject.digest.fallback_tag)
        artifact = client.get_manifest(repository, attached[0].digest)
    assert [d.digest for d in found] == [d.digest for d in attached]
    assert [d.artifact_type for d in found] == [SIGSTORE_BUNDLE, SPDX]
    assert found[0].annotations == {
        "dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"
    }
    assert [d.digest for d in only_bundles] == [attached[0].digest]
    assert f"sha256-{subject.digest.encoded}" in registry.tags(repository)
    assert fallback.media_type == OCI_INDEX
    assert isinstance(artifact.parsed, ImageManifest)
    assert artifact.parsed.subject is not None
    assert artifact.parsed.subject.digest == subject.digest
    assert artifact.parsed.artifact_type == SIGSTORE_BUNDLE
    assert artifact.parsed.config.media_type == OCI_EMPTY
    assert artifact.parsed.config.size == len(EMPTY_JSON)
    assert [layer.media_type for layer in artifact.parsed.layers] == [SIGSTORE_BUNDLE]


def test_attaching_again_does_not_duplicate(registry: RunningRegistry, tmp_path: Path) -> None:
    repository = "kiln/idempotent"
    with client_for(registry) as client:
        subject = _image(client, tmp_path, repository)
        first = _attach_two(client, repository, subject)
        second = _attach_two(client, repository, subject)
        found = list_referrers(client, repository, subject.digest)
    assert first == second
    assert len(found) == 2


def test_no_referrers_is_an_empty_list(registry: RunningRegistry, tmp_path: Path) -> None:
    with client_for(registry) as client:
        subject = _image(client, tmp_path, "kiln/lonely")
        assert list_referrers(client, "kiln/lonely", subject.digest) == ()


def test_foreign_manifest_under_the_referrers_tag_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repository = "kiln/squatted"
    with client_for(registry) as client:
        subject = _image(client, tmp_path, repository)
        first_platform = client.get_manifest(repository, "1.0").parsed
        assert isinstance(first_platform, ImageIndex)
        platform = client.get_manifest(repository, first_platform.manifests[0].digest)
        client.put_manifest(repository, platform, subject.digest.fallback_tag)
        with pytest.raises(RemoteContentError, match="holds an image manifest, not an index"):
            list_referrers(client, repository, subject.digest)


def test_referrers_through_the_api(registry: RunningRegistry, tmp_path: Path) -> None:
    repository = "kiln/api"
    facade = ReferrersApiFacade()
    with (
        FaultProxy(
            registry.host,
            request_hook=facade.request_hook,
            response_hook=facade.response_hook,
        ) as proxy,
        client_for(proxy.host) as client,
    ):
        subject = _image(client, tmp_path, repository)
        attached = _attach_two(client, repository, subject)
        found = list_referrers(client, repository, subject.digest)
        bundles = list_referrers(client, repository, subject.digest, artifact_type=SPDX)
    assert [d.digest for d in found] == [d.digest for d in attached]
    assert [d.digest for d in bundles] == [attached[1].digest]
    assert facade.api_calls == 2
    # The registry echoed OCI-Subject, so no fallback tag was written.
    assert registry.tags(repository) == ["1.0"]
