"""A registry that answers with deeply nested JSON: every answer is a KilnError, no traceback.

Tag lists, error bodies, token answers, manifests and referrer listings all go through
``kiln.jsonlimits``; the registry is a mock transport (the answers a hostile server sends).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from kiln.errors import RemoteContentError
from kiln.registry import OCI_INDEX, Digest, RegistryClient, RegistryNotFoundError
from kiln.registry._auth import Anonymous
from kiln.registry._errors import RegistryAuthError
from kiln.registry._session import RegistrySession

DEEP = b'{"errors":' + b"[" * 5000 + b"]" * 5000 + b"}"


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> RegistryClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    session = RegistrySession(
        "127.0.0.1:9", credentials=Anonymous(), client=http, sleep=lambda _: None
    )
    return RegistryClient(session)


def test_a_deeply_nested_tag_list_is_malformed_content() -> None:
    with (
        _client(lambda _: httpx.Response(200, content=DEEP)) as client,
        pytest.raises(RemoteContentError, match="tag list: malformed answer"),
    ):
        client.list_tags("kiln/x")


def test_a_deeply_nested_error_body_still_gives_the_status() -> None:
    with (
        _client(lambda _: httpx.Response(404, content=DEEP)) as client,
        pytest.raises(RegistryNotFoundError, match="answered 404"),
    ):
        client.get_manifest("kiln/x", "1.0")


def test_a_deeply_nested_token_answer_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, content=DEEP)
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:9/token",service="r"'},
        )

    with (
        _client(handler) as client,
        pytest.raises(RegistryAuthError, match="sent a malformed answer"),
    ):
        client.list_tags("kiln/x")


def test_a_deeply_nested_manifest_or_referrers_list_is_malformed_content() -> None:
    with (
        _client(
            lambda _: httpx.Response(200, content=DEEP, headers={"Content-Type": OCI_INDEX})
        ) as client,
        pytest.raises(RemoteContentError, match="nests arrays/objects deeper than 128"),
    ):
        client.get_manifest("kiln/x", Digest.of(DEEP))
    with (
        _client(
            lambda _: httpx.Response(200, content=DEEP, headers={"Content-Type": OCI_INDEX})
        ) as client,
        pytest.raises(RemoteContentError, match="nests arrays/objects deeper than 128"),
    ):
        client.referrers_api("kiln/x", Digest.of(b""))
