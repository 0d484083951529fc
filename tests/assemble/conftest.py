"""Fixtures for assembly tests: tiny .debs built with the real ``dpkg-deb``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from kiln.assemble import AssemblyInput, ImageFacts, PackageInput, package_input
from kiln.debian.deb import read_deb

EPOCH = 1_700_000_000

FileSpec = bytes | tuple[bytes, int] | str  # content | (content, mode) | "->target" symlink
MakeDeb = Callable[..., PackageInput]


def build_deb(
    workdir: Path,
    name: str,
    files: Mapping[str, FileSpec],
    *,
    version: str = "1.0-1",
    arch: str = "amd64",
    fields: Mapping[str, str] | None = None,
    conffiles: tuple[str, ...] = (),
) -> Path:
    """Build ``name_version_arch.deb`` with dpkg-deb from a file map."""
    root = workdir / f"{name}-root"
    if root.exists():
        shutil.rmtree(root)
    (root / "DEBIAN").mkdir(parents=True)
    for rel, spec in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, str):
            path.symlink_to(spec.removeprefix("->"))
            continue
        data, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
        path.write_bytes(data)
        path.chmod(mode)
    extra = "".join(f"{k}: {v}\n" for k, v in (fields or {}).items())
    control = textwrap.dedent(
        f"""\
        Package: {name}
        Version: {version}
        Architecture: {arch}
        Maintainer: kiln tests <tests@example.invalid>
        Description: test package {name}
        """
    )
    (root / "DEBIAN" / "control").write_text(control + extra)
    if conffiles:
        (root / "DEBIAN" / "conffiles").write_text("".join(c + "\n" for c in conffiles))
    md5 = b"".join(
        hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest().encode()
        + b"  "
        + str(rel).encode()
        + b"\n"
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and (rel := p.relative_to(root)).parts[0] != "DEBIAN"
    )
    (root / "DEBIAN" / "md5sums").write_bytes(md5)
    out = workdir / f"{name}_{version}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def make_deb(tmp_path: Path) -> MakeDeb:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")

    def make(name: str, files: Mapping[str, FileSpec], **kw: object) -> PackageInput:
        deb = build_deb(tmp_path, name, files, **kw)  # type: ignore[arg-type]
        return package_input(read_deb(deb))

    return make


def make_input(packages: tuple[PackageInput, ...], **kw: object) -> AssemblyInput:
    defaults: dict[str, object] = {
        "facts": ImageFacts(name="tiny", version="1.0", lock_digest="sha256:" + "0" * 64),
        "arch": "amd64",
        "variant": "runtime",
        "source_date_epoch": EPOCH,
    }
    defaults.update(kw)
    return AssemblyInput(packages=packages, **defaults)  # type: ignore[arg-type]


STATIC_HELLO_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("hello from kiln uid=%d gid=%d\n", (int)getuid(), (int)getgid());
    for (int i = 1; i < argc; i++) printf("arg:%s\n", argv[i]);
    return argc > 1 && argv[1][0] == 'f' ? 3 : 0;
}
"""


@pytest.fixture(scope="session")
def static_hello(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A static, hardened test binary (no busybox, no shell needed in the image)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("hello")
    (work / "hello.c").write_text(STATIC_HELLO_C)
    result = subprocess.run(
        [
            gcc,
            "-static-pie",
            "-O2",
            "-fstack-protector-strong",
            "-D_FORTIFY_SOURCE=2",
            "-Wl,-z,relro,-z,now",
            "-o",
            "hello",
            "hello.c",
        ],
        cwd=work,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        result = subprocess.run(
            [gcc, "-static", "-O2", "-o", "hello", "hello.c"],
            cwd=work,
            capture_output=True,
            check=False,
        )
    if result.returncode != 0:
        pytest.skip(f"cannot build a static binary: {result.stderr.decode()[-300:]}")
    return (work / "hello").read_bytes()
