"""Faults: retries, a registry that goes away, and registries that lie.

Faults are injected by ``FaultProxy`` (tests/fixtures/registry.py), a loopback HTTP
proxy in front of the real docker-registry that can answer, drop or rewrite requests.
Timeouts and resets inside the HTTP client are simulated with httpx's MockTransport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.registry import (
    Drop,
    FaultProxy,
    ProxiedRequest,
    Respond,
    ResponseHook,
    RunningRegistry,
    Upstream,
    free_port,
)
from kiln.errors import IntegrityError, RemoteContentError, TransportError
from kiln.net import RetryPolicy
from kiln.registry import (
    OCI_MANIFEST,
    Anonymous,
    Digest,
    ImageIndex,
    ImageManifest,
    Manifest,
    Reference,
    RegistryClient,
    RegistryRequestError,
    RegistrySession,
    pull_layout,
    push_layout,
)

from .helpers import RecordingSleep, client_for, empty_manifest_body
from .layouts import tree, write_layout


def test_blob_put_answering_500_twice_then_201_succeeds(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    failures = {"left": 2}

    def fail_first_two_blob_puts(request: ProxiedRequest) -> Respond | None:
        if request.method == "PUT" and "/blobs/uploads/" in request.path and failures["left"]:
            failures["left"] -= 1
            return Respond(500, b'{"errors":[{"code":"UNKNOWN","message":"injected"}]}')
        return None

    source = write_layout(tmp_path / "src", seed="flaky")
    sleep = RecordingSleep()
    with (
        FaultProxy(registry.host, request_hook=fail_first_two_blob_puts) as proxy,
        client_for(proxy.host, sleep=sleep) as client,
    ):
        pushed = push_layout(client, source.path, Reference.parse(f"{proxy.host}/kiln/flaky:1.0"))
        pull_layout(client, Reference.parse(f"{proxy.host}/kiln/flaky:1.0"), tmp_path / "out")
    puts = [status for method, path, status in proxy.log if method == "PUT" and "uploads" in path]
    assert puts[:3] == [500, 500, 201]
    assert sleep.delays == [0.25, 0.5]  # exponential backoff from the default policy
    assert pushed.stats.blobs_uploaded == len(source.blobs)
    assert tree(tmp_path / "out") == tree(source.path)


def test_dropped_connection_is_retried(registry: RunningRegistry, tmp_path: Path) -> None:
    dropped: list[str] = []

    def drop_first_manifest_get(request: ProxiedRequest) -> Drop | None:
        if request.method == "GET" and "/manifests/" in request.path and not dropped:
            dropped.append(request.path)
            return Drop()
        return None

    source = write_layout(tmp_path / "src", seed="reset")
    with (
        FaultProxy(registry.host, request_hook=drop_first_manifest_get) as proxy,
        client_for(proxy.host) as client,
    ):
        push_layout(client, source.path, Reference.parse(f"{proxy.host}/kiln/reset:1.0"))
        pull_layout(client, Reference.parse(f"{proxy.host}/kiln/reset:1.0"), tmp_path / "out")
    assert len(dropped) == 1
    assert tree(tmp_path / "out") == tree(source.path)


def test_registry_down_is_a_clear_transport_error(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    source = write_layout(tmp_path / "src", seed="down")
    sleep = RecordingSleep()
    with (
        client_for(host, sleep=sleep) as client,
        pytest.raises(TransportError) as caught,
    ):
        push_layout(client, source.path, Reference.parse(f"{host}/kiln/down:1.0"))
    message = str(caught.value)
    assert message.startswith(f"registry {host}: repository kiln/down, blob sha256:")
    assert "ConnectError" in message
    assert "gave up after 4 attempts" in message
    assert len(sleep.delays) == 3
    assert "check that the registry is running" in caught.value.diagnostics()


def test_registry_down_mid_push_leaves_no_tag(registry: RunningRegistry, tmp_path: Path) -> None:
    forwarded = {"count": 0}

    def die_after_a_few_requests(request: ProxiedRequest) -> Drop | None:
        forwarded["count"] += 1
        return Drop() if forwarded["count"] > 6 else None

    source = write_layout(tmp_path / "src", seed="midway")
    with (
        FaultProxy(registry.host, request_hook=die_after_a_few_requests) as proxy,
        client_for(proxy.host) as client,
        pytest.raises(TransportError) as caught,
    ):
        push_layout(client, source.path, Reference.parse(f"{proxy.host}/kiln/midway:1.0"))
    assert f"registry {proxy.host}: repository kiln/midway" in str(caught.value)
    assert "RemoteProtocolError" in str(caught.value)
    assert any(status == 201 for _, _, status in proxy.log)  # some content did land
    assert registry.tags("kiln/midway") == []
    with client_for(registry) as direct:
        assert direct.list_tags("kiln/midway") == ()


def _swap_body(match: str, body: bytes) -> ResponseHook:
    def hook(request: ProxiedRequest, answer: Upstream) -> None:
        if request.method == "GET" and request.path.endswith(match):
            answer.body = body

    return hook


def test_manifest_not_matching_its_digest_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    source = write_layout(tmp_path / "src", seed="lying")
    amd64, arm64 = source.manifests
    arm64_bytes = (source.path / "blobs/sha256" / arm64.digest.encoded).read_bytes()
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/lying:1.0"))
    with (
        FaultProxy(
            registry.host, response_hook=_swap_body(str(amd64.digest), arm64_bytes)
        ) as proxy,
        client_for(proxy.host) as client,
        pytest.raises(IntegrityError) as caught,
    ):
        pull_layout(client, Reference.parse(f"{proxy.host}/kiln/lying:1.0"), tmp_path / "out")
    message = str(caught.value)
    assert f"manifest {amd64.digest}" in message
    assert f"expected {amd64.digest}, got {arm64.digest}" in message
    assert not (tmp_path / "out").exists()


def test_tag_answer_contradicting_docker_content_digest_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    source = write_layout(tmp_path / "src", seed="claims")
    other = (source.path / "blobs/sha256" / source.manifests[0].digest.encoded).read_bytes()
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/claims:1.0"))
    with (
        FaultProxy(registry.host, response_hook=_swap_body("/manifests/1.0", other)) as proxy,
        client_for(proxy.host) as client,
        pytest.raises(IntegrityError, match="the digest the registry claims") as caught,
    ):
        client.get_manifest("kiln/claims", "1.0")
    assert f"expected {source.index.digest}, got {source.manifests[0].digest}" in str(caught.value)


def test_blob_longer_than_its_descriptor_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    source = write_layout(tmp_path / "src", seed="longer")
    config = source.blobs[0]
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/longer:1.0"))
    hook = _swap_body(str(config.digest), b"x" * (config.size + 10))
    with (
        FaultProxy(registry.host, response_hook=hook) as proxy,
        client_for(proxy.host) as client,
        pytest.raises(IntegrityError, match=f"more than the {config.size} bytes expected"),
    ):
        pull_layout(client, Reference.parse(f"{proxy.host}/kiln/longer:1.0"), tmp_path / "out")


def test_malformed_manifest_that_matches_its_digest_is_remote_content_error(
    registry: RunningRegistry,
) -> None:
    body = b"[1, 2]"
    digest = Digest.of(body)

    def serve(request: ProxiedRequest) -> Respond | None:
        if request.path == f"/v2/kiln/odd/manifests/{digest}":
            return Respond(200, body, {"Content-Type": OCI_MANIFEST})
        return None

    with (
        FaultProxy(registry.host, request_hook=serve) as proxy,
        client_for(proxy.host) as client,
        pytest.raises(RemoteContentError, match="manifest is a JSON list, not an object"),
    ):
        client.get_manifest("kiln/odd", digest)


def test_manifest_with_missing_blobs_is_rejected_with_registry_codes(
    registry: RunningRegistry,
) -> None:
    absent = Digest.of(b"never pushed")
    model = ImageManifest.model_validate(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(absent),
                "size": 12,
            },
            "layers": [],
        }
    )
    manifest = Manifest.from_model(model)
    with client_for(registry) as client, pytest.raises(RegistryRequestError) as caught:
        client.put_manifest("kiln/orphan", manifest)
    assert caught.value.status == 400
    assert "MANIFEST_BLOB_UNKNOWN" in caught.value.codes
    assert f"registry {registry.host}: repository kiln/orphan, manifest {manifest.digest}" in str(
        caught.value
    )


def _mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> RegistryClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    session = RegistrySession(
        "127.0.0.1:9", credentials=Anonymous(), client=http, sleep=lambda _: None
    )
    return RegistryClient(session)


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_timeouts_and_resets_are_retried(fault: Exception) -> None:
    body = empty_manifest_body()
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise fault
        return httpx.Response(200, content=body, headers={"Content-Type": OCI_MANIFEST})

    with _mock_client(handler) as client:
        manifest = client.get_manifest("kiln/x", Digest.of(body))
    assert calls["n"] == 3
    assert manifest.digest == Digest.of(body)


def test_retries_are_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    session = RegistrySession(
        "127.0.0.1:9",
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        retry=RetryPolicy(attempts=2),
        sleep=lambda _: None,
    )
    with RegistryClient(session) as client, pytest.raises(TransportError) as caught:
        client.ping()
    assert "answered 503 (gave up after 2 attempts)" in str(caught.value)


def test_https_is_used_for_non_loopback_hosts_unless_insecure() -> None:
    assert RegistrySession("reg.example.test").base_url == "https://reg.example.test"
    assert RegistrySession("reg.example.test", insecure=True).base_url == "http://reg.example.test"
    assert RegistrySession("127.0.0.1:5000").base_url == "http://127.0.0.1:5000"
    assert RegistrySession("[::1]:5000").base_url == "http://[::1]:5000"


def test_truncated_blob_is_refused(registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="truncated")
    layer = source.blobs[1]
    original = (source.path / "blobs/sha256" / layer.digest.encoded).read_bytes()
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/truncated:1.0"))
    hook = _swap_body(str(layer.digest), original[:100])
    with (
        FaultProxy(registry.host, response_hook=hook) as proxy,
        client_for(proxy.host) as client,
        pytest.raises(IntegrityError) as caught,
    ):
        pull_layout(client, Reference.parse(f"{proxy.host}/kiln/truncated:1.0"), tmp_path / "out")
    assert f"blob {layer.digest}: got 100 bytes, the descriptor says {layer.size}" in str(
        caught.value
    )
    assert f"expected {layer.digest}" in caught.value.diagnostics()


def test_index_lying_about_a_child_size_is_refused(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    source = write_layout(tmp_path / "src", seed="index-size")
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/sizes:1.0"))
        wrong = ImageIndex.model_validate(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    source.manifests[0].to_json() | {"size": source.manifests[0].size + 1}
                ],
            }
        )
        client.tag("kiln/sizes", Manifest.from_model(wrong), "lying")
        with pytest.raises(IntegrityError) as caught:
            pull_layout(
                client, Reference.parse(f"{registry.host}/kiln/sizes:lying"), tmp_path / "o"
            )
    assert f"manifest {source.manifests[0].digest}: got {source.manifests[0].size} bytes" in str(
        caught.value
    )


def test_blob_download_interrupted_mid_stream_is_restarted() -> None:
    data = b"0123456789" * 1000
    digest = Digest.of(data)
    calls = {"n": 0}

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield data[:500]
            raise httpx.ReadError("connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(200, stream=Broken())
        return httpx.Response(200, content=data)

    with _mock_client(handler) as client:
        assert client.fetch_blob("kiln/x", digest, max_bytes=len(data)) == data
    assert calls["n"] == 2


def test_blob_download_that_keeps_breaking_is_a_transport_error(tmp_path: Path) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"partial"
            raise httpx.ReadError("connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Broken())

    digest = Digest.of(b"whatever")
    target = tmp_path / "blob"
    with _mock_client(handler) as client, pytest.raises(TransportError) as caught:
        client.pull_blob("kiln/x", digest, target, size=8)
    assert f"repository kiln/x, blob {digest}: download interrupted: ReadError" in str(caught.value)
    assert "gave up after 4 attempts" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


class _CutShort(httpx.SyncByteStream):
    """A body that stops half-way, as h11 reports a close before Content-Length bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data[: len(self._data) // 2]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


_INDEX = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
).encode()
_TAGS = json.dumps({"name": "kiln/x", "tags": ["1.0", "latest"]}).encode()
_INDEX_TYPE = {"Content-Type": "application/vnd.oci.image.index.v1+json"}


@pytest.mark.parametrize(
    ("body", "read"),
    [
        (_INDEX, lambda c: c.get_manifest("kiln/x", Digest.of(_INDEX)).digest),
        (_INDEX, lambda c: c.get_manifest("kiln/x", "1.0").digest),
        (_TAGS, lambda c: c.list_tags("kiln/x")),
        (_INDEX, lambda c: c.referrers_api("kiln/x", Digest.of(b"subject")) == ()),
    ],
    ids=["manifest-by-digest", "manifest-by-tag", "tag-list", "referrers"],
)
def test_a_truncated_manifest_or_listing_is_read_again(
    body: bytes, read: Callable[[RegistryClient], object]
) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(200, stream=_CutShort(body), headers=_INDEX_TYPE)
        return httpx.Response(200, content=body, headers=_INDEX_TYPE)

    with _mock_client(handler) as client:
        assert read(client)
    assert calls["n"] == 3


def test_a_manifest_that_is_always_cut_short_is_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_CutShort(_INDEX), headers=_INDEX_TYPE)

    with _mock_client(handler) as client, pytest.raises(TransportError) as caught:
        client.get_manifest("kiln/x", "1.0")
    message = str(caught.value)
    assert "repository kiln/x, manifest 1.0: download interrupted: RemoteProtocolError" in message
    assert "gave up after 4 attempts" in message
