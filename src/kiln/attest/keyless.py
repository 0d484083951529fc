"""Keyless signing through sigstore-python, when CI provides an ambient OIDC identity.

In CI providers that issue OIDC tokens to jobs (GitHub Actions with
``permissions: id-token: write``, GitLab with an ``id_tokens: SIGSTORE_ID_TOKEN`` entry,
Buildkite, CircleCI, Google Cloud), ``sigstore.oidc.detect_credential()`` finds the
token; Fulcio turns it into a short-lived signing certificate bound to the job's
identity, and the DSSE signature is logged in Rekor. The result is a Sigstore bundle
v0.3 with a certificate and a transparency-log entry instead of a key hint; it
implements the same ``BundleSigner`` interface as ``KeyBundleSigner``.

Such bundles are verified by identity (certificate issuer and subject), not by a key:
``sigstore verify identity``, cosign or ``@sigstore/verify`` with the public-good trust
root. ``kiln verify --key`` reports them as keyless signatures it cannot check.

See https://github.com/sigstore/sigstore-python (``sigstore.sign.SigningContext``,
``sigstore.oidc``) and https://docs.sigstore.dev/cosign/signing/overview/
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sigstore import dsse as sigstore_dsse
from sigstore.errors import Error as SigstoreError
from sigstore.errors import NetworkError as SigstoreNetworkError
from sigstore.models import ClientTrustConfig
from sigstore.oidc import ExpiredIdentity, IdentityError, IdentityToken, detect_credential
from sigstore.sign import SigningContext

from kiln.attest.statement import Statement
from kiln.errors import EnvironmentProblem, SignatureError, TransportError

CredentialDetector = Callable[[], str | None]


class NoAmbientCredentialError(EnvironmentProblem):
    """Keyless signing was asked for, but no CI OIDC token is available here."""


def _trust_config(staging: bool) -> ClientTrustConfig:
    # Fetches (and caches) Sigstore's trust root over TUF: network access.
    return ClientTrustConfig.staging() if staging else ClientTrustConfig.production()


def ambient_identity(detect: CredentialDetector = detect_credential) -> IdentityToken:
    """The ambient OIDC identity token, or ``NoAmbientCredentialError`` saying what to set."""
    try:
        raw = detect()
    except IdentityError as exc:
        raise NoAmbientCredentialError(
            f"keyless signing: the CI OIDC credential is unavailable or malformed: {exc}",
            hint="check the job's OIDC permissions (GitHub: permissions: id-token: write)",
        ) from exc
    if not raw:
        raise NoAmbientCredentialError(
            "keyless signing: no ambient OIDC credential found "
            "(GitHub Actions, GitLab SIGSTORE_ID_TOKEN, Buildkite, CircleCI, Google Cloud)",
            hint="run in a CI job that issues OIDC tokens, or sign with --key KEY",
        )
    try:
        return IdentityToken(raw)
    except (IdentityError, ExpiredIdentity) as exc:
        raise NoAmbientCredentialError(
            f"keyless signing: the ambient OIDC token is unusable: {exc}"
        ) from exc


@dataclass(frozen=True)
class KeylessBundleSigner:
    """Signs statements with a Fulcio certificate for ``identity``, logged in Rekor."""

    identity: IdentityToken
    context: SigningContext

    @classmethod
    def from_ambient(
        cls,
        *,
        staging: bool = False,
        detect: CredentialDetector = detect_credential,
        trust_config: Callable[[bool], ClientTrustConfig] = _trust_config,
    ) -> KeylessBundleSigner:
        """Production wiring: the ambient identity and Sigstore's public-good instance."""
        identity = ambient_identity(detect)
        try:
            context = SigningContext.from_trust_config(trust_config(staging))
        except SigstoreNetworkError as exc:
            raise TransportError(
                f"keyless signing: Sigstore trust root unreachable: {exc}"
            ) from exc
        return cls(identity, context)

    def sign_statement(self, statement: Statement) -> bytes:
        try:
            with self.context.signer(self.identity, cache=True) as signer:
                bundle = signer.sign_dsse(sigstore_dsse.Statement(statement.to_json()))
        except SigstoreNetworkError as exc:
            raise TransportError(f"keyless signing: Fulcio or Rekor unreachable: {exc}") from exc
        except SigstoreError as exc:
            raise SignatureError(f"keyless signing failed: {exc.diagnostics()}") from exc
        return bundle.to_json().encode()
