"""Keyless signing through sigstore-python: the offline part of the path.

Signing for real needs a CI job's OIDC token plus Fulcio and Rekor, none of which is
reachable here. These tests run sigstore-python's real credential detection and token
parsing with the CI environment variables set or cleared; nothing is mocked. What they
cannot cover (certificate issuance, the Rekor entry, the signed bundle) is left to a CI
job with ``id-token: write``.
"""

from __future__ import annotations

import jwt
import pytest

from kiln.attest.keyless import KeylessBundleSigner, NoAmbientCredentialError, ambient_identity

CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITLAB_CI",
    "SIGSTORE_ID_TOKEN",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
)


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_ambient_credential_is_a_clear_environment_error(no_ci: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        NoAmbientCredentialError, match="no ambient OIDC credential found"
    ) as caught:
        KeylessBundleSigner.from_ambient()
    assert caught.value.exit_code == 3
    assert "--key" in (caught.value.hint or "")


def test_a_ci_without_the_token_variable(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.setenv("GITLAB_CI", "true")
    with pytest.raises(
        NoAmbientCredentialError, match=r"unavailable or malformed: .*SIGSTORE_ID_TOKEN"
    ):
        ambient_identity()


def test_a_malformed_ambient_token(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.setenv("GITLAB_CI", "true")
    no_ci.setenv("SIGSTORE_ID_TOKEN", "not-a-jwt")
    with pytest.raises(NoAmbientCredentialError, match="unavailable or malformed: Malformed token"):
        ambient_identity()


def test_an_expired_ambient_token(no_ci: pytest.MonkeyPatch) -> None:
    claims = {"iss": "https://ci.invalid", "sub": "job", "aud": "sigstore", "iat": 1, "exp": 2}
    no_ci.setenv("GITLAB_CI", "true")
    no_ci.setenv("SIGSTORE_ID_TOKEN", jwt.encode(claims, "k" * 32, algorithm="HS256"))
    with pytest.raises(NoAmbientCredentialError, match="ambient OIDC token is unusable"):
        ambient_identity()


def test_the_github_actions_path_needs_the_job_permission(no_ci: pytest.MonkeyPatch) -> None:
    no_ci.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(NoAmbientCredentialError, match="ACTIONS_ID_TOKEN_REQUEST_TOKEN") as caught:
        ambient_identity()
    assert "id-token: write" in (caught.value.hint or "")
