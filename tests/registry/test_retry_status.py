"""The registry client retries exactly the statuses kiln.net retries: one set for kiln."""

from __future__ import annotations

import httpx
import pytest

from kiln.net import RETRY_STATUS
from kiln.registry import (
    OCI_MANIFEST,
    Anonymous,
    Digest,
    RegistryClient,
    RegistryRequestError,
    RegistrySession,
)

from .helpers import empty_manifest_body

BODY = empty_manifest_body()


def _client_answering(first: int, calls: list[int]) -> RegistryClient:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(first if not calls else 200)
        if len(calls) == 1:
            return httpx.Response(first, content=b'{"errors":[]}')
        return httpx.Response(200, content=BODY, headers={"Content-Type": OCI_MANIFEST})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    session = RegistrySession(
        "127.0.0.1:9", credentials=Anonymous(), client=http, sleep=lambda _: None
    )
    return RegistryClient(session)


@pytest.mark.parametrize("status", sorted(RETRY_STATUS))
def test_every_retryable_status_is_retried(status: int) -> None:
    calls: list[int] = []
    with _client_answering(status, calls) as client:
        manifest = client.get_manifest("kiln/x", Digest.of(BODY))
    assert calls == [status, 200]
    assert manifest.digest == Digest.of(BODY)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 501])
def test_a_status_a_retry_cannot_fix_is_not_retried(status: int) -> None:
    calls: list[int] = []
    with _client_answering(status, calls) as client, pytest.raises(RegistryRequestError):
        client.get_manifest("kiln/x", Digest.of(BODY))
    assert calls == [status]
