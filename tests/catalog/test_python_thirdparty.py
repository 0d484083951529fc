"""Issue 3 acceptance with real third-party tools on the real python image: skopeo copies
the layout into Debian's docker-registry, and podman (runc) loads the docker archive
and runs the runtime image as nonroot, with no network."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from fixtures.registry import RunningRegistry, registry
from kiln.cli.main import main

__all__ = ["registry"]

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def python_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    spec = staged_spec("python", tmp_path_factory.mktemp("specs"))
    code = main(["build", str(spec), "--output", str(out), "--variant", "runtime",
                 "--arch", "amd64", "--docker-archive", "--refresh"])  # fmt: skip
    assert code == 0
    return out


def _tag(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])


def test_skopeo_copies_the_layout_into_a_registry(
    python_build: Path, registry: RunningRegistry
) -> None:
    layout = python_build / "python"
    tag = _tag(layout)
    dest = f"docker://{registry.host}/kiln/python:{tag}"
    subprocess.run(
        ["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:{tag}", dest],
        check=True, capture_output=True,
    )  # fmt: skip
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", dest],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    ours = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    pushed = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert pushed == ours  # copied without rewriting a byte


def test_podman_runs_the_runtime_image(python_build: Path) -> None:
    archive = python_build / "python.docker.tar"
    loaded = subprocess.run(
        ["podman", "load", "-i", str(archive)], check=True, capture_output=True, text=True
    ).stdout
    image = next(
        line.split("Loaded image:")[-1].strip()
        for line in loaded.splitlines()
        if "Loaded image" in line
    )
    try:
        run = subprocess.run(
            ["podman", "run", "--rm", "--runtime", "runc", "--network", "none",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image,
             "-c", "import os, ssl, sqlite3; print(os.getuid(), ssl.OPENSSL_VERSION[:7])"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    finally:
        subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["65532", "OpenSSL"]
