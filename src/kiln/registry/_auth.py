"""Registry credentials and the auth schemes registries challenge with.

Credentials come from ``KILN_REGISTRY_USERNAME``/``KILN_REGISTRY_PASSWORD``, podman's
``auth.json`` (``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``) or
Docker's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker/config.json``): ``auths``
entries with a base64 ``auth`` or ``username``/``password``, or a credential helper
(``credHelpers`` per registry, else ``credsStore``): ``docker-credential-<name> get`` with
the registry on stdin, answering ``{"Username", "Secret"}`` (the protocol of
https://github.com/docker/docker-credential-helpers). The challenge parser and token
response model implement
https://distribution.github.io/distribution/spec/auth/token/ and RFC 7235 auth-params.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import InputError, Location

ENV_USERNAME = "KILN_REGISTRY_USERNAME"
ENV_PASSWORD = "KILN_REGISTRY_PASSWORD"  # noqa: S105  (the variable's name, not a secret)


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token used as password) for one registry."""

    username: str
    password: str = field(repr=False)


class CredentialSource(Protocol):
    """Finds credentials for a registry host (``host[:port]``), or None for anonymous."""

    def lookup(self, registry: str) -> Credentials | None: ...


@dataclass(frozen=True)
class Anonymous:
    """No credentials for any registry."""

    def lookup(self, registry: str) -> Credentials | None:
        return None


@dataclass(frozen=True)
class StaticCredentials:
    """The same credentials for every registry (tests, or explicit CLI options)."""

    credentials: Credentials

    def lookup(self, registry: str) -> Credentials | None:
        return self.credentials


@dataclass(frozen=True)
class EnvCredentials:
    """``KILN_REGISTRY_USERNAME`` and ``KILN_REGISTRY_PASSWORD``, for any registry."""

    env: Mapping[str, str]

    def lookup(self, registry: str) -> Credentials | None:
        username = self.env.get(ENV_USERNAME)
        password = self.env.get(ENV_PASSWORD)
        if username and password is not None:
            return Credentials(username, password)
        if username or password:
            raise InputError(
                f"only one of {ENV_USERNAME} and {ENV_PASSWORD} is set",
                hint="set both, or neither to use ~/.docker/config.json",
            )
        return None


class _DockerAuth(BaseModel):
    # Docker writes more keys (email, serveraddress, identitytoken...); kiln reads these.
    model_config = ConfigDict(frozen=True, extra="ignore")

    auth: str | None = None
    username: str | None = None
    password: str | None = None


class _DockerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    auths: dict[str, _DockerAuth] = Field(default_factory=dict)
    creds_store: str | None = Field(default=None, alias="credsStore")
    cred_helpers: dict[str, str] = Field(default_factory=dict, alias="credHelpers")


_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HELPER_TIMEOUT = 60.0  # seconds: a helper may prompt a keychain, but must not hang kiln


class _HelperAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    username: str = Field(alias="Username")
    secret: str = Field(alias="Secret")


def run_credential_helper(name: str, registry: str, where: Location) -> Credentials | None:
    """Ask ``docker-credential-<name>`` for ``registry``'s credentials (None: it has none)."""
    if not _HELPER_NAME.match(name):
        raise InputError(f"credential helper name {name!r} is not a plain name", location=where)
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise InputError(
            f"credential helper {program} is not on PATH", location=where,
            hint=f"install {program}, or remove it from the configuration",
        )  # fmt: skip
    try:
        done = subprocess.run(  # a helper found on PATH, no shell
            [path, "get"], input=registry, capture_output=True, text=True,
            timeout=_HELPER_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise InputError(
            f"credential helper {program} did not answer within {_HELPER_TIMEOUT:.0f}s",
            location=where,
        ) from exc
    except OSError as exc:
        raise InputError(f"cannot run {program}: {exc.strerror}", location=where) from exc
    if done.returncode != 0:
        said = (done.stdout.strip() or done.stderr.strip())[-300:]
        if "credentials not found" in said.lower():
            return None
        raise InputError(
            f"credential helper {program} failed for {registry} (exit {done.returncode}): {said}",
            location=where,
        )
    try:
        answer = _HelperAnswer.model_validate_json(done.stdout)
    except ValidationError as exc:
        raise InputError(
            f"credential helper {program} answered something other than "
            '{"Username": ..., "Secret": ...}',
            location=where,
        ) from exc
    if answer.username == "<token>":
        raise InputError(
            f"credential helper {program} holds an identity token for {registry}; "
            "kiln supports user name and password (or access token) credentials",
            location=where,
        )
    return Credentials(answer.username, answer.secret)


def docker_config_path(env: Mapping[str, str], home: Path | None = None) -> Path:
    """Where Docker keeps ``config.json``: ``$DOCKER_CONFIG`` or ``~/.docker``."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return (home or Path.home()) / ".docker" / "config.json"


def _server_key(key: str) -> str:
    """Reduce an ``auths`` key (``https://host:port/v1/``, ``host``) to ``host[:port]``."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    return key.split("/", 1)[0].lower()


@dataclass(frozen=True)
class DockerConfigCredentials:
    """Credentials from a Docker ``config.json`` ``auths`` section; a missing file is empty."""

    path: Path

    def lookup(self, registry: str) -> Credentials | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            config = _DockerConfig.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON: {exc.msg}", location=Location(str(self.path), exc.lineno)
            ) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(
                f"{first['msg']}",
                location=Location(str(self.path), field=".".join(map(str, first["loc"]))),
            ) from exc
        wanted = registry.lower()
        # Docker's order: a per-registry helper, then the default store, then inline auths.
        for key, helper in config.cred_helpers.items():
            if _server_key(key) == wanted:
                where = Location(str(self.path), field=f"credHelpers.{key}")
                return run_credential_helper(helper, registry, where)
        if config.creds_store:
            where = Location(str(self.path), field="credsStore")
            found = run_credential_helper(config.creds_store, registry, where)
            if found is not None:
                return found
        for key, entry in config.auths.items():
            if _server_key(key) == wanted:
                return _decode_entry(entry, Location(str(self.path), field=f"auths.{key}"))
        return None


def _decode_entry(entry: _DockerAuth, where: Location) -> Credentials | None:
    if entry.auth:
        try:
            decoded = base64.b64decode(entry.auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InputError("'auth' is not base64 of 'user:password'", location=where) from exc
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise InputError("'auth' does not decode to 'user:password'", location=where)
        return Credentials(username, password)
    if entry.username and entry.password is not None:
        return Credentials(entry.username, entry.password)
    return None


@dataclass(frozen=True)
class ChainedCredentials:
    """The first source that has credentials for a registry wins."""

    sources: tuple[CredentialSource, ...]

    def lookup(self, registry: str) -> Credentials | None:
        for source in self.sources:
            found = source.lookup(registry)
            if found is not None:
                return found
        return None


def containers_auth_paths(env: Mapping[str, str]) -> tuple[Path, ...]:
    """Where podman/skopeo keep logins: ``$REGISTRY_AUTH_FILE``, then
    ``$XDG_RUNTIME_DIR/containers/auth.json`` (same ``auths`` format as Docker's)."""
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    return tuple(paths)


def default_credentials(
    env: Mapping[str, str] | None = None, *, docker_config: Path | None = None
) -> CredentialSource:
    """``KILN_REGISTRY_USERNAME``/``PASSWORD``, then podman's auth file, then Docker's."""
    env = os.environ if env is None else env
    path = docker_config or docker_config_path(env)
    files = (*containers_auth_paths(env), path)
    return ChainedCredentials((EnvCredentials(env), *map(DockerConfigCredentials, files)))


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: Mapping[str, str]


_TOKEN68_OR_PARAM = re.compile(
    r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?'
)


def parse_challenge(header: str) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` header (RFC 7235 auth-params)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _TOKEN68_OR_PARAM.match(rest, position)
        if not match or match.end() == position:
            break
        key, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
        position = match.end()
    return Challenge(scheme.lower(), params)


class TokenResponse(BaseModel):
    """A token service's answer; ``token`` and ``access_token`` are synonyms."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    token: str | None = None
    access_token: str | None = None
    expires_in: int | None = None

    @property
    def value(self) -> str | None:
        return self.token or self.access_token
