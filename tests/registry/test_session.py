"""Auth challenges and API edge cases against in-process fakes (httpx.MockTransport).

These cover what a real registry here will not do on demand: malformed token
services, challenges without a realm, credentials requested over plain HTTP, and a
paginated referrers API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest

from kiln.errors import IntegrityError, RemoteContentError
from kiln.registry import (
    OCI_INDEX,
    Anonymous,
    Credentials,
    CredentialSource,
    Descriptor,
    Digest,
    RegistryAuthError,
    RegistryClient,
    RegistryRequestError,
    RegistrySession,
    StaticCredentials,
)

HOST = "127.0.0.1:9"
USER = StaticCredentials(Credentials("alice", "pw"))
REALM = "http://127.0.0.1:10/token"
BEARER = f'Bearer realm="{REALM}",service="svc"'

Handler = Callable[[httpx.Request], httpx.Response]


def _client(
    handler: Handler, credentials: CredentialSource = USER, host: str = HOST
) -> RegistryClient:
    session = RegistrySession(
        host,
        credentials=credentials,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=lambda _: None,
    )
    return RegistryClient(session)


def _challenging(token_answer: httpx.Response, challenge: str = BEARER) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return token_answer
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    return handler


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, content=b"<html>"), "sent a malformed answer"),
        (httpx.Response(200, json={"expires_in": 60}), "answered without a token"),
        (httpx.Response(200, json={"token": 5}), "sent a malformed answer"),
        (httpx.Response(403, json={}), "rejected the credentials for user alice (403)"),
    ],
)
def test_bad_token_service_answers(answer: httpx.Response, expected: str) -> None:
    with _client(_challenging(answer)) as client, pytest.raises(RegistryAuthError) as caught:
        client.ping()
    assert expected in str(caught.value)
    assert f"registry {HOST}" in str(caught.value)


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        ('Bearer service="svc"', "without an http(s) realm"),
        ('Bearer realm="ftp://x/token"', "without an http(s) realm"),
        ('Negotiate realm="x"', "without a Basic or Bearer challenge"),
        ("", "without a Basic or Bearer challenge"),
    ],
)
def test_unusable_challenges(challenge: str, expected: str) -> None:
    handler = _challenging(httpx.Response(200, json={"token": "t"}), challenge)
    with _client(handler) as client, pytest.raises(RegistryAuthError, match=re.escape(expected)):
        client.ping()


def test_credentials_are_not_sent_over_plain_http_to_a_remote_realm() -> None:
    handler = _challenging(
        httpx.Response(200, json={"token": "t"}), 'Bearer realm="http://auth.example.test/t"'
    )
    with _client(handler) as client, pytest.raises(RegistryAuthError) as caught:
        client.ping()
    assert "asks for credentials over plain HTTP" in str(caught.value)


def test_bearer_token_is_sent_and_reused() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert request.url.params.get_list("scope") == ["repository:kiln/x:pull"]
            assert request.url.params["service"] == "svc"
            assert request.headers["Authorization"].startswith("Basic ")
            return httpx.Response(200, json={"access_token": "tok"})
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer tok":
            return httpx.Response(401, headers={"WWW-Authenticate": BEARER})
        return httpx.Response(404)

    with _client(handler) as client:
        assert client.blob_size("kiln/x", Digest.of(b"a")) is None
        assert client.blob_size("kiln/x", Digest.of(b"b")) is None
    assert seen == [None, "Bearer tok", "Bearer tok"]


def test_anonymous_bearer_token_works_without_credentials() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert "Authorization" not in request.headers
            return httpx.Response(200, json={"token": "anon"})
        if request.headers.get("Authorization") == "Bearer anon":
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": BEARER})

    with _client(handler, credentials=Anonymous()) as client:
        client.ping()


def test_forbidden_is_reported_with_the_registry_codes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})

    with _client(handler) as client, pytest.raises(RegistryRequestError) as caught:
        client.get_manifest("kiln/x", "1.0")
    assert (
        str(caught.value) == f"registry {HOST} denied repository kiln/x, manifest 1.0 (403, DENIED)"
    )


def _index_page(*descriptors: Descriptor) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [d.to_json() for d in descriptors],
        }
    ).encode()


def test_referrers_api_follows_pagination_and_filters_client_side() -> None:
    one = Descriptor.of(b"1", "application/vnd.oci.image.manifest.v1+json", artifact_type="a/x")
    two = Descriptor.of(b"2", "application/vnd.oci.image.manifest.v1+json", artifact_type="a/y")
    subject = Digest.of(b"subject")
    pages = {
        f"/v2/kiln/x/referrers/{subject}": (
            _index_page(one),
            '</v2/kiln/x/referrers/next?p=2>; rel="next"',
        ),
        "/v2/kiln/x/referrers/next": (_index_page(two), None),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        body, link = pages[request.url.path]
        headers = {"Content-Type": OCI_INDEX}
        if link:
            headers["Link"] = link
        return httpx.Response(200, content=body, headers=headers)

    with _client(handler) as client:
        everything = client.referrers_api("kiln/x", subject)
        only_y = client.referrers_api("kiln/x", subject, artifact_type="a/y")
    assert everything == (one, two)
    assert only_y == (two,)


@pytest.mark.parametrize("status", [400, 404, 405, 406])
def test_referrers_api_absent(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="404 page not found")

    with _client(handler) as client:
        assert client.referrers_api("kiln/x", Digest.of(b"s")) is None


def test_manifest_push_whose_stored_digest_differs_is_refused() -> None:
    from kiln.registry import Manifest, parse_manifest

    data = _index_page()
    manifest: Manifest = parse_manifest(data, OCI_INDEX, Digest.of(data), where="test")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"Docker-Content-Digest": str(Digest.of(b"other"))})

    with _client(handler) as client, pytest.raises(IntegrityError, match="stored digest differs"):
        client.put_manifest("kiln/x", manifest)


def test_malformed_docker_content_digest_header_is_refused() -> None:
    data = _index_page()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": OCI_INDEX, "Docker-Content-Digest": "sha256:nothex"}
        return httpx.Response(200, content=data, headers=headers)

    with (
        _client(handler) as client,
        pytest.raises(RemoteContentError, match="Docker-Content-Digest"),
    ):
        client.get_manifest("kiln/x", "1.0")
