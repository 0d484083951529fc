"""`kiln build` end to end against the signed fixture archive: lock reuse, relock on a
changed spec, --frozen refusing a stale lock, and a layout skopeo accepts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli.conftest import SPEC, Env
from fixtures.debrepo import DebSpec
from kiln.cli.main import main


@pytest.fixture(autouse=True)
def _epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fixture .debs carry no changelog to take the date from
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")


def _index_digest(layout: Path) -> str:
    return str(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])


def test_build_locks_builds_and_reuses(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["build", str(env.spec), "--output", str(out), "--no-cache"]) == 0
    assert env.lock.exists()  # no lock yet: build locked first
    runtime, dev = out / "demo", out / "demo-dev"
    assert (runtime / "oci-layout").is_file()
    assert (dev / "oci-layout").is_file()
    first = _index_digest(runtime)
    inspected = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{runtime}:latest"], check=True, capture_output=True
    )
    assert json.loads(inspected.stdout)["mediaType"].endswith("image.index.v1+json")
    # same spec, same lock: the lock is reused as is and the digest is identical
    before = env.lock.read_bytes()
    capsys.readouterr()
    assert main(["build", str(env.spec), "--output", str(out), "--no-cache"]) == 0
    assert "locking" not in capsys.readouterr().out
    assert env.lock.read_bytes() == before
    assert _index_digest(runtime) == first


def test_build_relocks_when_the_spec_changed(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["lock", str(env.spec)]) == 0
    env.spec.write_text(SPEC.replace("name: demo\n", "name: demo\ndescription: changed\n"))
    capsys.readouterr()
    assert main(["build", str(env.spec), "--output", str(out), "--variant", "runtime"]) == 0
    assert "spec changed" in capsys.readouterr().out
    assert not (out / "demo-dev").exists()


def test_frozen_refuses_a_stale_lock_and_keeps_the_layout(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["build", str(env.spec), "--output", str(out), "--frozen"]) == 2  # no lock
    assert "does not exist" in capsys.readouterr().err
    assert main(["lock", str(env.spec)]) == 0
    assert main(["build", str(env.spec), "--output", str(out), "--frozen"]) == 0
    digest = _index_digest(out / "demo")
    env.rebuild([DebSpec("tzdata", "2025c-0+deb13u2", depends="debconf (>= 0.5) | debconf-2.0")])
    capsys.readouterr()
    assert main(["build", str(env.spec), "--output", str(out), "--frozen"]) == 1
    err = capsys.readouterr().err
    assert "stale" in err
    assert "tzdata 2025c-0+deb13u1 → 2025c-0+deb13u2" in err
    assert _index_digest(out / "demo") == digest


def test_unknown_arch_is_an_input_error(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.spec.write_text(SPEC.replace("name: demo\n", "name: demo\narchs: [amd64]\n"))
    assert main(["build", str(env.spec), "--output", str(tmp_path), "--arch", "arm64"]) == 2
    assert "does not build arm64" in capsys.readouterr().err
