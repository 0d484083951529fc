"""The store reader and the guard's parts on hostile or broken input (no network)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.cli.main import main
from kiln.errors import InputError
from kiln.registry import Digest
from kiln.site.frontdoor import parse_range
from kiln.site.security import RateLimiter
from kiln.site.stage import keep_release, settle_release, site_meta
from kiln.site.store import Store, read_meta, valid_name
from kiln.spec import load_spec
from site_web.conftest import free_port
from site_web.test_frontdoor import request


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=100-", None),
        ("bytes=9-5", None),
        ("bytes=-0", None),
        ("bytes=0-1,4-5", None),
        ("items=0-9", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("bytes=1-2-3", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("kiln/static", True),
        ("kiln/python-dev", True),
        ("a__b/c.d", True),
        ("kiln/../etc", False),
        ("kiln//static", False),
        ("Kiln/static", False),
        ("kiln/static/", False),
        ("-kiln", False),
        ("kiln/" + "a" * 300, False),
    ],
)
def test_repository_names(name: str, ok: bool) -> None:
    assert valid_name(name) is ok


def _layout(path: Path, index: bytes) -> None:
    path.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_bytes(index)


def test_broken_layouts_are_listed_not_fatal(tmp_path: Path) -> None:
    _layout(tmp_path / "garbage", b"{not json")
    _layout(tmp_path / "deep", b"[" * 100 + b"]" * 100)
    _layout(tmp_path / "empty", b'{"schemaVersion": 2, "manifests": []}')
    missing = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": "sha256:" + "a" * 64, "size": 10}]}  # fmt: skip
    _layout(tmp_path / "missing-blob", json.dumps(missing).encode())
    (tmp_path / "not-a-layout").mkdir()
    store = Store(tmp_path)
    assert store.images() == []
    problems = dict(p.split(": ", 1) for p in store.problems())
    assert set(problems) == {"garbage", "deep", "empty", "missing-blob"}
    assert "blob sha256:aaaa" in problems["missing-blob"]
    assert "index.json" in problems["garbage"]


def test_a_missing_store_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not a directory"):
        Store(tmp_path / "nothing").images()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (b"[]", "site.json"),
        (b'{"name": 3, "variant": "runtime"}', "name"),
        (b'{"name": "../x", "variant": "runtime"}', "name"),
        (b'{"name": "x", "variant": "runtime", "replaces": "x"}', "replaces"),
        (b'{"name": "x", "variant": "runtime", "notes": [1]}', "notes"),
    ],
)
def test_malformed_site_json(tmp_path: Path, document: bytes, field: str) -> None:
    path = tmp_path / "site.json"
    path.write_bytes(document)
    with pytest.raises(InputError) as caught:
        read_meta(path)
    assert field in str(caught.value)


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(rate=1000.0, burst=2)
    assert limiter.take("a") == 0
    assert limiter.take("a") == 0
    wait = limiter.take("a")
    assert 0 < wait <= 0.001
    assert limiter.take("b") == 0  # per client
    assert RateLimiter(rate=0, burst=1).take("a") == 0  # 0: no limit


def test_cli_refuses_a_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["site", "--store", str(tmp_path / "none")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["site", "--store", str(tmp_path), "--port", "70000"]) == 2


def test_a_republished_digest_keeps_its_publication_date() -> None:
    loaded = load_spec(CATALOG_DIR / "static.yaml")
    first = site_meta(loaded, "runtime", "sha256:" + "a" * 64, None)
    assert first.published
    assert (first.replaces, first.release) == (("distroless/static*",), "debian-13")
    old = replace(first, published="2026-01-01T00:00:00+00:00")
    assert site_meta(loaded, "runtime", old.digest, old).published == old.published
    assert site_meta(loaded, "runtime", "sha256:" + "b" * 64, old).published != old.published


def test_kiln_site_serves_until_stopped(tmp_path: Path) -> None:
    """The command itself: uvicorn on the port, the guard in front, an empty store."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kiln.cli.main", "site", "--store", str(tmp_path),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, headers, body = request(f"127.0.0.1:{port}", "GET", "/v2/")
                break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (status, body) == (200, b"{}")
        assert headers["x-content-type-options"] == "nosniff"
        status, _, body = request(f"127.0.0.1:{port}", "GET", "/")
        assert status == 200
        assert "no image matches" in body.decode()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _blob(blobs: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def small_layout(
    path: Path, *, title: str, ref: str, content: bytes = b"\0" * 1024
) -> dict[str, object]:
    """One amd64 image (config, one layer of ``content``) named ``ref``; its layer."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(blobs, content)}
    config = _blob(blobs, json.dumps({"architecture": "amd64", "os": "linux"}).encode())
    manifest = _blob(blobs, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [layer], "annotations": {"org.opencontainers.image.title": title},
    }).encode())  # fmt: skip
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": ref}}]}  # fmt: skip
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps(index))
    return layer


def test_tags_are_those_kiln_publish_moves(tmp_path: Path) -> None:
    """A -dev layout built at 3.13.5 is kiln/demo:3.13.5-dev, 3.13-dev and latest-dev;
    only blobs a manifest lists are reachable, whatever else blobs/ holds."""
    layer = small_layout(tmp_path / "demo-dev", title="demo-dev", ref="3.13.5-dev")
    small_layout(tmp_path / "demo", title="demo", ref="3.13.5")
    stray = tmp_path / "demo" / "blobs" / "sha256" / ("f" * 64)
    stray.write_bytes(b"not listed by any manifest")
    repositories = Store(tmp_path).repositories()
    assert list(repositories) == ["demo"]
    repository = repositories["demo"]
    assert sorted(repository.tags()) == [
        "3.13", "3.13-dev", "3.13.5", "3.13.5-dev", "latest", "latest-dev"
    ]  # fmt: skip
    dev = repository.tags()["3.13-dev"]
    assert (dev.name, dev.variant, dev.label) == ("demo", "dev", "demo-dev")
    assert [p.platform for p in dev.platforms] == ["linux/amd64"]
    assert repository.manifest("latest-dev") == dev.top
    assert repository.manifest(dev.digest) == dev.top
    assert repository.manifest("sha256:" + "0" * 64) is None
    assert repository.blob(Digest.parse(str(layer["digest"]))) is not None
    assert repository.blob(Digest.parse("sha256:" + "f" * 64)) is None


def _publish_meta(layout: Path, published: str) -> str:
    digest = str(Store(layout.parent).repositories()["demo"].tags()["latest"].digest)
    meta = {"name": "demo", "variant": "runtime", "published": published, "digest": digest}
    (layout / "site.json").write_text(json.dumps(meta))
    return digest


def test_an_earlier_release_is_kept_with_its_own_tag(tmp_path: Path) -> None:
    store = tmp_path / "store"
    old_layer = small_layout(store / "demo", title="demo", ref="3.13.4")
    old = _publish_meta(store / "demo", "2026-01-01T00:00:00+00:00")
    kept = keep_release(store / "demo", store, "demo")
    assert kept == store / "history" / "demo" / old.removeprefix("sha256:")
    blob = Path("blobs/sha256") / str(old_layer["digest"]).removeprefix("sha256:")
    assert (kept / blob).stat().st_ino == (store / "demo" / blob).stat().st_ino  # linked
    assert keep_release(store / "demo", store, "demo") is None  # kept once
    # the rebuild swaps in a new version; the kept release stays
    shutil.rmtree(store / "demo")
    small_layout(store / "demo", title="demo", ref="3.13.5", content=b"\1" * 1024)
    settle_release(kept, store / "demo")
    assert kept.is_dir()
    repository = Store(store).repositories()["demo"]
    tags = {tag: image.archived for tag, image in repository.tags().items()}
    assert tags == {"3.13.4": True, "3.13.5": False, "3.13": False, "latest": False}
    assert repository.manifest(old) is not None  # pullable by digest still
    assert [i.tag for i in Store(store).images()] == ["3.13.5"]  # the catalog: current only
    # a rebuild that gives the same image keeps nothing
    _publish_meta(store / "demo", "2026-02-01T00:00:00+00:00")
    again = keep_release(store / "demo", store, "demo")
    assert again is not None
    settle_release(again, store / "demo")
    assert not again.exists()
    assert sorted(p.name for p in (store / "history" / "demo").iterdir()) == [kept.name]


def test_a_port_in_use_is_an_environment_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["site", "--store", str(tmp_path), "--port", str(port)]) == 3
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Address already in use" in err
