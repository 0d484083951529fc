"""Fixtures for assembly tests: .debs built with dpkg-deb, a static test binary."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from assemble.helpers import FileSpec, MakeDeb, build_deb, compile_static
from kiln.assemble import PackageInput, package_input
from kiln.debian.deb import read_deb


@pytest.fixture
def make_deb(tmp_path: Path) -> MakeDeb:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")

    def make(name: str, files: Mapping[str, FileSpec], **kw: object) -> PackageInput:
        # kw: build_deb's keyword options (version, arch, fields...) of several types
        deb = build_deb(tmp_path, name, files, **kw)  # type: ignore[arg-type]
        return package_input(read_deb(deb))

    return make


@pytest.fixture(scope="session")
def static_hello(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A static, hardened test binary (no busybox, no shell needed in the image)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    try:
        return compile_static(tmp_path_factory.mktemp("hello"))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot build a static binary: {exc.stderr.decode()[-300:]}")
