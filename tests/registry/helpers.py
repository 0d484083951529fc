"""Small helpers shared by the registry tests."""

from __future__ import annotations

import json
from typing import Any

from fixtures.registry import RunningRegistry
from kiln.net import RetryPolicy
from kiln.registry import OCI_MANIFEST, Anonymous, CredentialSource, Digest, RegistryClient


class RecordingSleep:
    """An injected ``sleep`` that records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(
    host: str | RunningRegistry,
    *,
    credentials: CredentialSource | None = None,
    sleep: RecordingSleep | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> RegistryClient:
    """A client for a loopback registry that never really sleeps between retries."""
    name = host.host if isinstance(host, RunningRegistry) else host
    return RegistryClient.for_host(
        name,
        credentials=credentials or Anonymous(),
        sleep=sleep or RecordingSleep(),
        retry=retry,
        **options,
    )


def empty_manifest_body() -> bytes:
    """An OCI image manifest with no layers, for mock transports that answer one."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": str(Digest.of(b"")), "size": 0},
            "layers": [],
        }
    ).encode()
