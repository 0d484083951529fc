"""A third-party client (skopeo) reads what kiln pushed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.registry import RunningRegistry
from kiln.registry import ImageLayout, ImageManifest, Reference, push_layout

from .helpers import client_for
from .layouts import write_layout

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def _skopeo(*args: str) -> str:
    done = subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_skopeo_inspects_and_copies_what_kiln_pushed(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    source = write_layout(tmp_path / "src", seed="skopeo")
    with client_for(registry) as client:
        push_layout(client, source.path, Reference.parse(f"{registry.host}/kiln/skopeo:1.0"))
    image = f"docker://{registry.host}/kiln/skopeo:1.0"

    raw = _skopeo("inspect", "--tls-verify=false", "--raw", image)
    assert raw.encode() == (source.path / "blobs/sha256" / source.index.digest.encoded).read_bytes()

    arm64 = json.loads(_skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", image))
    assert arm64["Architecture"] == "arm64"
    assert arm64["Digest"] == str(source.index.digest)  # skopeo names the reference's digest
    arm64_manifest = ImageLayout.open(source.path).manifest(source.manifests[1]).parsed
    assert isinstance(arm64_manifest, ImageManifest)
    assert arm64["Layers"] == [str(d.digest) for d in arm64_manifest.layers]

    copied = tmp_path / "copied"
    _skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        image,
        f"oci:{copied}:1.0",
    )
    layout = ImageLayout.open(copied)
    assert layout.select().digest == source.index.digest
    ours = {p.name for p in (source.path / "blobs/sha256").iterdir()}
    theirs = {p.name for p in (copied / "blobs/sha256").iterdir()}
    assert theirs == ours
