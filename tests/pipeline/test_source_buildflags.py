"""Recipe builds configure as Debian's buildds do, in trixie's real build root.

libarchive's build root (mmdebstrap, from the configured mirror: network) extracted as
a build extracts it, with kiln's ``/etc/dpkg/buildflags.conf`` written into it, and
libarchive's configure check run in the build sandbox (tests/sandbox/flagprobe.py).
Before the fix this answered "no" with kiln's flags and "yes" without them, and
libarchive's build failed at dpkg-gensymbols on its exported private symbols.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.debian import get_distro
from kiln.pipeline.source import SourceBuilder
from kiln.recipes.build import BuildError, check_build_flags
from kiln.recipes.buildroot import extract_root
from kiln.recipes.model import Hardening
from kiln.sandbox.unpack import host_arch
from sandbox.flagprobe import OLD_CONF, configure_probe

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def trixie_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # $KILN_CACHE (default ~/.cache/kiln) keeps the build root between runs.
    builder = SourceBuilder.from_environment()
    distro = get_distro("debian-13")
    package = builder.universe(distro, ("libarchive",)).newest("libarchive")
    root = builder.build_root(distro, host_arch(), package, ())
    dest = tmp_path_factory.mktemp("trixie-root") / "root"
    extract_root(root.tarball, dest)
    yield dest
    shutil.rmtree(dest)


def test_kiln_flags_keep_trixies_configure_answers(trixie_root: Path, tmp_path: Path) -> None:
    conf = trixie_root / "etc" / "dpkg" / "buildflags.conf"
    build = tmp_path / "build"
    build.mkdir()
    conf.unlink(missing_ok=True)
    debian = configure_probe(trixie_root, build, tmp_path / "debian.log")
    assert (debian.visibility, debian.fortify) == ("yes", "2"), debian.log

    conf.write_text(Hardening().buildflags_conf())
    kiln = configure_probe(trixie_root, build, tmp_path / "kiln.log")
    assert (kiln.visibility, kiln.fortify) == ("yes", "3"), kiln.log
    check_build_flags(trixie_root, build, log=tmp_path / "check.log")  # does not raise


def test_the_old_flags_flip_the_answer_and_are_refused(trixie_root: Path, tmp_path: Path) -> None:
    conf = trixie_root / "etc" / "dpkg" / "buildflags.conf"
    build = tmp_path / "build"
    build.mkdir()
    conf.write_text(OLD_CONF)
    old = configure_probe(trixie_root, build, tmp_path / "old.log")
    assert (old.visibility, old.fortify) == ("no", "2"), old.log
    with pytest.raises(BuildError) as caught:
        check_build_flags(trixie_root, build, log=tmp_path / "check.log")
    assert '"_FORTIFY_SOURCE" redefined' in caught.value.diagnostics()
