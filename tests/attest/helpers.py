"""Shared builders for attestation tests: a two-arch lock, image digests, bundles."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kiln.attest import ImageDigests, RawBundle, Signer, Statement, sign_statement
from kiln.resolve.lockfile import ArchLock, Lock, LockedPackage, LockedRelease


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


IMAGE = ImageDigests(
    "tiny",
    digest_of("index"),
    {"amd64": digest_of("manifest amd64"), "arm64": digest_of("manifest arm64")},
)
OTHER_IMAGE = ImageDigests("tiny", digest_of("another index"), {})


def _package(name: str, version: str, arch: str, source: str | None = None) -> LockedPackage:
    filename = f"pool/main/{name[0]}/{source or name}/{name}_{version}_{arch}.deb"
    return LockedPackage(
        name=name,
        version=version,
        arch=arch,
        source=source or name,
        source_version=version,
        filename=filename,
        size=1000,
        sha256=hashlib.sha256(filename.encode()).hexdigest(),
        suite="trixie",
    )


def make_lock() -> Lock:
    """A lock of image ``tiny``: runtime and dev variants on amd64 and arm64."""
    variants: dict[str, dict[str, ArchLock]] = {}
    for variant, extra in (("runtime", []), ("dev", [("bash", "5.2.37-2")])):
        variants[variant] = {}
        for arch in ("amd64", "arm64"):
            packages = [
                _package("base-files", "13.8", arch),
                _package("tzdata", "2025b-4", "all"),
                _package("libc6", "2.41-12", arch, source="glibc"),
                *(_package(n, v, arch) for n, v in extra),
            ]
            variants[variant][arch] = ArchLock(packages=tuple(packages))
    return Lock(
        image="tiny",
        distro="debian-13",
        spec_sha256="5" * 64,
        releases=(
            LockedRelease(
                suite="trixie",
                codename="trixie",
                date="Sat, 21 Nov 2026 09:15:44 UTC",
                inrelease_sha256="b" * 64,
            ),
        ),
        variants=variants,
    )


def bundle_of(statement: Statement, signer: Signer, source: str = "test") -> RawBundle:
    return RawBundle(source, sign_statement(statement, signer))


def tamper_payload(bundle: bytes, change: dict[str, Any]) -> bytes:
    """The bundle with its statement edited (signature left as it was)."""
    import base64

    document = json.loads(bundle)
    envelope = document["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement.update(change)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(document).encode()
