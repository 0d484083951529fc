"""The npm registry as kiln reads it (``NpmIndex``): where it is, what a pinned version's
tarball is, and fetching it. (``kiln.registry`` is the OCI distribution client.)

The registry base URL is never written in kiln: it comes from npm's own configuration,
read as npm reads it (https://docs.npmjs.com/cli/v10/using-npm/config#registry): the
``npm_config_registry`` / ``NPM_CONFIG_REGISTRY`` environment variables, else
``npm config get registry``. Version documents follow the registry API
(https://github.com/npm/registry/blob/main/docs/REGISTRY-API.md): ``GET
<base>/<name>/<version>`` answers the manifest with ``dist.tarball`` and
``dist.integrity``. Tarballs are content-addressed in kiln's cache by sha512
(``<cache>/npm/sha512/<hex>``) and checked against the lock every time they are read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

from kiln.debian.cache import default_cache_root
from kiln.errors import EnvironmentProblem, IntegrityError, RemoteContentError
from kiln.fileio import atomic_write
from kiln.jsonlimits import parse_json
from kiln.net import Fetcher, HttpFetcher
from kiln.resolve.lockfile import LockedNpmPackage
from kiln.upstream.integrity import canonical_sri, sha512_of, verify_integrity

MAX_DOCUMENT_BYTES = 16 * 1024**2
MAX_TARBALL_BYTES = 256 * 1024**2
_ENV_KEYS = ("npm_config_registry", "NPM_CONFIG_REGISTRY")

Runner = Callable[[list[str]], str]


def _run_npm(argv: list[str]) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise EnvironmentProblem(
            "the npm registry is not configured and npm is not installed",
            hint="set NPM_CONFIG_REGISTRY to the registry's base URL",
        )
    try:
        done = subprocess.run([npm, *argv], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(
            f"`npm {' '.join(argv)}` failed: {exc}",
            hint="set NPM_CONFIG_REGISTRY to the registry's base URL",
        ) from exc
    return done.stdout


def registry_url(environ: Mapping[str, str] = os.environ, *, run: Runner = _run_npm) -> str:
    """The npm registry base URL, with a trailing ``/``: environment, else npm's config."""
    url = next((environ[k] for k in _ENV_KEYS if environ.get(k)), None)
    origin = "the environment (NPM_CONFIG_REGISTRY)"
    if url is None:
        url = run(["config", "get", "registry"]).strip()
        origin = "`npm config get registry`"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise EnvironmentProblem(
            f"npm registry {url!r} from {origin} is not an http(s) base URL",
            hint="set NPM_CONFIG_REGISTRY to the registry's base URL",
        )
    return url if url.endswith("/") else url + "/"


def _document_url(base: str, name: str, version: str) -> str:
    # scoped names keep their '@' and escape the '/' (@scope%2fname), as npm does
    return f"{base}{quote(name, safe='@')}/{quote(version, safe='')}"


def _field(doc: Mapping[str, object], key: str, source: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise RemoteContentError(f"{source}: the registry's answer has no {key!r} string")
    return value


class NpmIndex:
    """Lock pinned npm packages against one registry and fetch their tarballs once.

    ``fetcher`` is injected (kiln.net's ``HttpFetcher`` in production); ``cache_root``
    is kiln's cache directory. ``from_environment`` wires both from npm's config.
    """

    def __init__(
        self, base_url: str | Callable[[], str], *, fetcher: Fetcher, cache_root: Path
    ) -> None:
        if isinstance(base_url, str) and not base_url.endswith("/"):
            base_url += "/"
        self._base = base_url
        self._fetcher = fetcher
        self.cache_root = cache_root

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> NpmIndex:
        """Registry from npm's config (read lazily: cached tarballs need no registry)."""
        return cls(
            lambda: registry_url(environ),
            fetcher=HttpFetcher(),
            cache_root=default_cache_root(environ),
        )

    @property
    def base_url(self) -> str:
        if callable(self._base):
            self._base = self._base()
        return self._base

    # -- locking ---------------------------------------------------------------------

    def lock(self, name: str, version: str) -> LockedNpmPackage:
        """Ask the registry for ``name@version``, fetch and check its tarball, lock it."""
        source = f"{name}@{version}"
        base = self.base_url
        url = _document_url(base, name, version)
        body = self._fetcher.fetch(url, max_bytes=MAX_DOCUMENT_BYTES).body
        doc = parse_json(
            body,
            where=f"{source} ({url})",
            max_bytes=MAX_DOCUMENT_BYTES,
            what="the npm registry's answer",
            error=RemoteContentError,
        )
        if not isinstance(doc, dict):
            raise RemoteContentError(f"{source}: the registry's answer is not a JSON object")
        found = (doc.get("name"), doc.get("version"))
        if found != (name, version):
            raise RemoteContentError(
                f"{source}: the registry answered {found[0]}@{found[1]} instead"
            )
        dist = doc.get("dist")
        if not isinstance(dist, dict):
            raise RemoteContentError(f"{source}: the registry's answer has no 'dist' object")
        integrity = _field(dist, "integrity", source)
        canonical = canonical_sri(integrity, source=source)
        tarball = _field(dist, "tarball", source)
        path = self._relative(tarball, base, source)
        data = self._download(path, canonical, source)
        return LockedNpmPackage(
            name=name,
            version=version,
            path=path,
            integrity=canonical,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )

    @staticmethod
    def _relative(tarball: str, base: str, source: str) -> str:
        """The tarball URL's path under the registry base (the lock names no host)."""
        if urlsplit(tarball).scheme == "http" and urlsplit(base).scheme == "https":
            # registries commonly advertise http:// tarball links behind https
            tarball = "https" + tarball[len("http") :]
        if not tarball.startswith(base):
            raise RemoteContentError(
                f"{source}: tarball {tarball} is not under the registry {base}",
                hint="kiln fetches tarballs from the configured registry only",
            )
        path = tarball[len(base) :]
        parts = path.split("/")
        if (
            not path
            or path.startswith("/")
            or "" in parts
            or ".." in parts
            or "?" in path
            or "#" in path
        ):
            raise RemoteContentError(
                f"{source}: tarball path {path!r} is not a plain relative path"
            )
        return path

    # -- fetching --------------------------------------------------------------------

    def _blob(self, integrity: str, source: str) -> Path:
        return self.cache_root / "npm" / "sha512" / sha512_of(integrity, source=source).hex()

    def _download(self, path: str, integrity: str, source: str) -> bytes:
        blob = self._blob(integrity, source)
        try:
            data = blob.read_bytes()
            verify_integrity(data, integrity, source=f"{source} (cached {blob})")
        except FileNotFoundError:
            pass
        except IntegrityError:
            blob.unlink(missing_ok=True)  # corrupt cache entry: fetch it anew
        else:
            return data
        url = self.base_url + path
        data = self._fetcher.fetch(url, max_bytes=MAX_TARBALL_BYTES).body
        verify_integrity(data, integrity, source=f"{source} ({url})")
        atomic_write(blob, data)
        return data

    def tarball(self, locked: LockedNpmPackage) -> bytes:
        """The locked tarball's bytes, from the cache or the registry, checked three ways."""
        source = f"{locked.name}@{locked.version}"
        data = self._download(locked.path, locked.integrity, source)
        if len(data) != locked.size or hashlib.sha256(data).hexdigest() != locked.sha256:
            raise IntegrityError(
                f"{source}: the tarball matches its sha512 integrity but not the locked "
                f"sha256/size ({len(data)} bytes)",
                hint="this is corruption or an attack; kiln does not retry it",
            )
        return data
