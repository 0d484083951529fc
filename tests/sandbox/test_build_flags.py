"""The flags of a recipe build must not change what a package's configure finds.

Offline, with the host's ``/`` as the sandbox's read-only root (it has dpkg-dev and a
compiler, as test_build.py's builds use): kiln's hardening reaches dpkg-buildflags as
the ``DEB_<FLAG>_APPEND`` variables, which it applies as it does the
``/etc/dpkg/buildflags.conf`` lines kiln writes into a real build root
(tests/pipeline/test_source_buildflags.py runs the same check on trixie's root).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kiln.recipes.build import BuildError, build_environment, check_build_flags
from kiln.recipes.model import Hardening
from sandbox.flagprobe import OLD_CONF, conf_as_environment, configure_probe

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("dpkg-buildflags") is None,
    reason="needs bubblewrap and dpkg-dev",
)


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    build = tmp_path / "build"
    build.mkdir()
    return build, tmp_path / "log"


def test_kiln_hardening_keeps_configure_answers_and_reaches_fortify_3(tmp_path: Path) -> None:
    build, log = _dirs(tmp_path)
    debian = configure_probe(Path("/"), build, tmp_path / "debian.log")
    assert (debian.visibility, debian.fortify) == ("yes", "2"), debian.log
    kiln_env = conf_as_environment(Hardening().buildflags_conf())
    kiln = configure_probe(Path("/"), build, tmp_path / "kiln.log", env=kiln_env)
    assert kiln.visibility == "yes", kiln.log
    assert kiln.fortify == "3", kiln.log
    assert "redefined" not in kiln.log
    check_build_flags(Path("/"), build, log=log, env=kiln_env)  # does not raise
    assert "checking that the build flags" in log.read_text()


def test_flags_that_warn_flip_configure_and_are_refused_before_the_build(
    tmp_path: Path,
) -> None:
    build, log = _dirs(tmp_path)
    old_env = conf_as_environment(OLD_CONF)
    old = configure_probe(Path("/"), build, tmp_path / "old.log", env=old_env)
    # the environment that made libarchive export its private symbols
    assert old.visibility == "no", old.log
    assert old.fortify == "2", old.log  # and kiln's fortify level 3 silently lost
    with pytest.raises(BuildError, match="warn on a warning-free program") as caught:
        check_build_flags(Path("/"), build, log=log, env=old_env)
    details = caught.value.diagnostics()
    assert '"_FORTIFY_SOURCE" redefined' in details
    assert "-D_FORTIFY_SOURCE=3" in details


def test_a_recipe_flag_that_only_warns_is_named(tmp_path: Path) -> None:
    build, log = _dirs(tmp_path)
    # the linker ignores an unknown -z keyword with a warning: the link succeeds
    hardening = Hardening.model_validate({"extra-ldflags": ["-Wl,-z,kiln-unknown"]})
    env = conf_as_environment(hardening.buildflags_conf())
    with pytest.raises(BuildError) as caught:
        check_build_flags(Path("/"), build, log=log, env=env)
    assert "kiln-unknown" in caught.value.diagnostics()
    assert "warning" in caught.value.diagnostics()


def test_build_environment_adds_a_recipes_build_options_after_kilns() -> None:
    env = build_environment(jobs=2, options=("check",))
    assert env["DEB_BUILD_OPTIONS"] == "parallel=2 check"
    assert "DEB_BUILD_PROFILES" not in env
    skipped = build_environment(jobs=2, profiles=("nocheck",))
    assert skipped["DEB_BUILD_OPTIONS"] == "parallel=2 nocheck"
    assert skipped["DEB_BUILD_PROFILES"] == "nocheck"
