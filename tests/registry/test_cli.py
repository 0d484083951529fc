"""``kiln registry`` debug commands against the real docker-registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.registry import RunningRegistry
from kiln.cli.main import main
from kiln.registry import SIGSTORE_BUNDLE, attach_artifact

from .helpers import client_for
from .layouts import tree, write_layout


@pytest.fixture(autouse=True)
def _no_user_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("KILN_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("KILN_REGISTRY_PASSWORD", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


def test_push_inspect_referrers_pull(
    registry: RunningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_layout(tmp_path / "src", seed="cli")
    ref = f"{registry.host}/kiln/cli:1.0"
    assert main(["registry", "push", str(source.path), ref, "--tag", "latest"]) == 0
    assert f"pushed {ref}@{source.index.digest}" in capsys.readouterr().out

    assert main(["registry", "inspect", f"{registry.host}/kiln/cli:latest"]) == 0
    out = capsys.readouterr().out
    assert f"digest: {source.index.digest}" in out
    assert '"architecture": "arm64"' in out

    with client_for(registry) as client:
        attached = attach_artifact(
            client,
            "kiln/cli",
            source.index,
            artifact_type=SIGSTORE_BUNDLE,
            payload=json.dumps({"x": 1}).encode(),
            payload_media_type=SIGSTORE_BUNDLE,
        )
    assert main(["registry", "referrers", ref]) == 0
    assert str(attached.digest) in capsys.readouterr().out

    assert main(["registry", "pull", ref, str(tmp_path / "out")]) == 0
    assert tree(tmp_path / "out") == tree(source.path)


def test_errors_map_to_exit_codes(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["registry", "inspect", "python:3"]) == 2
    assert "has no '/'" in capsys.readouterr().err
    assert main(["registry", "inspect", f"{registry.host}/kiln/absent:1"]) == 3
    assert (
        f"registry {registry.host}: repository kiln/absent, manifest 1" in capsys.readouterr().err
    )
