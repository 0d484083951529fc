"""The source commands end to end against the fixture repository (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.cli.main import main
from recipes.conftest import SourceRepo


@pytest.fixture
def kiln_env(srcrepo: SourceRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"mirrors:\n  debian: {srcrepo.server.url}/debian\n"
        f"  debian-security: {srcrepo.server.url}/debian-security\n"
    )
    monkeypatch.setenv("KILN_CONFIG", str(config))
    monkeypatch.setenv("KILN_KEYRING", str(srcrepo.key.keyring))
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_source_fetch_writes_verified_files(
    kiln_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = kiln_env / "src"
    assert main(["source", "fetch", "hello", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "hello_1.0-1+deb13u1.debian.tar.xz",
        "hello_1.0-1+deb13u1.dsc",
        "hello_1.0.orig.tar.gz",
    ]
    assert "hello 1.0-1+deb13u1 from trixie-security" in capsys.readouterr().out


def test_source_fetch_of_a_tampered_file_exits_3(
    srcrepo: SourceRepo, kiln_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srcrepo.server.override(
        "/debian-security/pool/updates/main/h/hello/hello_1.0.orig.tar.gz", b"evil"
    )
    assert main(["source", "fetch", "hello"]) == 3
    assert "does not match" in capsys.readouterr().err


def test_package_build_refuses_a_stale_base(
    kiln_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = kiln_env / "recipes" / "hello.yaml"
    recipe.parent.mkdir()
    recipe.write_text("source: hello\nversion: '1.0-1'\n")
    assert main(["package", "build", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "hello.yaml:2:1" in err
    assert "newest version" in err
    assert "shadow" in err


def test_repo_publish_signs_with_a_kiln_managed_key(kiln_env: Path) -> None:
    from fixtures.debrepo import DebSpec, build_deb

    deb = build_deb(DebSpec("hello", "1.0-1+kiln1"), kiln_env / "hello_1.0-1+kiln1_all.deb")
    repo = kiln_env / "repo"
    home = kiln_env / "gnupg"
    assert main(["repo", "publish", str(repo), str(deb), "--gnupghome", str(home)]) == 0
    assert (
        (repo / "dists" / "kiln" / "InRelease")
        .read_bytes()
        .startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    )
    assert b"Version: 1.0-1+kiln1" in (repo / "dists/kiln/main/binary-amd64/Packages").read_bytes()
    import subprocess

    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                   timeout=30)  # fmt: skip


class _FakeRebuilder:
    def __init__(self, comparison: object) -> None:
        self.comparison = comparison

    def rebuild_verify(self, name: str, **_: object) -> object:
        return self.comparison


@pytest.mark.parametrize("with_diffoscope", [True, False], ids=["diffoscope", "no-diffoscope"])
def test_rebuild_verify_names_the_diffoscope_report_or_says_it_is_missing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    with_diffoscope: bool,
) -> None:
    from kiln.pipeline.source import SourceBuilder
    from kiln.recipes.verify import DebComparison, DiffoscopeReport, RebuildComparison

    report = DiffoscopeReport(tmp_path / "hello.diffoscope.txt", complete=True)
    item = DebComparison("hello", "a" * 64, "b" * 64, ("usr/bin/hello: content differs",),
                         report if with_diffoscope else None)  # fmt: skip
    comparison = RebuildComparison("hello", "1.0-1", (item,), with_diffoscope)
    monkeypatch.setattr(
        SourceBuilder,
        "from_environment",
        classmethod(lambda cls, progress=None: _FakeRebuilder(comparison)),
    )
    assert main(["rebuild", "--verify", "hello", "-o", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "hello: usr/bin/hello: content differs" in out
    if with_diffoscope:
        assert f"diffoscope report {report.path}" in out
    else:
        assert "diffoscope is not installed" in out


def test_package_rebase_moves_a_stale_base_to_debians_newest_and_keeps_the_rest(
    kiln_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = kiln_env / "recipes" / "hello.yaml"
    recipe.parent.mkdir()
    text = "# hello, rebuilt\nsource: hello\nversion: '1.0-1'   # the base\nrevision: 2\n"
    recipe.write_text(text)
    assert main(["package", "rebase", str(recipe), "--check"]) == 1
    assert "behind 1.0-1+deb13u1 (trixie-security)" in capsys.readouterr().out
    assert recipe.read_text() == text  # --check writes nothing

    assert main(["package", "rebase", str(recipe)]) == 0
    assert "hello 1.0-1 -> 1.0-1+deb13u1" in capsys.readouterr().out
    assert recipe.read_text() == text.replace("'1.0-1'", "'1.0-1+deb13u1'")
    assert main(["package", "rebase", str(recipe), "--check"]) == 0
    assert "is Debian's newest" in capsys.readouterr().out


def test_package_rebase_of_a_source_debian_lacks_names_it(
    kiln_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = kiln_env / "recipes" / "nosuch.yaml"
    recipe.parent.mkdir()
    recipe.write_text("source: nosuch\nversion: '1.0-1'\n")
    assert main(["package", "rebase", str(recipe)]) == 1
    assert "'nosuch' is not in" in capsys.readouterr().err
    assert recipe.read_text() == "source: nosuch\nversion: '1.0-1'\n"
