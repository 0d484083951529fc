"""Registry errors beyond kiln's roots.

Transport failures (retryable) are ``kiln.errors.TransportError``; bad content is
``RemoteContentError``/``IntegrityError``. What remains is a registry that answered
but refused: wrong credentials, unknown content, an invalid request.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.errors import EnvironmentProblem


@dataclass
class RegistryAuthError(EnvironmentProblem):
    """The registry (or its token service) refused our credentials or our access."""


@dataclass
class RegistryRequestError(EnvironmentProblem):
    """The registry answered a request with a client error (4xx) that retrying cannot fix."""

    status: int = 0
    codes: tuple[str, ...] = ()


@dataclass
class RegistryNotFoundError(RegistryRequestError):
    """The registry does not have the repository, manifest, tag or blob asked for."""
