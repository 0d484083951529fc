"""``kill -9`` during ``kiln build`` and ``kiln publish``, then the same command again.

The rerun must give the image a clean run gives (same index digest; published, the
same tags on it with all of its evidence) and leave no staging directory, lock or
partial blob behind (issue 13.7). Builds use the signed fixture archive; publish goes
to the real docker-registry through a proxy that holds a chosen request until the
test has killed the client, so each kill lands at a known step.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.conftest import Env, env
from fixtures.registry import Drop, FaultProxy, ProxiedRequest, RunningRegistry, registry
from kiln.attest import EcdsaVerifier, default_policy, fetch_bundles, verify_image
from kiln.pipeline.publish import PUBLISHED_TYPES
from kiln.registry import Digest
from registry.helpers import client_for

from .test_publish_faults import SPEC, kind_of

__all__ = ["env", "registry"]

KILN = [str(Path(sys.executable).with_name("kiln"))]
EPOCH = "1767225600"
TAGS = ("3.13.5", "3.13", "latest")
TIMEOUT = 120.0
ARCHIVES = ("--tar", "--docker-archive")  # their temporary files are staged too


@pytest.fixture
def spec(env: Env, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    monkeypatch.setenv("KILN_KEY_PASSWORD", "correct horse")
    env.spec.write_text(SPEC)
    return env.spec


def _kiln(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*KILN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def _finish(process: subprocess.Popen[bytes]) -> str:
    out, _ = process.communicate(timeout=TIMEOUT)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def _kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """SIGKILL ``process`` as soon as ``ready()``; False if it ended first."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return True
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.001)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the moment to kill never came")


def _leftovers(*roots: Path) -> list[str]:
    """Staging directories, their locks and partial blobs anywhere under ``roots``."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if ".tmp-" in path.name or path.name.startswith(".partial-"):
                found.append(str(path.relative_to(root)))
    return sorted(found)


def _index_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_bytes())
    return str(index["manifests"][0]["digest"])


def _staging_of(out: Path) -> Callable[[], bool]:
    return lambda: any(out.glob(".demo.tmp-*[0-9a-f]"))


def _partial_blob(out: Path) -> Callable[[], bool]:
    return lambda: any(out.glob(".*.tmp-*/blobs/sha256/*"))


def _layout_done(out: Path) -> Callable[[], bool]:
    return (out / "demo" / "index.json").exists


def _after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


MOMENTS: dict[str, Callable[[Path], Callable[[], bool]]] = {
    "staging-appears": _staging_of,
    "first-blob-written": _partial_blob,
    "runtime-layout-committed": _layout_done,
    "archive-staging-appears": lambda out: lambda: any(out.glob(".demo.*.tar.tmp-*[0-9a-f]")),
    "after-300ms": lambda out: _after(0.3),
}


@pytest.fixture
def clean_build(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The index digests a build that nobody interrupts gives (its own cache)."""
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "clean-cache"))
    out = tmp_path / "clean-out"
    _finish(_kiln("build", str(spec), "--output", str(out), *ARCHIVES))
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))
    return {"demo": _index_digest(out / "demo")}


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_kill_build_then_rebuild(
    spec: Path, tmp_path: Path, clean_build: dict[str, str], moment: str
) -> None:
    out = tmp_path / "out"
    build = ("build", str(spec), "--output", str(out), *ARCHIVES)
    # A moment that lasts a few milliseconds (an archive's staging) can pass between two
    # polls on a busy machine: a build that ended first is tried again, from scratch.
    for _attempt in range(5):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        out.mkdir()
        killed = _kill_when(_kiln(*build), MOMENTS[moment](out))
        if killed:
            break
    if moment != "after-300ms":
        assert killed, f"the build ended before {moment}, five times"
    _finish(_kiln(*build))
    assert {name: _index_digest(out / name) for name in clean_build} == clean_build
    assert _leftovers(out, tmp_path / "cache") == []


def test_two_builds_at_once_do_not_remove_each_other(
    spec: Path, tmp_path: Path, clean_build: dict[str, str]
) -> None:
    out = tmp_path / "out"
    first, second = (_kiln("build", str(spec), "--output", str(out), *ARCHIVES) for _ in range(2))
    _finish(first)
    _finish(second)
    assert {name: _index_digest(out / name) for name in clean_build} == clean_build
    assert _leftovers(out, tmp_path / "cache") == []


# -- publish ----------------------------------------------------------------------------


class Hold:
    """A request hook: hold the first request of ``kind`` (never forwarded) until killed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reached = threading.Event()
        self.release = threading.Event()
        self.active = True

    def __call__(self, request: ProxiedRequest) -> Drop | None:
        if not self.active or kind_of(request.method, request.path) != self.kind:
            return None
        self.active = False
        self.reached.set()
        self.release.wait(TIMEOUT)
        return Drop()


@contextlib.contextmanager
def _keys(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    _finish(_kiln("keygen", "--out", str(tmp_path / "kiln")))
    yield tmp_path / "kiln.key", tmp_path / "kiln.pub"


@pytest.mark.parametrize(
    "moment",
    ["blob-put", "manifest-put", "referrer-tag-put", "manifest-head", "tag-put", "after-2s"],
)
def test_kill_publish_then_publish_again(
    spec: Path, registry: RunningRegistry, tmp_path: Path, moment: str
) -> None:
    out = tmp_path / "out"
    timed = moment.startswith("after-")
    hold = Hold("none" if timed else moment)
    with _keys(tmp_path) as (key, pub), FaultProxy(registry.host, request_hook=hold) as proxy:
        prefix = f"kill-{moment}-{tmp_path.name[-8:].lower()}"
        args = ["publish", str(spec), "--registry", f"{proxy.host}/{prefix}", "--key", str(key)]
        args += ["--output", str(out), "--variant", "runtime"]
        process = _kiln(*args)
        repository = f"{prefix}/demo"
        if timed:  # wherever it is then: building, testing, pushing (or done)
            _kill_when(process, _after(float(moment.removeprefix("after-").removesuffix("s"))))
        else:
            assert _kill_when(process, hold.reached.is_set), f"publish never sent a {moment}"
            # killed mid-publish: no tag of the convention exists yet (the first tag PUT
            # is the one held when the moment is tag-put)
            assert not set(TAGS) & set(registry.tags(repository))
        hold.release.set()

        _finish(_kiln(*args))
    assert set(TAGS) <= set(registry.tags(repository))
    digest = Digest.parse(_index_digest(out / "demo"), what="layout")
    with client_for(registry) as client:
        for tag in TAGS:
            assert client.get_manifest(repository, tag).digest == digest
        verifier = EcdsaVerifier.from_pem(pub.read_bytes(), where=str(pub))
        bundles = fetch_bundles(client, repository, digest)
        verify_image(bundles, str(digest), verifier, default_policy(required=PUBLISHED_TYPES))
    assert _leftovers(out, tmp_path / "cache") == []
