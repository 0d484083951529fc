"""Spec -> assembly input mapping and ``build_variant`` (what ``kiln build`` calls)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from assemble.helpers import build_deb
from kiln.assemble.cache import LayoutCache
from kiln.debian.deb import DebFormatError
from kiln.errors import InputError
from kiln.pipeline.build import (
    assembly_input,
    build_variant,
    layout_dir,
    source_date_epoch,
    upstream_version,
)
from kiln.resolve.lockfile import ArchLock, Lock
from kiln.spec import LoadedSpec, parse_spec

SPEC = b"""\
name: demo
description: a demo image
version-package: hello
packages: [hello]
accounts:
  users:
    - {name: app, uid: 1000}
  run-as: app
entrypoint: [/usr/bin/hello]
env: {LANG: C.UTF-8}
workdir: /srv
paths:
  - {path: /usr/bin/hi, type: symlink, target: hello}
  - {path: /srv, type: directory, mode: "0750", uid: 1000, gid: 1000}
variants:
  dev:
    packages: [extra]
    run-as: root
    cmd: [/usr/bin/hello, dev]
tests:
  - {name: greets, command: [/usr/bin/hello], stdout: "hello"}
  - {name: only dev, command: [/usr/bin/hello, x], variants: [dev]}
annotations:
  source: https://example.invalid/demo
archs: [amd64]
"""


def _loaded(tmp_path: Path) -> LoadedSpec:
    path = tmp_path / "demo.yaml"
    path.write_bytes(SPEC)
    return parse_spec(SPEC, path)


def test_assembly_input_maps_runtime_and_dev() -> None:
    spec = parse_spec(SPEC, Path("demo.yaml")).spec
    runtime = assembly_input(
        spec, variant="runtime", arch="amd64", packages=(), source_date_epoch=1
    )
    assert runtime.user == "1000:1000"
    assert runtime.facts.name == "demo"
    assert runtime.entrypoint == ("/usr/bin/hello",)
    assert runtime.workdir == "/srv"
    assert runtime.env == (("LANG", "C.UTF-8"),)
    assert [u.name for u in runtime.users] == ["app"]
    assert runtime.users[0].home == "/home/app"
    assert [(g.name, g.gid) for g in runtime.groups] == [("app", 1000)]
    assert [(p.path, p.kind, p.mode) for p in runtime.paths] == [
        ("/usr/bin/hi", "symlink", 0o644),
        ("/srv", "dir", 0o750),
    ]
    assert [t.name for t in runtime.tests] == ["greets"]
    assert runtime.tests[0].stdout_pattern == "hello"
    dev = assembly_input(spec, variant="dev", arch="amd64", packages=(), source_date_epoch=1)
    assert (dev.variant, dev.user, dev.facts.name) == ("dev", "0:0", "demo-dev")
    assert dev.cmd == ("/usr/bin/hello", "dev")
    assert [t.name for t in dev.tests] == ["greets", "only dev"]


def test_versions_and_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert upstream_version("1:3.13.5-2+deb13u1") == "3.13.5"
    assert upstream_version("20250419") == "20250419"
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch([5, None, 9]) == 9
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch([None])
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "42")
    assert source_date_epoch([5]) == 42
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InputError, match="not a number"):
        source_date_epoch([5])
    assert layout_dir(Path("out"), "py", "dev") == Path("out/py-dev")


def test_build_variant_from_debs(
    tmp_path: Path, static_hello: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    changelog = (
        b"hello (2.12-1) unstable; urgency=medium\n\n  * Test.\n\n"
        b" -- Kiln Tests <tests@example.invalid>  Tue, 14 Nov 2023 22:13:20 +0000\n"
    )
    deb = build_deb(
        tmp_path,
        "hello",
        {
            "usr/bin/hello": (static_hello, 0o755),
            "usr/share/doc/hello/changelog.Debian.gz": gzip.compress(changelog, mtime=0),
            "usr/share/doc/hello/copyright": b"MIT\n",
        },
        version="2.12-1",
    )
    loaded = _loaded(tmp_path)
    lock = Lock(
        image="demo",
        distro="debian-13",
        spec_sha256="0" * 64,
        releases=(),
        variants={"runtime": {"amd64": ArchLock(packages=())}},
    )
    built = build_variant(loaded, lock, "runtime", {"amd64": [deb]}, output=tmp_path / "out")
    assert built.layout == tmp_path / "out" / "demo"
    assert built.tag == "2.12"
    facts_blob = json.loads((built.layout / "index.json").read_text())
    assert facts_blob["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "2.12"
    index = json.loads(
        (built.layout / "blobs/sha256" / built.index_digest.split(":")[1]).read_text()
    )
    notes = index["annotations"]
    assert notes["org.opencontainers.image.version"] == "2.12"
    assert notes["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert notes["org.opencontainers.image.source"] == "https://example.invalid/demo"
    assert notes["org.opencontainers.image.description"] == "a demo image"


def test_an_unchanged_build_is_restored_from_the_layout_cache(
    tmp_path: Path, static_hello: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    deb = build_deb(tmp_path, "hello", {"usr/bin/hello": (static_hello, 0o755)}, version="2.12-1")
    loaded = _loaded(tmp_path)
    lock = Lock(
        image="demo",
        distro="debian-13",
        spec_sha256="0" * 64,
        releases=(),
        variants={"runtime": {"amd64": ArchLock(packages=())}},
    )
    cache = LayoutCache(tmp_path / "cache")
    out = tmp_path / "out"
    first = build_variant(loaded, lock, "runtime", {"amd64": [deb]}, output=out, cache=cache)
    deb.write_bytes(b"not read on a cache hit")  # same name: same content-addressed input
    again = build_variant(
        loaded, lock, "runtime", {"amd64": [deb]}, output=out, cache=cache, docker_archive=True
    )
    assert again == first
    assert (out / "demo.docker.tar").is_file()
    assert json.loads((out / "demo" / "hardening.json").read_text())["image"] == "demo"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    with pytest.raises(DebFormatError):  # a cache miss reads the (now broken) .deb
        build_variant(loaded, lock, "runtime", {"amd64": [deb]}, output=out, cache=cache)
    assert (out / "demo" / "index.json").is_file()  # the failed rebuild left the old layout


def test_shell_lets_the_runtime_keep_a_shell_and_says_why() -> None:
    plain = parse_spec(SPEC, Path("demo.yaml")).spec
    assert (
        assembly_input(
            plain, variant="runtime", arch="amd64", packages=(), source_date_epoch=1
        ).allow_paths
        == ()
    )
    reason = "erl is a /bin/sh script that sets ROOTDIR"
    spec = parse_spec(SPEC + f"shell: {reason!r}\n".encode(), Path("demo.yaml")).spec
    runtime = assembly_input(
        spec, variant="runtime", arch="amd64", packages=(), source_date_epoch=1
    )
    assert {"usr/bin/sh", "usr/bin/dash", "usr/bin/bash"} <= set(runtime.allow_paths)
    assert not any("apt" in p or "dpkg" in p for p in runtime.allow_paths)
    dev = assembly_input(spec, variant="dev", arch="amd64", packages=(), source_date_epoch=1)
    assert dev.allow_paths == ()  # -dev has its shell anyway
    with pytest.raises(InputError):
        parse_spec(SPEC + b"shell: why\n", Path("demo.yaml"))  # a reason, not a word
