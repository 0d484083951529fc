"""The compatibility suite's declarations: apps (``compat/<app>/compat.yaml``) and stand-ins.

An app directory holds a Dockerfile written for the official images, the app's code and
lock files, and ``compat.yaml``, which says how to check it: either the HTTP requests to
send to the published port (their status, body and selected response headers are
compared before and after the FROM swap), or the output of a container that runs to
completion (exit code, stdout and stderr are compared). ``compat/standins.yaml``
describes the "before" images: how mmdebstrap builds each stand-in for an official image
and the image config to give it.

Both files are trust boundaries: frozen pydantic models with ``extra="forbid"``, and every
error names the file, line and field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kiln.errors import InputError, Location
from kiln.spec.model import Regex
from kiln.yamldoc import parse_yaml_model, read_limited

DECLARATION = "compat.yaml"
DOCKERFILE = "Dockerfile"
STANDINS = "standins.yaml"
MAX_DECLARATION_BYTES = 256 * 1024

_APP_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
# An image reference as the official images are named: repository[:tag], no registry host.
_IMAGE_REF = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_KILN_TARGET = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_M = TypeVar("_M", bound=BaseModel)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class HttpRequest(_Frozen):
    """One request to the app; its response must be the same before and after."""

    path: str = Field(pattern=r"^/", max_length=2048)
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] = "GET"
    body: str | None = None
    content_type: str | None = Field(default=None, alias="content-type")
    status: int = Field(default=200, ge=100, le=599)  # expected on both sides
    headers: tuple[str, ...] = ()  # response headers compared (Date, Server... are not)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _HEADER.match(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
        return tuple(n.lower() for n in names)


class ExpectedOutput(_Frozen):
    """A container that runs to completion: exit code and output are compared."""

    exit_code: int = Field(default=0, alias="exit-code", ge=0, le=255)
    output: Regex | None = None  # searched in stdout + stderr


class AfterOverrides(_Frozen):
    """What the kiln side documents differently (e.g. nginx as nonroot on 8080)."""

    port: int | None = Field(default=None, ge=1, le=65535)
    reason: str = Field(min_length=1)


class AppDeclaration(_Frozen):
    """``compat/<app>/compat.yaml``."""

    description: str = Field(min_length=1, max_length=200)
    port: int | None = Field(default=None, ge=1, le=65535)
    requests: tuple[HttpRequest, ...] = ()
    output: ExpectedOutput | None = None
    after: AfterOverrides | None = None
    timeout: int = Field(default=60, ge=1, le=600)  # seconds for the app to answer or exit

    @model_validator(mode="after")
    def _one_check(self) -> AppDeclaration:
        if self.output is not None and (self.port is not None or self.requests):
            raise ValueError("give either 'port' and 'requests' (a server) or 'output', not both")
        if self.output is None:
            if self.port is None:
                raise ValueError("a server app needs 'port' (the port it listens on)")
            if not self.requests:
                raise ValueError("a server app needs at least one entry in 'requests'")
        if self.after is not None and self.after.port is not None and self.output is not None:
            raise ValueError("'after.port' only applies to a server app")
        return self


class ImageConfig(_Frozen):
    """The OCI image config a stand-in gets (``podman import --change``)."""

    env: dict[str, str] = Field(default_factory=dict)
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    user: str | None = None
    workdir: str | None = None
    expose: tuple[str, ...] = ()
    stop_signal: str | None = Field(default=None, alias="stop-signal")


class StandinSpec(_Frozen):
    """One stand-in for an official image, built with mmdebstrap."""

    name: str = Field(pattern=_APP_NAME.pattern)
    refs: tuple[str, ...] = Field(min_length=1)
    kiln: str = Field(pattern=_KILN_TARGET.pattern)  # kiln image (name or name-dev)
    variant: Literal["extract", "custom", "essential", "apt", "required", "minbase", "buildd"]
    packages: tuple[str, ...] = Field(min_length=1)
    npm: tuple[str, ...] = ()
    customize: str = ""
    config: ImageConfig = ImageConfig()

    @field_validator("refs")
    @classmethod
    def _refs(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        for ref in refs:
            first = ref.split("/", 1)[0]
            has_host = "/" in ref and ("." in first or first == "localhost")
            if has_host or not _IMAGE_REF.match(ref):
                raise ValueError(f"{ref!r} is not repository:tag (no registry host)")
        return refs

    @field_validator("packages")
    @classmethod
    def _packages(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not re.match(r"^[a-z0-9][a-z0-9+.-]+$", name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return names

    @field_validator("npm")
    @classmethod
    def _npm(cls, refs: tuple[str, ...]) -> tuple[str, ...]:
        for ref in refs:
            if not re.match(r"^(@[a-z0-9._~-]+/)?[a-z0-9._~-]+@\d+\.\d+\.\d+$", ref):
                raise ValueError(f"{ref!r} is not name@x.y.z")
        return refs

    @property
    def kiln_image(self) -> str:
        """The kiln spec name (``python`` for ``python-dev``)."""
        return self.kiln.removesuffix("-dev")

    @property
    def kiln_dev(self) -> bool:
        return self.kiln.endswith("-dev")


class StandinCatalog(_Frozen):
    """``compat/standins.yaml``."""

    distro: str = "debian-13"
    standins: tuple[StandinSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> StandinCatalog:
        seen: dict[str, str] = {}
        for standin in self.standins:
            for ref in standin.refs:
                if ref in seen:
                    raise ValueError(f"{ref} is claimed by both {seen[ref]} and {standin.name}")
                seen[ref] = standin.name
        return self

    def for_ref(self, ref: str) -> StandinSpec | None:
        """The stand-in tagged as ``ref`` (``repository:tag``; a missing tag is latest)."""
        wanted = ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"
        return next((s for s in self.standins if wanted in s.refs), None)


@dataclass(frozen=True)
class App:
    """A compat app directory with its parsed declaration."""

    name: str
    directory: Path
    declaration: AppDeclaration

    @property
    def dockerfile(self) -> Path:
        return self.directory / DOCKERFILE


def load_app(directory: Path) -> App:
    """Read ``directory/compat.yaml`` and check the directory is buildable."""
    name = directory.name
    if not _APP_NAME.match(name):
        raise InputError(
            f"app directory name {name!r} must be lower-case letters, digits, '.', '_', '-'",
            location=Location(str(directory)),
        )
    if not (directory / DOCKERFILE).is_file():
        raise InputError(
            f"app {name} has no {DOCKERFILE}",
            location=Location(str(directory / DOCKERFILE)),
            hint="each app directory holds the Dockerfile written for the official image",
        )
    path = directory / DECLARATION
    declaration = _load_model(path, AppDeclaration)
    return App(name, directory, declaration)


def load_apps(root: Path, only: Sequence[str] = ()) -> tuple[App, ...]:
    """Every app directory under ``root`` (those with a Dockerfile or a compat.yaml)."""
    if not root.is_dir():
        raise InputError(f"compat directory {root} does not exist", location=Location(str(root)))
    candidates = sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and ((p / DOCKERFILE).exists() or (p / DECLARATION).exists())
    )
    if only:
        known = {p.name for p in candidates}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise InputError(
                f"no app named {', '.join(unknown)} under {root}",
                hint=f"apps: {', '.join(sorted(known)) or '(none)'}",
            )
        candidates = [p for p in candidates if p.name in only]
    if not candidates:
        raise InputError(f"no app directories under {root}", location=Location(str(root)))
    return tuple(load_app(p) for p in candidates)


def load_standins(path: Path) -> StandinCatalog:
    """Read ``compat/standins.yaml``."""
    return _load_model(path, StandinCatalog)


def _load_model(path: Path, model: type[_M]) -> _M:
    what = "compat declaration"
    data = read_limited(path, what=what, limit=MAX_DECLARATION_BYTES, error=InputError)
    parsed, _ = parse_yaml_model(data, path, model, what=what, error=InputError)
    return parsed
