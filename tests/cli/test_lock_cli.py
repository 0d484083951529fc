"""`kiln lock`, `kiln lock --check` and `kiln fetch` end to end, against a signed
fixture repository served over loopback (tests/fixtures/debrepo.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.conftest import SPEC, Env
from fixtures.debrepo import DebSpec, default_mirror_dir
from kiln.cli.main import main


def test_lock_writes_canonical_lock(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", str(env.spec)]) == 0
    data = json.loads(env.lock.read_text())
    runtime = data["variants"]["runtime"]["amd64"]
    names = {p["name"]: p for p in runtime["packages"]}
    # security suite wins when newer; tzdata from -updates; debconf cut as install-time only
    assert names["libssl3t64"]["suite"] == "trixie-security"
    assert names["libssl3t64"]["version"] == "3.5.1-1+deb13u1"
    assert names["tzdata"]["suite"] == "trixie-updates"
    assert "debconf" not in names
    assert any(e["from"] == "tzdata" for e in runtime["cut_edges"])
    dev = {p["name"] for p in data["variants"]["dev"]["arm64"]["packages"]}
    assert {"debconf", "ca-certificates"} <= dev
    assert set(data["variants"]["runtime"]) == {"amd64", "arm64"}
    # no mirror location in the lock: only pool paths
    assert "127.0.0.1" not in env.lock.read_text()
    first = env.lock.read_bytes()
    assert main(["lock", str(env.spec)]) == 0
    assert env.lock.read_bytes() == first
    assert "unchanged" in capsys.readouterr().out


def test_check_detects_a_new_security_update(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", str(env.spec)]) == 0
    assert main(["lock", "--check", str(env.spec)]) == 0
    env.rebuild(
        [
            DebSpec("tzdata", "2025c-0+deb13u2", depends="debconf (>= 0.5) | debconf-2.0"),
        ]
    )
    capsys.readouterr()
    assert main(["lock", "--check", str(env.spec)]) == 1
    out = capsys.readouterr()
    assert "~ tzdata 2025c-0+deb13u1 → 2025c-0+deb13u2 (trixie-security)" in out.out
    assert "stale" in out.err


def test_check_without_lock_is_stale(env: Env) -> None:
    assert main(["lock", "--check", str(env.spec)]) == 1
    assert not env.lock.exists()


def test_show_prints_the_lock(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", str(env.spec)]) == 0
    capsys.readouterr()
    assert main(["lock", "--show", str(env.spec)]) == 0
    out = capsys.readouterr().out
    assert "demo runtime/amd64" in out
    assert "libssl3t64" in out


def test_why_shows_the_chain(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", "--why", "libc6", str(env.spec)]) == 0
    out = capsys.readouterr().out
    assert "python3.13-minimal" in out
    assert "libc6" in out


def test_unknown_package_points_at_spec_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.spec.write_text(SPEC.replace("  - tzdata\n", "  - tzdat\n"))
    assert main(["lock", str(env.spec)]) == 2
    err = capsys.readouterr().err
    assert f"{env.spec}:5:5: packages[1]" in err
    assert "tzdat" in err
    assert "did you mean tzdata" in err
    assert not env.lock.exists()


def test_fetch_verifies_debs(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", str(env.spec)]) == 0
    assert main(["fetch", str(env.spec)]) == 0
    lock = json.loads(env.lock.read_text())
    for arches in lock["variants"].values():
        for arch_lock in arches.values():
            for p in arch_lock["packages"]:
                blob = Path(str(env.root.parent / "cache" / "sha256" / p["sha256"]))
                assert blob.stat().st_size == p["size"]


def test_fetch_refuses_a_tampered_deb(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", str(env.spec)]) == 0
    lock = json.loads(env.lock.read_text())
    victim = lock["variants"]["runtime"]["amd64"]["packages"][0]
    mirror = default_mirror_dir(victim["suite"])
    original = (env.root / mirror / victim["filename"]).read_bytes()
    env.server.override(f"/{mirror}/{victim['filename']}", original[:-1] + b"X")
    capsys.readouterr()
    assert main(["fetch", str(env.spec)]) == 3
    err = capsys.readouterr().err
    assert victim["name"] in err
    assert "sha256" in err.lower()
    assert not (env.root.parent / "cache" / "sha256" / victim["sha256"]).exists()


def test_unreachable_mirror_is_an_environment_error(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.server.stop()
    assert main(["lock", str(env.spec)]) == 3
    assert "could not download" in capsys.readouterr().err
