"""Where an image comes from: the ``source``, ``revision`` and ``licenses`` annotations.

OCI's annotation list (https://github.com/opencontainers/image-spec/blob/main/annotations.md)
asks for the URL of the source and its revision. kiln takes them from what the user
configured (``$KILN_IMAGE_SOURCE``, ``$KILN_IMAGE_REVISION``); the source, when not
configured, from the git checkout holding the spec: the remote of its current branch
(else ``origin``) with any credentials removed. The revision is never read from git:
the same spec and lock must give the same digest at every commit of the catalog (an
unrelated commit would otherwise change every image, and the factory would republish
all of them); SLSA provenance records the commit instead. Anything not known is left
out rather than guessed. ``licenses`` is the SPDX
expression of the ``version-package``'s machine-readable copyright file.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kiln.debian.deb import DebPackage

SOURCE_ENV = "KILN_IMAGE_SOURCE"
REVISION_ENV = "KILN_IMAGE_REVISION"
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")
_GIT_TIMEOUT = 10.0


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=_GIT_TIMEOUT,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git here: the checkout's facts are unknown
    return done.stdout.strip() if done.returncode == 0 else None


def public_url(remote: str) -> str | None:
    """A remote as a URL others can use: credentials removed; local paths are not one."""
    try:
        parts = urlsplit(remote)
        port = parts.port
    except ValueError:
        return None  # a malformed port or IPv6 host: not a URL to publish
    if parts.scheme in ("https", "http", "ssh", "git") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = host + (f":{port}" if port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    scp = _SCP_LIKE.match(remote)
    if scp and not parts.scheme:  # git@host:owner/repo.git
        return f"ssh://{scp['host']}/{scp['path']}"
    return None


def checkout_annotations(
    spec_path: Path, lock_path: Path, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """``source`` (configured, else the spec checkout's remote) and ``revision`` (only
    when configured) of the image built from ``spec_path``."""
    out: dict[str, str] = {}
    configured = environ.get(SOURCE_ENV, "").strip()
    source = (public_url(configured) or configured) if configured else ""
    revision = environ.get(REVISION_ENV, "").strip()
    directory = spec_path.resolve().parent
    if not source:
        branch_remote = _git(directory, "config", "--get", _branch_key(directory))
        for name in (branch_remote, "origin"):
            url = _git(directory, "remote", "get-url", name) if name else None
            found = public_url(url) if url else None
            if found:
                source = found
                break
    if source:
        out["source"] = source
    if revision:
        out["revision"] = revision
    return out


def _branch_key(directory: Path) -> str:
    branch = _git(directory, "symbolic-ref", "--quiet", "--short", "HEAD") or "HEAD"
    return f"branch.{branch}.remote"


def licenses_annotation(package: DebPackage) -> dict[str, str]:
    """``licenses``: the package's copyright file as SPDX, when it is machine-readable."""
    from kiln.sbom.licenses import license_from_copyright  # noqa: PLC0415 - only for builds

    path = f"usr/share/doc/{package.control.package}/copyright"
    data = package.contents.get(path)
    if data is None:
        return {}
    found = license_from_copyright(data.decode("utf-8", "replace"), f"/{path}", [])
    if found.expression is None or found.refs:
        return {}  # LicenseRef-s mean nothing outside the SBOM that defines them
    return {"licenses": found.expression}
