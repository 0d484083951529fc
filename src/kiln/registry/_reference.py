"""Image references: ``host[:port]/repository[:tag][@digest]``.

Grammar from the distribution spec (repository names, tags) and the reference grammar
docker and podman share. kiln applies no Docker Hub defaults: a reference must name its
registry host explicitly (a first component with a ``.`` or ``:``, ``localhost``, or a
bracketed IPv6 address), so ``python:3`` is refused with a hint rather than silently
sent somewhere. See https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from kiln.errors import InputError
from kiln.net import is_loopback_host
from kiln.oci.digest import Digest

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_NAME = 255


def _host_problem(host: str) -> str | None:
    name, port = host, None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "has an unclosed '[' around an IPv6 address"
        try:
            ipaddress.IPv6Address(host[1:end])
        except ValueError:
            return f"has {host[1:end]!r}, which is not an IPv6 address"
        rest = host[end + 1 :]
        if rest and not rest.startswith(":"):
            return "has text after the IPv6 address that is not ':port'"
        port = rest[1:] if rest else None
        name = ""
    elif ":" in host:
        name, _, port = host.partition(":")
    if name and not _HOSTNAME.fullmatch(name):
        return f"has an invalid host name {name!r}"
    if port is not None and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
        return f"has an invalid port {port!r}"
    return None


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository path, else raise ``InputError``."""
    if not _REPOSITORY.fullmatch(name):
        raise InputError(
            f"repository {name!r} is not valid: lowercase letters, digits and "
            "'.', '_', '__', '-' separators, components joined by '/'"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else raise ``InputError``."""
    if not _TAG.fullmatch(tag):
        raise InputError(
            f"tag {tag!r} is not valid: up to 128 of [A-Za-z0-9._-], not starting with '.' or '-'"
        )
    return tag


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``tag`` and ``digest`` may both be set (digest wins)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        problem = _host_problem(self.registry)
        if problem:
            raise InputError(f"registry host {self.registry!r} {problem}")
        validate_repository(self.repository)
        if self.tag is None and self.digest is None:
            raise InputError(
                f"reference {self.registry}/{self.repository} has neither tag nor digest"
            )
        if self.tag is not None:
            validate_tag(self.tag)
        if len(self.registry) + 1 + len(self.repository) > _MAX_NAME:
            raise InputError(
                f"reference name {self.registry}/{self.repository} is longer than "
                f"{_MAX_NAME} characters"
            )

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``host[:port]/repo[:tag][@alg:hex]``; raise ``InputError`` naming the part."""
        original = text
        digest: Digest | None = None
        if "@" in text:
            text, _, digest_text = text.partition("@")
            digest = Digest.parse(digest_text, what=f"digest in reference {original!r}")
        host, slash, path = text.partition("/")
        if not slash:
            raise InputError(
                f"reference {original!r} is not HOST[:PORT]/REPOSITORY: it has no '/'",
                hint="kiln applies no default registry: write the host explicitly, "
                "e.g. HOST[:PORT]/REPOSITORY[:TAG]",
            )
        if not path:
            raise InputError(
                f"reference {original!r} has no repository after the registry host",
                hint="write HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]",
            )
        if not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
            raise InputError(
                f"reference {original!r} does not start with a registry host",
                hint="kiln applies no default registry: write the host explicitly, "
                "e.g. HOST[:PORT]/REPOSITORY[:TAG]",
            )
        tag: str | None = None
        repository = path
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            repository, _, tag = path.rpartition(":")
        if tag is None and digest is None:
            tag = "latest"
        try:
            return cls(host, repository, tag, digest)
        except InputError as exc:
            raise InputError(f"reference {original!r}: {exc.message}", hint=exc.hint) from exc

    @property
    def identifier(self) -> str:
        """What the manifest endpoint is asked for: the digest if known, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return str(self.tag)

    def with_digest(self, digest: Digest) -> Reference:
        return replace(self, digest=digest)

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def is_loopback(registry: str) -> bool:
    """Whether a registry host (``host[:port]``) is on this machine's loopback interface."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif ":" in host:
        host = host.partition(":")[0]
    return is_loopback_host(host)
