"""Helpers for assembly and sandbox tests: tiny .debs built with the real ``dpkg-deb``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

from kiln.assemble import AssemblyInput, DataMember, ImageFacts, PackageInput

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
    for member, spec in files.items():
        path = root / member
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, str):
            path.symlink_to(spec.removeprefix("->"))
            continue
        data, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
        path.write_bytes(data)
        path.chmod(mode)
    for directory in [root, *root.rglob("*")]:
        if directory.is_dir() and not directory.is_symlink():
            directory.chmod(0o755)  # independent of the umask: golden digests depend on it
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


def make_input(packages: tuple[PackageInput, ...], **kw: object) -> AssemblyInput:
    defaults: dict[str, object] = {
        "facts": ImageFacts(name="tiny", version="1.0", lock_digest="sha256:" + "0" * 64),
        "arch": "amd64",
        "variant": "runtime",
        "source_date_epoch": EPOCH,
    }
    defaults.update(kw)
    # defaults: any AssemblyInput fields, of several types, overridden per test
    return AssemblyInput(packages=packages, **defaults)  # type: ignore[arg-type]


STATIC_HELLO_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("hello from kiln uid=%d gid=%d\n", (int)getuid(), (int)getgid());
    for (int i = 1; i < argc; i++) printf("arg:%s\n", argv[i]);
    if (argc > 1 && argv[1][0] == 's') sleep(30);
    return argc > 1 && argv[1][0] == 'f' ? 3 : 0;
}
"""


def member(path: str, kind: str = "file", **kw: object) -> DataMember:
    """A hand-made data member (for inputs dpkg-deb cannot produce, e.g. hostile ones)."""
    content = kw.pop("content", b"" if kind == "file" else None)
    mode = kw.pop("mode", 0o755 if kind == "dir" else 0o644)
    size = len(content) if isinstance(content, bytes) else 0
    # kw: the other DataMember fields (uid, link_target...), of several types
    return DataMember(path=path, kind=kind, mode=mode, size=size, content=content, **kw)  # type: ignore[arg-type]


def pkg(name: str, *members: DataMember, version: str = "1.0", **fields: str) -> PackageInput:
    control = f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
    control += "".join(f"{k.replace('_', '-').title()}: {v}\n" for k, v in fields.items())
    return PackageInput(
        name=name,
        version=version,
        architecture="amd64",
        control=control,
        members=members,
        replaces=fields.get("replaces", ""),
    )


def compile_static(workdir: Path, source: str = STATIC_HELLO_C, *, hardened: bool = True) -> bytes:
    """Compile a static test binary with gcc (hardened: static-pie, RELRO, canary, FORTIFY)."""
    (workdir / "prog.c").write_text(source)
    flags = (
        ["-static-pie", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-Wl,-z,relro,-z,now"]
        if hardened
        else ["-static", "-no-pie", "-fno-stack-protector", "-Wl,-z,norelro,-z,execstack"]
    )
    subprocess.run(
        ["gcc", "-O2", *flags, "-o", "prog", "prog.c"], cwd=workdir, check=True, capture_output=True
    )
    return (workdir / "prog").read_bytes()
