"""Auth against real registries: htpasswd basic auth, and token auth (Bearer flow).

The Bearer flow runs against a real docker-registry configured with ``auth.token``
and a small loopback token service from tests/fixtures/registry.py that issues
RS256 JWTs the registry verifies against the service's certificate.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixtures.registry import TEST_USER, RunningRegistry, TokenServer, start_registry
from kiln.registry import (
    Credentials,
    Reference,
    RegistryAuthError,
    StaticCredentials,
    default_credentials,
    pull_layout,
    push_layout,
)

from .helpers import client_for
from .layouts import tree, write_layout


def _credentials(registry: RunningRegistry, password: str | None = None) -> StaticCredentials:
    assert registry.username is not None
    assert registry.password is not None
    return StaticCredentials(Credentials(registry.username, password or registry.password))


def test_basic_auth_push_and_pull(basic_auth_registry: RunningRegistry, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", seed="basic")
    target = Reference.parse(f"{basic_auth_registry.host}/kiln/basic:1.0")
    with client_for(basic_auth_registry, credentials=_credentials(basic_auth_registry)) as client:
        push_layout(client, source.path, target)
        pull_layout(client, target, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(source.path)


def test_basic_auth_from_docker_config_and_env(
    basic_auth_registry: RunningRegistry, tmp_path: Path
) -> None:
    host = basic_auth_registry.host
    pair = f"{basic_auth_registry.username}:{basic_auth_registry.password}".encode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {host: {"auth": base64.b64encode(pair).decode()}}})
    )
    from_file = default_credentials({"DOCKER_CONFIG": str(tmp_path)})
    with client_for(host, credentials=from_file) as client:
        client.ping()
    from_env = default_credentials(
        {
            "KILN_REGISTRY_USERNAME": str(basic_auth_registry.username),
            "KILN_REGISTRY_PASSWORD": str(basic_auth_registry.password),
        },
        docker_config=tmp_path / "absent.json",
    )
    with client_for(host, credentials=from_env) as client:
        client.ping()


def test_wrong_password_is_reported_plainly(basic_auth_registry: RunningRegistry) -> None:
    wrong = _credentials(basic_auth_registry, password="not-the-password")
    with (
        client_for(basic_auth_registry, credentials=wrong) as client,
        pytest.raises(RegistryAuthError) as caught,
    ):
        client.get_manifest("kiln/basic", "1.0")
    assert str(caught.value).startswith(
        f"registry {basic_auth_registry.host} rejected the credentials for user {TEST_USER} (401)"
    )
    assert "not-the-password" not in caught.value.diagnostics()


def test_missing_credentials_are_reported_plainly(basic_auth_registry: RunningRegistry) -> None:
    with client_for(basic_auth_registry) as client, pytest.raises(RegistryAuthError) as caught:
        client.ping()
    assert f"registry {basic_auth_registry.host} requires credentials" in str(caught.value)
    assert "KILN_REGISTRY_USERNAME" in caught.value.diagnostics()


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningRegistry, TokenServer]]:
    workdir = tmp_path_factory.mktemp("registry-token")
    password = secrets.token_urlsafe(12)
    with (
        TokenServer(workdir, TEST_USER, password) as tokens,
        start_registry(workdir, token_auth=tokens.registry_auth()) as running,
    ):
        yield running, tokens


def test_bearer_token_flow(
    token_registry: tuple[RunningRegistry, TokenServer], tmp_path: Path
) -> None:
    registry, tokens = token_registry
    source = write_layout(tmp_path / "src", seed="bearer")
    target = Reference.parse(f"{registry.host}/kiln/bearer:1.0")
    credentials = StaticCredentials(Credentials(tokens.username, tokens.password))
    with client_for(registry, credentials=credentials) as client:
        push_layout(client, source.path, target)
        pull_layout(client, target, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(source.path)
    scopes = {scope for user, requested in tokens.requests for scope in requested}
    assert "repository:kiln/bearer:pull,push" in scopes
    assert all(user == TEST_USER for user, _ in tokens.requests)
    # Tokens are cached per scope set: far fewer token requests than registry requests.
    assert len(tokens.requests) <= 3


def test_bearer_wrong_password(token_registry: tuple[RunningRegistry, TokenServer]) -> None:
    registry, tokens = token_registry
    wrong = StaticCredentials(Credentials(tokens.username, "wrong"))
    with (
        client_for(registry, credentials=wrong) as client,
        pytest.raises(RegistryAuthError) as caught,
    ):
        client.get_manifest("kiln/bearer", "1.0")
    assert str(caught.value).startswith(
        f"registry {registry.host} rejected the credentials for user {TEST_USER} (401)"
    )
    assert f"token service: {tokens.realm}" in caught.value.diagnostics()


def test_bearer_anonymous_is_refused_clearly(
    token_registry: tuple[RunningRegistry, TokenServer],
) -> None:
    registry, _ = token_registry
    with client_for(registry) as client, pytest.raises(RegistryAuthError) as caught:
        client.get_manifest("kiln/bearer", "1.0")
    assert f"registry {registry.host} requires credentials for repository kiln/bearer" in str(
        caught.value
    )


def _first_requests_in_threads(
    registry: RunningRegistry, credentials: StaticCredentials, tmp_path: Path, name: str
) -> None:
    """A fresh client's first requests race: each learns the challenge, none is refused."""
    source = write_layout(tmp_path / "src", seed=name)
    target = Reference.parse(f"{registry.host}/kiln/{name}:1.0")
    with client_for(registry, credentials=credentials) as client:
        push_layout(client, source.path, target)
    with (
        client_for(registry, credentials=credentials) as client,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        found = list(pool.map(lambda _: client.get_manifest(f"kiln/{name}", "1.0"), range(16)))
        counted = client.stats.bytes_downloaded
    assert {manifest.digest for manifest in found} == {found[0].digest}
    assert counted == 16 * len(found[0].data)  # no count lost to a race


def test_basic_auth_first_requests_in_parallel(
    basic_auth_registry: RunningRegistry, tmp_path: Path
) -> None:
    credentials = _credentials(basic_auth_registry)
    _first_requests_in_threads(basic_auth_registry, credentials, tmp_path, "parallel-basic")


def test_bearer_first_requests_in_parallel(
    token_registry: tuple[RunningRegistry, TokenServer], tmp_path: Path
) -> None:
    registry, tokens = token_registry
    credentials = StaticCredentials(Credentials(tokens.username, tokens.password))
    _first_requests_in_threads(registry, credentials, tmp_path, "parallel-bearer")
