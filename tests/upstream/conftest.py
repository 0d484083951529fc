"""Fixtures: npm tarballs built in the test, and an in-memory registry that records requests."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from kiln.net import DEFAULT_MAX_BYTES, FetchResult, HttpStatusError
from kiln.upstream import sri_sha512

BASE = "https://registry.test/"  # a name in the reserved .test TLD, never resolved


@dataclass
class Member:
    name: str
    data: bytes = b""
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o644
    link: str = ""


def make_tgz(members: list[Member]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.kind
            info.mode = m.mode
            info.linkname = m.link
            info.size = len(m.data) if m.kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(m.data) if m.kind == tarfile.REGTYPE else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def package_tgz(
    name: str, version: str, bins: object = None, extra: list[Member] | None = None
) -> bytes:
    manifest: dict[str, object] = {"name": name, "version": version}
    if bins is not None:
        manifest["bin"] = bins
    members = [
        Member("package/package.json", json.dumps(manifest).encode()),
        Member("package/lib/index.js", b"module.exports = 1;\n"),
        Member("package/bin/cli.js", b"#!/usr/bin/env node\n", mode=0o644),
        *(extra or []),
    ]
    return make_tgz(members)


@dataclass
class FakeRegistry:
    """Serves version documents and tarballs from memory, like the registry API."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def publish(
        self, name: str, version: str, tgz: bytes, *, doc: dict[str, object] | None = None
    ) -> str:
        tar_path = f"{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
        self.files[tar_path] = tgz
        document = doc or {
            "name": name,
            "version": version,
            "dist": {"integrity": sri_sha512(tgz), "tarball": BASE + tar_path},
        }
        self.files[f"{name.replace('/', '%2F')}/{version}"] = json.dumps(document).encode()
        return tar_path

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        del etag, last_modified
        self.requests.append(url)
        key = url.removeprefix(BASE)
        if not url.startswith(BASE) or key not in self.files:
            raise HttpStatusError(f"{url}: server answered 404", status=404)
        body = self.files[key]
        assert len(body) <= max_bytes
        return FetchResult(url, 200, body)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


Factory = Callable[..., bytes]
