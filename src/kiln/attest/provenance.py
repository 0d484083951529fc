"""SLSA Provenance v1 for a kiln image, written by the orchestrator from what it observed.

``provenance_statement(inputs)`` is a pure function: the lock, the spec digest, the
digests of the built layout and the timing the orchestrator measured go in, an in-toto
statement comes out. No build step writes or alters provenance, and signing keys never
enter the build (SLSA Build L3 shape).

Build type ``https://kiln.dev/build/image/v1`` (a kiln-owned identifier) means:

* ``externalParameters``: ``spec`` (the spec path relative to the source checkout, else
  as given) and, when the spec lives in a git checkout, ``source``
  (``{"uri": "git+<remote>", "revision": <commit>, "dirty": bool}``);
* ``internalParameters``: ``kilnVersion``, ``variant`` (runtime / dev), ``archs``,
  ``sourceDateEpoch`` and any further build options;
* ``resolvedDependencies``: every .deb of the lock for the built variant and archs
  (``uri`` = its purl ``pkg:deb/debian/<name>@<version>?arch=..&distro=..``, ``digest``
  sha256, ``annotations.pool`` = the pool path on any Debian mirror, and for a package
  kiln rebuilt from source ``kilnRecipe``, ``kilnPatches``, ``kilnFixes``), the spec and the
  lock (by sha256) and each signed ``InRelease`` the lock was resolved from;
* subjects: the image index and each per-arch manifest.

Specs: https://slsa.dev/spec/v1.0/provenance and
https://github.com/in-toto/attestation/blob/main/spec/v1/resource_descriptor.md
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kiln
from kiln.attest.predicates import PROVENANCE_V1, ImageDigests
from kiln.attest.statement import Statement, make_statement
from kiln.debian.distro import get_distro
from kiln.errors import InputError
from kiln.inventory.model import OsRelease, deb_purl
from kiln.resolve.lockfile import Lock

BUILD_TYPE = "https://kiln.dev/build/image/v1"
LOCAL_BUILDER_ID = "https://kiln.dev/builders/local/v1"


@dataclass(frozen=True)
class SourceRevision:
    """The git checkout a spec was read from."""

    uri: str  # "git+<remote url>"
    revision: str  # full commit id
    path: str  # the spec's path inside the checkout
    dirty: bool = False


@dataclass(frozen=True)
class ProvenanceInputs:
    """Everything the orchestrator observed about one image build."""

    image: ImageDigests
    lock: Lock
    variant: str
    spec_path: str
    spec_sha256: str
    builder_id: str
    invocation_id: str
    started_on: dt.datetime
    finished_on: dt.datetime
    source_date_epoch: int
    source: SourceRevision | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    kiln_version: str = kiln.__version__
    #: ``name=version`` -> Kiln-* control fields of packages kiln rebuilt from source
    rebuilt: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def _rfc3339(moment: dt.datetime, what: str) -> str:
    if moment.tzinfo is None:
        raise InputError(f"provenance {what} has no timezone; pass an aware datetime")
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _deb_dependencies(inputs: ProvenanceInputs) -> list[dict[str, Any]]:
    known = get_distro(inputs.lock.distro)
    # the os-release view of the distro: purls then read as kiln's and syft's SBOMs write them
    distro = OsRelease.from_parts("debian", known.version, known.codename)
    archs = sorted(inputs.image.manifests) or sorted(inputs.lock.variants.get(inputs.variant, {}))
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for arch in archs:
        for package in inputs.lock.packages(inputs.variant, arch):
            key = (package.name, package.version, package.arch)
            seen[key] = {
                "uri": deb_purl(
                    package.name,
                    package.version,
                    package.arch,
                    distro,
                    package.source,
                    package.source_version,
                ),
                "digest": {"sha256": package.sha256},
                "name": package.filename.rsplit("/", 1)[-1],
                "mediaType": "application/vnd.debian.binary-package",
                "annotations": {
                    "pool": package.filename,
                    "suite": package.suite,
                    # Kiln-Recipe -> kilnRecipe, Kiln-Patches -> kilnPatches, ...
                    **{
                        "kiln" + field.removeprefix("Kiln-"): value
                        for field, value in sorted(
                            inputs.rebuilt.get(f"{package.name}={package.version}", {}).items()
                        )
                    },
                },
            }
    return [seen[k] for k in sorted(seen)]


def provenance_predicate(inputs: ProvenanceInputs) -> dict[str, Any]:
    """The SLSA Provenance v1 predicate (a JSON object)."""
    started = _rfc3339(inputs.started_on, "startedOn")
    finished = _rfc3339(inputs.finished_on, "finishedOn")
    if inputs.finished_on < inputs.started_on:
        raise InputError("provenance finishedOn is before startedOn")
    external: dict[str, Any] = {"spec": inputs.source.path if inputs.source else inputs.spec_path}
    if inputs.source is not None:
        external["source"] = {
            "uri": inputs.source.uri,
            "revision": inputs.source.revision,
            "dirty": inputs.source.dirty,
        }
    internal: dict[str, Any] = {
        "kilnVersion": inputs.kiln_version,
        "variant": inputs.variant,
        "archs": sorted(inputs.image.manifests),
        "sourceDateEpoch": inputs.source_date_epoch,
    }
    for key, value in sorted(inputs.options.items()):
        if key in internal:
            raise InputError(f"provenance option {key!r} clashes with a built-in parameter")
        internal[key] = value
    spec_dependency: dict[str, Any] = {
        "name": external["spec"],
        "digest": {"sha256": inputs.spec_sha256},
        "mediaType": "application/yaml",
    }
    if inputs.source is not None:
        spec_dependency["uri"] = (
            f"{inputs.source.uri}@{inputs.source.revision}#{inputs.source.path}"
        )
    lock_algorithm, _, lock_hex = inputs.lock.digest.partition(":")
    dependencies: list[dict[str, Any]] = [
        spec_dependency,
        {
            "name": f"{inputs.lock.image}.lock.json",
            "digest": {lock_algorithm: lock_hex},
            "mediaType": "application/json",
        },
    ]
    dependencies.extend(
        {
            "name": f"InRelease {release.suite} ({release.codename}, {release.date})",
            "digest": {"sha256": release.inrelease_sha256},
        }
        for release in sorted(inputs.lock.releases, key=lambda r: r.suite)
    )
    dependencies.extend(_deb_dependencies(inputs))
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": inputs.builder_id, "version": {"kiln": inputs.kiln_version}},
            "metadata": {
                "invocationId": inputs.invocation_id,
                "startedOn": started,
                "finishedOn": finished,
            },
        },
    }


def provenance_statement(inputs: ProvenanceInputs) -> Statement:
    """The in-toto statement: subjects = the image index and each per-arch manifest."""
    return make_statement(inputs.image.subjects(), PROVENANCE_V1, provenance_predicate(inputs))


GitRunner = Callable[[Sequence[str], Path], str | None]


def run_git(args: Sequence[str], cwd: Path) -> str | None:
    """Run ``git args`` in ``cwd``; its stdout, or None when git fails or is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _without_credentials(url: str) -> str:
    """A remote URL minus any ``user:token@`` (provenance is public)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def detect_git_source(spec: Path, *, git: GitRunner = run_git) -> SourceRevision | None:
    """Where ``spec`` came from when it sits in a git checkout with a commit, else None.

    The URI is the ``origin`` remote (``git+<url>``), else the checkout's own path as a
    ``git+file://`` URI. ``dirty`` says the working tree differs from the commit.
    """
    directory = spec.resolve().parent
    top = git(["rev-parse", "--show-toplevel"], directory)
    revision = git(["rev-parse", "--verify", "HEAD^{commit}"], directory)
    if not top or not revision:
        return None
    remote = git(["config", "--get", "remote.origin.url"], directory)
    uri = f"git+{_without_credentials(remote)}" if remote else f"git+{Path(top).as_uri()}"
    relative = spec.resolve().relative_to(Path(top).resolve()).as_posix()
    status = git(["status", "--porcelain", "--untracked-files=no"], directory)
    return SourceRevision(uri=uri, revision=revision, path=relative, dirty=bool(status))
