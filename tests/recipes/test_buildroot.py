"""Build roots: the mmdebstrap command line, caching by digest, failures named."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kiln.debian.distro import get_distro
from kiln.errors import EnvironmentProblem
from kiln.recipes.buildroot import BuildRootSpec, ensure_build_root, mmdebstrap_argv

TRIXIE = get_distro("debian-13")
URLS = {"trixie": "http://mirror.invalid/debian", "trixie-security": "http://mirror.invalid/s"}


def test_argv_installs_build_depends_with_apt_satisfy() -> None:
    spec = BuildRootSpec(TRIXIE, "amd64", "debhelper-compat (= 13), valgrind [amd64] <!nocheck>",
                         ("nocheck",), 1)  # fmt: skip
    argv = mmdebstrap_argv(spec, URLS, Path("/out/root.tar"))
    assert argv[:2] == ["mmdebstrap", "--variant=buildd"]
    hook = next(a for a in argv if "apt-get satisfy" in a)
    assert "APT::Build-Profiles=nocheck" in hook
    assert "'debhelper-compat (= 13), valgrind [amd64] <!nocheck>'" in hook
    assert "deb http://mirror.invalid/s trixie-security main" in argv
    # dpkg-buildpackage needs fakeroot for Rules-Requires-Root: binary-targets (pam).
    assert "--include=fakeroot" in argv


def test_key_counts_profiles_only_when_a_relation_uses_one() -> None:
    plain = BuildRootSpec(TRIXIE, "amd64", "bison, flex", (), 1)
    assert plain.digest == BuildRootSpec(TRIXIE, "amd64", "bison,  flex", ("nocheck",), 1).digest
    restricted = "bison, valgrind <!nocheck>"
    assert (
        BuildRootSpec(TRIXIE, "amd64", restricted, (), 1).digest
        != BuildRootSpec(TRIXIE, "amd64", restricted, ("nocheck",), 1).digest
    )
    assert plain.digest != BuildRootSpec(TRIXIE, "arm64", "bison, flex", (), 1).digest


def _fake_mmdebstrap(bin_dir: Path, *, fail: bool = False) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls = bin_dir / "calls"
    script = bin_dir / "mmdebstrap"
    body = 'echo "E: cannot reach mirror" >&2; exit 1' if fail else (
        'out=""\n'
        'for a in "$@"; do case "$a" in *.tar) out="$a";; esac; done\n'
        'echo "$SOURCE_DATE_EPOCH" > "$out"'
    )  # fmt: skip
    script.write_text(f"#!/bin/sh\necho run >> {calls}\n{body}\n")
    script.chmod(0o755)
    return calls


def test_root_is_created_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_mmdebstrap(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    spec = BuildRootSpec(TRIXIE, "amd64", "bison", (), 1234)
    first = ensure_build_root(spec, cache_root=tmp_path / "cache", suite_urls=URLS)
    second = ensure_build_root(spec, cache_root=tmp_path / "cache", suite_urls=URLS)
    assert first.created
    assert not second.created
    assert first.tarball == second.tarball
    assert first.sha256 == second.sha256
    assert first.tarball.name == f"{spec.digest}.tar"
    assert first.tarball.read_text() == "1234\n"  # SOURCE_DATE_EPOCH reached mmdebstrap
    assert calls.read_text().count("run") == 1


def test_mmdebstrap_failure_is_reported_and_nothing_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_mmdebstrap(tmp_path / "bin", fail=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    spec = BuildRootSpec(TRIXIE, "amd64", "bison", (), 1)
    with pytest.raises(EnvironmentProblem) as caught:
        ensure_build_root(spec, cache_root=tmp_path / "cache", suite_urls=URLS)
    assert "could not create the trixie/amd64 build root" in str(caught.value)
    assert "E: cannot reach mirror" in caught.value.details
    assert not list((tmp_path / "cache" / "buildroots").glob("*.tar"))


def test_creating_a_root_is_a_progress_phase_fed_with_mmdebstrap_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kiln package build` printed nothing for minutes while mmdebstrap ran."""
    _fake_mmdebstrap(tmp_path / "bin")
    script = tmp_path / "bin" / "mmdebstrap"
    lines = script.read_text().splitlines()
    lines.insert(1, 'echo "I: downloading packages with apt..."; echo "I: installing"')
    script.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    seen: list[str] = []

    class Recorder:
        @contextmanager
        def phase(self, text: str) -> Iterator[Recorder]:
            seen.append(f"start {text}")
            yield self
            seen.append(f"end {text}")

        def update(self, detail: str) -> None:
            seen.append(detail)

    spec = BuildRootSpec(TRIXIE, "amd64", "bison", (), 1)
    ensure_build_root(spec, cache_root=tmp_path / "cache", suite_urls=URLS, progress=Recorder())
    assert seen[0] == "start creating the trixie/amd64 build root (mmdebstrap)"
    assert seen[1:3] == ["I: downloading packages with apt...", "I: installing"]
    assert seen[-1].startswith("end ")
    seen.clear()  # cached: nothing to announce
    ensure_build_root(spec, cache_root=tmp_path / "cache", suite_urls=URLS, progress=Recorder())
    assert seen == []
